#!/usr/bin/env node
// Parley's load generator: signs devices in through the REST API, opens one socket.io websocket per
// device and speaks Parley's protocol (`message:send` + ack, `message:new` deliveries). With
// `"proto": "bare"` in the plan it speaks the bare transport's protocol instead (join a room, `send`
// + ack, `msg` relayed to the room), so both servers are measured by the same code.
//
//   node bench/loadgen.js --plan plan.json [--phases sat:64,rate:250,rate:500|storm] [--dur 12] [--warm 3]
//       [--cc 50] [--hold 3] [--body 100] [--pids 123,456] [--limit 300] [--label x]
//
// Devices sign in and connect, stay idle for --hold s (RSS per connection is read then), then each
// phase runs on the same connections: `rate:R` offers R msg/s open-loop, `sat:N` keeps N messages in
// flight (closed loop, for the saturation rate), `storm` waits for a server restart, `kill` sends at the
// plan's steady rate while the harness kills the server with SIGKILL and restarts it, then resends what
// was never acknowledged (see killResend).
//
// The plan (written by `python -m bench`) lists the server URLs, the devices (a username each) and the
// rooms (a conversation and the indexes of its member devices). All timing happens in this one process
// (performance.now()), so send->ack and send->delivery need no clock sync. Every phase is bounded and
// the process always exits by itself; the result is one JSON line on stdout.
//
// Behind nginx (bench/scaleout.py), a device's `route` names the process it signs in on: the
// `parley_route` cookie nginx's sticky routing reads; nginx's answer keeps it in the device's cookie.
"use strict";
const { io } = require("socket.io-client");
const fs = require("fs");
const { performance } = require("perf_hooks");

const A = {};
for (let i = 2; i < process.argv.length; i += 2) A[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const PLAN = JSON.parse(fs.readFileSync(A.plan, "utf8"));
const PHASES = (A.phases || "").split(",").filter(Boolean); // e.g. sat:64,rate:500 or storm; none: idle
const DUR = +(A.dur || 12), WARM = +(A.warm || 3), CC = +(A.cc || 50), HOLD = +(A.hold || 3);
const BODY = "x".repeat(+(A.body || 100));
const PIDS = (A.pids || "").split(",").filter(Boolean).map(Number);
const LABEL = A.label || "";
const STORM_WAIT_S = +(A["storm-wait"] || 60), STORM_RATE = +(A["storm-rate"] || 50);
const GAP = +(A.gap || 0); // s of stillness before connecting and after the hold (for heap snapshots)
const BARE = PLAN.proto === "bare";
const RUN = Math.random().toString(36).slice(2, 10); // client_msg_id prefix, unique per run
setTimeout(() => { console.error("hard time limit hit"); process.exit(3); }, +(A.limit || 300) * 1000).unref();

// --- measuring --------------------------------------------------------------------------------
const TICK = 100; // USER_HZ
function procStat(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return { cpu: (+f[11] + +f[12]) / TICK, rssKB: m ? +m[1] : 0 };
  } catch (e) { return { cpu: 0, rssKB: 0 }; }
}
const snap = () => PIDS.map(procStat);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function summary(arr) { // nearest-rank percentiles, as bench/stats.py
  if (!arr.length) return { n: 0 };
  arr.sort((a, b) => a - b);
  const at = (p) => +arr[Math.max(1, Math.ceil((p / 100) * arr.length)) - 1].toFixed(2);
  return { n: arr.length, p50: at(50), p90: at(90), p99: at(99), max: at(100) };
}
async function pool(count, conc, fn) {
  let next = 0;
  const worker = async () => { while (next < count) { const i = next++; await fn(i); } };
  await Promise.all(Array.from({ length: Math.min(conc, count) }, worker));
}

// --- devices ----------------------------------------------------------------------------------
const devices = PLAN.devices.map((d, i) => ({ ...d, index: i, url: PLAN.urls[d.url_index || 0], cookie: null,
  socket: null, connected: false, cursor: null, seen: new Set(), live: new Map(), sent: [] }));
const roomOf = new Array(devices.length).fill(null);
PLAN.rooms.forEach((room, k) => { room.key = "r" + k; room.devices.forEach((i) => { roomOf[i] = room; }); });
const errors = {};
let connErrors = 0, disconnects = 0, loginErrors = 0, resyncs = 0;

async function login(d) {
  if (BARE) return true;
  try {
    const headers = { "Content-Type": "application/json", "User-Agent": "node bench" };
    if (d.route) headers.Cookie = `parley_route=${d.route}`;
    const res = await fetch(d.url + "/api/v1/auth/login", {
      method: "POST", headers,
      body: JSON.stringify({ username: d.username, password: PLAN.password }),
      signal: AbortSignal.timeout(30000),
    });
    if (res.status !== 200) { loginErrors++; await res.text(); return false; }
    await res.json();
    d.cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    return true;
  } catch (e) { loginErrors++; return false; }
}

async function api(d, path) {
  const res = await fetch(d.url + path, { headers: { Cookie: d.cookie }, signal: AbortSignal.timeout(30000) });
  if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function connect(d, reconnect) {
  return new Promise((resolve) => {
    const s = io(d.url, { transports: ["websocket"], forceNew: true, reconnection: reconnect, timeout: 30000,
      extraHeaders: d.cookie ? { Cookie: d.cookie } : {} });
    let settled = false;
    s.once("connect", () => { settled = true; resolve(s); });
    s.on("connect_error", () => { if (!settled) { connErrors++; settled = true; s.close(); resolve(null); } });
    s.on("connect", () => { d.connected = true; onReconnect(d); });
    s.on("disconnect", () => { d.connected = false; disconnects++; onDisconnect(d); });
    if (BARE) s.on("msg", (m) => onDelivery(d, m.id));
    else s.on("message:new", (m) => { countLive(d, m.client_msg_id); onDelivery(d, m.client_msg_id); });
    // The server asks for a catch-up when its Redis subscription came back (PROTOCOL.md `resync`).
    if (!BARE) s.on("resync", () => { resyncs++; if (killArmed) catchUp(d).catch(() => {}); });
  });
}

// --- messages ---------------------------------------------------------------------------------
let winStart = Infinity, winEnd = Infinity;
const inWindow = (t) => t >= winStart && t < winEnd;
const count = { sends: 0, acks: 0, deliveries: 0, echoes: 0 };
const ackLat = [], delivLat = [], allLat = [];
const pending = new Map(); // message id -> record
let seq = 0;

function onDelivery(d, id) {
  const now = performance.now();
  d.seen.add(id);
  const rec = pending.get(id);
  if (!rec) return;
  if (d.index === rec.from) { if (inWindow(now)) count.echoes++; return; }
  if (inWindow(now)) count.deliveries++;
  if (inWindow(rec.t0)) delivLat.push(now - rec.t0);
  rec.left--; finish(rec, now);
}

function finish(rec, now) {
  if (rec.left > 0 || !rec.acked) return;
  pending.delete(rec.id);
  if (inWindow(rec.t0)) allLat.push(now - rec.t0);
  if (rec.done) rec.done();
}

function sendFrom(i) {
  const d = devices[i], room = roomOf[i];
  const id = `${RUN}-${++seq}`;
  const t0 = performance.now();
  const rec = { id, t0, from: i, left: room.devices.length - 1, acked: false, ok: false, done: null, room };
  pending.set(id, rec);
  if (inWindow(t0)) count.sends++;
  const onAck = (ack) => {
    const now = performance.now();
    if (!BARE && !(ack && ack.ok)) {
      const code = ack && ack.error ? ack.error.code : "no_ack";
      errors[code] = (errors[code] || 0) + 1;
      pending.delete(id); if (rec.done) rec.done(); return;
    }
    rec.acked = true; rec.ok = true;
    if (inWindow(now)) count.acks++;
    if (inWindow(t0)) ackLat.push(now - t0);
    finish(rec, now);
  };
  if (BARE) d.socket.emit("send", { id, room: room.key, ts: t0, from: i, body: BODY }, onAck);
  else d.socket.emit("message:send", { conversation_id: room.conversation_id, client_msg_id: id,
    body: { type: "txt", msg: BODY } }, onAck);
  return rec;
}

const senders = () => devices.filter((d) => d.socket && roomOf[d.index]).map((d) => d.index);
const pick = (arr) => arr[Math.floor(Math.random() * arr.length)];

// A fixed offered rate (slow acks cannot slow it down); `endAt()` may move while it runs.
async function openLoop(rate, endAt, candidates, record = () => {}, send = sendFrom) {
  const t0 = performance.now();
  let sent = 0;
  await new Promise((resolve) => {
    const iv = setInterval(() => {
      const now = performance.now();
      if (now >= endAt()) { clearInterval(iv); resolve(); return; }
      const due = Math.floor(((now - t0) / 1000) * rate) - sent;
      const list = due > 0 ? candidates() : [];
      for (let j = 0; j < due; j++) {
        sent++;
        if (list.length) record(send(pick(list)));
      }
    }, 1);
  });
}

async function closedLoop(endAt, inflight) { // saturation: `inflight` messages outstanding at any time
  const list = senders();
  const loop = async () => {
    while (performance.now() < endAt) {
      const rec = sendFrom(pick(list));
      await Promise.race([new Promise((r) => { rec.done = r; }), sleep(10000)]);
    }
  };
  await Promise.all(Array.from({ length: inflight }, loop));
}

async function drain(ms) {
  const t = performance.now();
  while (pending.size && performance.now() - t < ms) await sleep(50);
}

// --- reconnect storm ----------------------------------------------------------------------------
// After the harness restarts the server, every socket reconnects by itself (socket.io's backoff). We
// time how long until 99% are back, and keep sending meanwhile: every message the server acknowledged
// must reach each other member of its room, live or through /sync from the cursor kept before.
let stormArmed = false, downAt = null;
const backAt = [], stormSent = [];
function onDisconnect(d) {
  if (stormArmed && downAt === null) downAt = performance.now();
  if (killArmed) { downDevices.add(d.index); d.sent.forEach((rec) => { if (!rec.acked) rec.lost_at_kill = true; }); }
}
function onReconnect(d) {
  if (d.everConnected && downAt !== null) backAt.push(performance.now() - downAt);
  d.everConnected = true;
  if (killArmed) d.sent.forEach((rec) => { if (!rec.acked && !rec.error) { rec.resent++; emitRecord(rec); } });
}

async function catchUp(d) { // every message since the device's cursor, through /sync, into d.seen
  let cursor = d.cursor;
  for (let page = 0; page < 100; page++) {
    const r = await api(d, `/api/v1/sync?cursor=${cursor}`);
    r.messages.forEach((m) => m.client_msg_id && d.seen.add(m.client_msg_id));
    cursor = r.cursor;
    if (!r.has_more) break;
  }
}

function lostDeliveries(acked) { // acked records some other member of the room has not seen
  let lost = 0;
  for (const rec of acked) for (const j of rec.room.devices) if (j !== rec.from && !devices[j].seen.has(rec.id)) lost++;
  return lost;
}

async function storm(out) {
  await pool(devices.length, CC, async (i) => {
    devices[i].cursor = (await api(devices[i], "/api/v1/conversations")).cursor;
  });
  stormArmed = true;
  console.log(JSON.stringify({ event: "ready" })); // the harness restarts the server now
  const t0 = performance.now();
  const target = Math.ceil(devices.length * 0.99);
  const connectedSenders = () => devices.filter((d) => d.connected && roomOf[d.index]).map((d) => d.index);
  let stop = t0 + STORM_WAIT_S * 1000;
  const sending = openLoop(STORM_RATE, () => stop, connectedSenders, (rec) => stormSent.push(rec));
  while (performance.now() < stop && !(downAt !== null && backAt.length >= target)) await sleep(50);
  stop = Math.min(stop, performance.now() + 2000); // a little traffic after the storm, then stop
  await sending;
  await drain(5000);
  backAt.sort((a, b) => a - b);
  await pool(devices.length, CC, async (i) => { await catchUp(devices[i]); });
  const acked = stormSent.filter((rec) => rec.ok);
  const lost = lostDeliveries(acked);
  const at = (k) => (backAt.length >= k ? +(backAt[k - 1] / 1000).toFixed(2) : null);
  Object.assign(out, { storm_disconnected: downAt !== null, reconnected: backAt.length,
    down_at_epoch_s: downAt === null ? null : (performance.timeOrigin + downAt) / 1000, t99_back_s: at(target), t100_back_s: at(devices.length), storm_sent: stormSent.length,
    storm_acked: acked.length, storm_unacked: stormSent.length - acked.length, storm_lost_deliveries: lost, errors });
}

// --- kill -9 mid-load --------------------------------------------------------------------------
// Devices send at the plan's steady rate (`kill.rate` msg/s) from a run-unique prefix; after
// `kill.before_s` s they send a burst of `kill.burst` messages at once, so that many are in flight
// (some stored, some not yet), and `kill.lead_ms` later the harness is told "ready": it kills the
// server with SIGKILL, then restarts it on the same port and database. A device that loses its
// connection marks every message it sent without an ack (`lost_at_kill`); once reconnected it
// resends each with the same client_msg_id, and keeps sending until `kill.after_s` s after the last
// device is back. Every record goes to `kill.records` for the harness to check against the
// database; deliveries are checked here, live or through /sync (a message:new seen twice counts).
//
// With `kill.resume_file` (bench/scaleout.py) the harness may end only some processes, or restart
// Redis under the servers: after "ready" the generator waits for that file (the harness's "done"),
// then until every device is connected again (those of a killed process reconnect through nginx to
// a survivor). With `kill.resend_refused`, messages the server refused while its Redis was away are
// sent again (same client_msg_id) once the load is over. Deliveries missed live (before /sync) are
// counted apart from those still missing after it.
let killArmed = false, killSeq = 0;
const downDevices = new Set();
const killSent = [];

function emitRecord(rec) {
  const d = devices[rec.from];
  d.socket.emit("message:send", { conversation_id: rec.room.conversation_id, client_msg_id: rec.id,
    body: { type: "txt", msg: BODY } }, (ack) => {
    if (!(ack && ack.ok)) { rec.error = ack && ack.error ? ack.error.code : "no_ack"; return; }
    if (rec.acked) { if (ack.message.id !== rec.message_id) rec.ack_conflict = true; return; }
    Object.assign(rec, { acked: true, message_id: ack.message.id, seq: ack.message.seq,
      duplicate: !!ack.duplicate, ack_ms: +(performance.now() - rec.t0).toFixed(1) });
  });
}

function killSend(i) {
  const d = devices[i], room = roomOf[i];
  const rec = { id: `${PLAN.kill.prefix}-${++killSeq}`, from: i, sender: d.username, room, t0: performance.now(),
    acked: false, message_id: null, seq: null, duplicate: null, lost_at_kill: false, resent: 0, error: null };
  d.sent.push(rec); killSent.push(rec);
  emitRecord(rec);
  return rec;
}

function countLive(d, id) { if (killArmed) d.live.set(id, (d.live.get(id) || 0) + 1); }

async function killResend(out) {
  const K = PLAN.kill;
  await pool(devices.length, CC, async (i) => {
    devices[i].cursor = (await api(devices[i], "/api/v1/conversations")).cursor;
  });
  killArmed = true; stormArmed = true; // the storm's reconnect timing applies as is
  const t0 = performance.now();
  const connectedSenders = () => devices.filter((d) => d.socket && d.socket.connected && roomOf[d.index])
    .map((d) => d.index);
  let stop = t0 + (K.before_s + K.wait_s) * 1000;
  const sending = openLoop(K.rate, () => stop, connectedSenders, () => {}, killSend);
  await sleep(K.before_s * 1000);
  for (let j = 0; j < K.burst; j++) { const list = connectedSenders(); if (list.length) killSend(pick(list)); }
  await sleep(K.lead_ms);
  console.log(JSON.stringify({ event: "ready" })); // the harness kills and restarts the server now
  if (K.resume_file) {
    while (performance.now() < stop && !fs.existsSync(K.resume_file)) await sleep(20);
    await sleep(500); // disconnects caused by the harness are seen by now
    while (performance.now() < stop && !devices.every((d) => !d.socket || d.socket.connected)) await sleep(50);
  } else {
    while (performance.now() < stop && !(downAt !== null && backAt.length >= devices.length)) await sleep(50);
  }
  const back = performance.now();
  stop = Math.min(stop, back + K.after_s * 1000);
  await sending;
  let refusedResent = 0;
  if (K.resend_refused) killSent.forEach((r) => {
    if (r.error && !r.acked) { r.refused = r.error; r.error = null; r.resent++; refusedResent++; emitRecord(r); }
  });
  const td = performance.now(); // every record answered (the server is up, nothing is in the way)
  while (killSent.some((r) => !r.acked && !r.error) && performance.now() - td < 30000) await sleep(50);
  await sleep(500); // late deliveries
  const acked = killSent.filter((r) => r.acked); // before /sync: each of these must be found there
  const missedLive = lostDeliveries(acked);
  await pool(devices.length, CC, async (i) => { await catchUp(devices[i]); });
  let dupDeliveries = 0;
  devices.forEach((d) => d.live.forEach((n) => { if (n > 1) dupDeliveries += n - 1; }));
  const errs = {};
  killSent.forEach((r) => { if (r.error) errs[r.error] = (errs[r.error] || 0) + 1; });
  fs.writeFileSync(K.records, JSON.stringify(killSent.map((r) => ({ id: r.id, sender: r.sender,
    conversation_id: r.room.conversation_id, acked: r.acked, message_id: r.message_id, seq: r.seq,
    duplicate: r.duplicate, lost_at_kill: r.lost_at_kill, resent: r.resent, error: r.error, refused: r.refused || null,
    ack_conflict: !!r.ack_conflict, ack_ms: r.ack_ms, t_ms: Math.round(r.t0 - t0) }))));
  const at = (k) => (backAt.length >= k ? +(backAt[k - 1] / 1000).toFixed(2) : null);
  backAt.sort((a, b) => a - b);
  const refusedCodes = {};
  killSent.forEach((r) => { if (r.refused) refusedCodes[r.refused] = (refusedCodes[r.refused] || 0) + 1; });
  const dropped = K.resume_file ? downDevices.size : devices.length; // with resume_file, only some drop
  Object.assign(out, { disconnected: downAt !== null, reconnected: backAt.length, t100_back_s: dropped ? at(dropped) : null,
    load_s: +((back - t0) / 1000 + K.after_s).toFixed(1), sent: killSent.length, acked: acked.length,
    lost_at_kill: killSent.filter((r) => r.lost_at_kill).length, resent: killSent.filter((r) => r.resent).length,
    unanswered: killSent.filter((r) => !r.acked && !r.error).length, errors: errs,
    lost_deliveries: lostDeliveries(acked), duplicate_deliveries: dupDeliveries,
    disconnected_devices: downDevices.size, missed_live_deliveries: missedLive, refused_resent: refusedResent,
    refused_first: killSent.filter((r) => r.refused).length, refused_codes: refusedCodes, resyncs });
}

// --- main -------------------------------------------------------------------------------------
async function measure(kind, arg) { // one phase on the open connections: "rate" (msg/s) or "sat" (in flight)
  Object.keys(count).forEach((k) => { count[k] = 0; });
  [ackLat, delivLat, allLat].forEach((a) => { a.length = 0; });
  Object.keys(errors).forEach((k) => delete errors[k]);
  pending.clear();
  console.log(JSON.stringify({ event: "phase", phase: `${kind}:${arg}` })); // lets a profiler start sampling
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  winStart = t0 + WARM * 1000; winEnd = t0 + DUR * 1000;
  let s0 = null;
  const ws = setTimeout(() => { s0 = snap(); }, WARM * 1000);
  const list = senders(); // fixed for the phase: recomputing it per tick costs the generator dearly
  if (kind === "rate") await openLoop(arg, () => winEnd, () => list);
  else await closedLoop(winEnd, arg);
  const s1 = snap();
  const c1 = process.cpuUsage(c0);
  const wall = (performance.now() - t0) / 1000;
  const win = (Math.min(performance.now(), winEnd) - winStart) / 1000;
  clearTimeout(ws);
  await drain(5000);
  return {
    phase: `${kind}:${arg}`, window_s: +win.toFixed(2),
    sends_per_s: Math.round(count.sends / win), acks_per_s: Math.round(count.acks / win),
    deliveries_per_s: Math.round(count.deliveries / win), echoes_per_s: Math.round(count.echoes / win),
    ack_ms: summary(ackLat), delivery_ms: summary(delivLat), all_delivered_ms: summary(allLat),
    incomplete_after_drain: pending.size, errors: { ...errors },
    server_cpu_pct: s0 ? s1.map((x, j) => Math.round((100 * (x.cpu - s0[j].cpu)) / win)) : null,
    server_cpu_s: s0 ? s1.map((x, j) => +(x.cpu - s0[j].cpu).toFixed(2)) : null,
    acks: count.acks, deliveries: count.deliveries,
    client_cpu_pct: Math.round((100 * (c1.user + c1.system)) / 1e6 / wall),
    rss_end_MB: s1.map((x) => +(x.rssKB / 1024).toFixed(1)),
  };
}

async function settle() { // wait (bounded) until the servers are idle again, so phases don't overlap
  const t = performance.now();
  while (PIDS.length && performance.now() - t < 30000) {
    const a = snap();
    await sleep(500);
    const b = snap();
    if (b.every((x, j) => x.cpu - a[j].cpu < 0.05)) break;
  }
  return +((performance.now() - t) / 1000).toFixed(1);
}

async function main() {
  const out = { label: LABEL, proto: PLAN.proto, devices: devices.length, servers: PLAN.urls.length };
  const storming = PHASES.includes("storm") || PHASES.includes("kill");
  const tl = performance.now();
  await pool(devices.length, CC, async (i) => { await login(devices[i]); });
  out.login_s = +((performance.now() - tl) / 1000).toFixed(2);
  out.logins_per_s = BARE ? null : Math.round(devices.length / out.login_s);
  if (GAP) { console.log(JSON.stringify({ event: "connecting" })); await sleep(GAP * 1000); }
  const base = snap();
  const tc = performance.now();
  await pool(devices.length, CC, async (i) => {
    if (BARE || devices[i].cookie) devices[i].socket = await connect(devices[i], storming);
  });
  out.connect_s = +((performance.now() - tc) / 1000).toFixed(2);
  const ok = devices.filter((d) => d.socket);
  out.connected = ok.length;
  out.connects_per_s = Math.round(ok.length / out.connect_s);
  if (!BARE) out.login_and_connect_per_s = Math.round(ok.length / (out.connect_s + out.login_s));
  if (BARE) await pool(ok.length, CC, async (j) => {
    const d = ok[j];
    if (roomOf[d.index]) await Promise.race([d.socket.emitWithAck("join", [roomOf[d.index].key]), sleep(30000)]);
  });
  await sleep(HOLD * 1000);
  const held = snap();
  if (GAP) { console.log(JSON.stringify({ event: "held" })); await sleep(GAP * 1000); }
  Object.assign(out, {
    rss_base_MB: base.map((x) => +(x.rssKB / 1024).toFixed(1)),
    rss_conn_MB: held.map((x) => +(x.rssKB / 1024).toFixed(1)),
    rss_per_conn_KB: +(held.reduce((a, x, j) => a + x.rssKB - base[j].rssKB, 0) / Math.max(1, ok.length)).toFixed(1),
    phases: [],
  });
  let saturation = null; // acks/s of the last `sat` phase
  for (const phase of PHASES) {
    const [kind, arg] = phase.split(":");
    if (kind === "storm") { await storm(out); continue; }
    if (kind === "kill") { await killResend(out); continue; }
    // `rate:auto` offers half the saturation rate just measured; a fixed rate above saturation
    // would only build a backlog (latency grows without bound), so it is reported as over capacity.
    const rate = kind === "rate" && arg === "auto" ? Math.max(1, Math.round((saturation || 2) / 2)) : +arg;
    if (kind === "rate" && saturation !== null && rate > saturation) {
      out.phases.push({ phase, skipped: `over capacity: saturation is ${saturation} msg/s` });
      continue;
    }
    const result = await measure(kind, rate);
    result.phase = phase;
    result.offered_per_s = kind === "rate" ? rate : null;
    result.settle_s = await settle();
    out.phases.push(result);
    if (kind === "sat") saturation = result.acks_per_s;
  }
  Object.assign(out, { login_errors: loginErrors, connect_errors: connErrors, disconnects });
  console.log(JSON.stringify(out));
  devices.forEach((d) => d.socket && d.socket.close());
  await sleep(300);
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(2); });
