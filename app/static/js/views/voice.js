// Voice messages in the chat: the bubble (`button.voice`: its length as 7″, a width that grows
// with it, a wave that moves while it plays, a thin progress bar, the red unplayed dot beside
// someone else's message) and the page's one player. One message plays at a time; starting one
// stops any other and pauses a playing video. The first play of someone else's message clears
// its dot at once and tells the server (every device of mine then clears it: `message:played`);
// a play told while offline is told again after the next connect. When one ends, the next
// unplayed voice message below it in the chat starts by itself, as in WeChat. Playback stops as
// soon as its bubble is gone from the page: the chat closed or switched, the message recalled or
// deleted for me, a chat-history sheet closed.
import { api } from "../api.js";
import { h, safeUrl, toast } from "../dom.js";
import { t } from "../i18n.js";
import { bucket, isPlayed, on, setPlayed, state } from "../store.js";
import { localUrl } from "./localmedia.js";

const SVG = "http://www.w3.org/2000/svg";

/** A recording's length in whole seconds, as shown: rounded, at least 1. */
export function voiceSeconds(duration) {
  const seconds = Math.round(Number(duration));
  return Number.isFinite(seconds) && seconds > 1 ? seconds : 1;
}

/** "[Voice] 0:07" (en), "[语音] 7″" (zh-CN): the line a voice message shows in lists and quotes. */
export function voiceLine(duration) {
  const s = voiceSeconds(duration);
  return t("msg.voice_line", { s, mss: `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}` });
}

// The player: the page's one <audio>, made on the first play.
const player = { audio: null, key: null, message: null, seconds: 1, chat: false, frame: 0 };
// Bubbles whose file did not play (gone after a recall, or undecodable), by key.
const failed = new Set();
// Plays not told yet ("conversation:seq" -> [conversation id, seq]): offline, or the server was
// busy or failing. Kept in sessionStorage (per user) so a reload tells them too.
const unsent = new Map();
// The plays being told now: never told twice at once (a connect during the first request).
const telling = new Set();
let retryTimer = 0;
let retryDelay = 2000;
// The recordings under way (./voicerecord.js): while any is, nothing plays.
const recordings = new Set();

function stored(message) {
  return message.conversation_id != null && message.seq != null;
}

function keyOf(message, readOnly) {
  if (!readOnly && stored(message)) return `m:${message.conversation_id}:${message.seq}`;
  if (message.client_msg_id) return `c:${message.client_msg_id}`;
  return `u:${message.body?.url || ""}`;
}

function bubblesOf(key) {
  return key ? document.querySelectorAll(`button.voice[data-key="${CSS.escape(key)}"]`) : [];
}

function isPlaying(key) {
  return !!key && player.key === key && !!player.audio && !player.audio.paused;
}

function draw(button) {
  const key = button.dataset.key;
  const seconds = Number(button.dataset.seconds);
  const playing = isPlaying(key);
  button.dataset.state = playing ? "playing" : "idle";
  button.classList.toggle("voice-failed", failed.has(key));
  let label = seconds === 1 ? t("voiceplay.play_one") : t("voiceplay.play", { n: seconds });
  if (playing) label = t("voiceplay.pause");
  else if (failed.has(key)) label = t("voiceplay.failed");
  else if (button.dataset.unplayed === "1") label += t("voiceplay.unplayed_suffix");
  button.setAttribute("aria-label", label);
  const done = player.key === key && player.audio ? Math.min(1, player.audio.currentTime / player.seconds) : 0;
  button.style.setProperty("--progress", String(done));
}

function drawKey(key) {
  for (const button of bubblesOf(key)) draw(button);
}

/** Each frame while playing: the progress bar moves; a bubble gone from the page stops it. */
function tick() {
  player.frame = 0;
  if (!isPlaying(player.key)) return;
  if (!bubblesOf(player.key).length) {
    stop();
    return;
  }
  drawKey(player.key);
  player.frame = requestAnimationFrame(tick);
}

/** Stop the voice message playing (or paused), if any: a recording starting stops it. */
export function stopVoice() {
  stop();
}

/** A recording (any object standing for it) begins or ends: while one is under way, nothing plays. */
export function recordingVoice(recording, on) {
  if (on) {
    recordings.add(recording);
    stop();
  } else recordings.delete(recording);
}

function stop() {
  const key = player.key;
  player.key = null;
  player.message = null;
  cancelAnimationFrame(player.frame);
  player.frame = 0;
  if (player.audio) {
    player.audio.pause();
    player.audio.removeAttribute("src");
    player.audio.load();
  }
  drawKey(key);
}

function audioElement() {
  if (player.audio) return player.audio;
  const audio = new Audio();
  audio.preload = "auto";
  audio.addEventListener("playing", () => {
    drawKey(player.key);
    if (!player.frame) player.frame = requestAnimationFrame(tick);
  });
  audio.addEventListener("pause", () => drawKey(player.key));
  audio.addEventListener("ended", () => {
    const { message, chat } = player;
    stop();
    const next = chat ? nextUnplayed(message) : null;
    if (next) start(next.message, next.button);
  });
  audio.addEventListener("error", () => {
    // A stop empties the source: only an error of the file being played counts.
    if (!player.key || !audio.getAttribute("src")) return;
    const key = player.key;
    failed.add(key);
    stop();
    drawKey(key);
  });
  player.audio = audio;
  return audio;
}

/**
 * The next voice message below `message` in its chat that I have not played, among those on the
 * page (the loaded history), with its bubble; or null.
 */
function nextUnplayed(message) {
  const box = bucket(message.conversation_id);
  const seqs = [...box.bySeq.keys()].filter((seq) => seq > message.seq).sort((a, b) => a - b);
  for (const seq of seqs) {
    const candidate = box.bySeq.get(seq);
    if (candidate.recalled || candidate.body?.type !== "audio" || candidate.sender?.id === state.me.id || isPlayed(candidate)) continue;
    const button = bubblesOf(keyOf(candidate, false))[0];
    if (button) return { message: candidate, button };
  }
  return null;
}

function unsentKey() {
  return state.me?.id != null ? `parley.unsentPlays.${state.me.id}` : null;
}

function saveUnsent() {
  const name = unsentKey();
  if (!name) return;
  try {
    if (unsent.size) sessionStorage.setItem(name, JSON.stringify([...unsent.values()]));
    else sessionStorage.removeItem(name);
  } catch {
    // Storage full or refused: the plays are still told from memory.
  }
}

function loadUnsent() {
  const name = unsentKey();
  if (!name) return;
  try {
    const saved = JSON.parse(sessionStorage.getItem(name) || "[]");
    for (const [conversationId, seq] of Array.isArray(saved) ? saved : []) {
      if (Number.isInteger(conversationId) && Number.isInteger(seq)) unsent.set(`${conversationId}:${seq}`, [conversationId, seq]);
    }
  } catch {
    // Nothing readable kept.
  }
}

/** Not now (offline, too many requests, a server error): worth telling again. */
function tellAgain(error) {
  const status = Number(error?.status);
  return error?.code === "network" || status === 0 || status === 429 || status >= 500;
}

function retrySoon() {
  if (retryTimer) return;
  retryTimer = setTimeout(() => {
    retryTimer = 0;
    flushUnsent();
  }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 60_000);
}

function flushUnsent() {
  for (const [conversationId, seq] of [...unsent.values()]) tellPlayed(conversationId, seq);
}

async function tellPlayed(conversationId, seq) {
  const key = `${conversationId}:${seq}`;
  // Kept until the server has it: a reload meanwhile tells it again.
  unsent.set(key, [conversationId, seq]);
  saveUnsent();
  if (telling.has(key)) return;
  telling.add(key);
  try {
    await api(`/conversations/${conversationId}/messages/${seq}/played`, { method: "PUT" });
    retryDelay = 2000;
  } catch (error) {
    // Offline: told again after the next connect; busy or failing: after a short wait too. A
    // refusal (recalled meanwhile, no longer visible) leaves nothing to tell.
    if (tellAgain(error)) {
      telling.delete(key);
      if (state.connected) retrySoon();
      return;
    }
  }
  telling.delete(key);
  unsent.delete(key);
  saveUnsent();
}

on("connection", () => {
  if (!state.connected) return;
  loadUnsent();
  flushUnsent();
});

/** Someone else's stored message, played for the first time: the dot goes, the server is told. */
function notePlayed(message) {
  if (!stored(message) || message.sender?.id === state.me?.id || isPlayed(message)) return;
  setPlayed(message.conversation_id, message.seq);
  for (const button of bubblesOf(keyOf(message, false))) {
    delete button.dataset.unplayed;
    draw(button);
  }
  tellPlayed(message.conversation_id, message.seq);
}

function start(message, button) {
  const key = button.dataset.key;
  const src = button.dataset.src;
  if (!src) return;
  if (recordings.size) {
    toast(t("voiceplay.recording"));
    return;
  }
  const audio = audioElement();
  // Paused here before: it goes on from where it was.
  if (player.key === key && audio.getAttribute("src") && !audio.ended) {
    for (const video of document.querySelectorAll("video")) if (!video.paused) video.pause();
    audio.play().catch(() => {});
    drawKey(key);
    return;
  }
  if (player.key) stop();
  // One sound at a time: a video playing in the page pauses.
  for (const video of document.querySelectorAll("video")) if (!video.paused) video.pause();
  failed.delete(key);
  player.key = key;
  player.message = message;
  // The progress is of the file's real length (7.4 s), not of the 7″ shown.
  player.seconds = Number(button.dataset.duration) || Number(button.dataset.seconds) || 1;
  player.chat = button.dataset.chat === "1";
  audio.src = src;
  audio.play().catch((error) => {
    // Cut short by a stop or another play (AbortError): nothing to do. A file that cannot play
    // fails; a play the browser refused (no user gesture yet) is idle again.
    if (player.key !== key || error?.name === "AbortError") return;
    if (error?.name === "NotSupportedError") failed.add(key);
    stop();
    drawKey(key);
  });
  drawKey(key);
  if (player.chat) notePlayed(message);
}

// A video starting stops the voice message playing.
document.addEventListener("play", (event) => {
  if (event.target instanceof HTMLVideoElement && player.key) stop();
}, true);

/** A first play redraws the row (its dot goes): the focus moves on to the new bubble. */
function keepFocus(button) {
  if (document.activeElement !== button) return;
  requestAnimationFrame(() => {
    if (!button.isConnected) bubblesOf(button.dataset.key)[0]?.focus({ preventScroll: true });
  });
}

function wave() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "voice-wave");
  svg.setAttribute("aria-hidden", "true");
  const parts = [
    ["circle", { cx: "6", cy: "12", r: "1.8", class: "wave-0" }],
    ["path", { d: "M10 8.5a5 5 0 0 1 0 7", class: "wave-1" }],
    ["path", { d: "M13.5 5a10 10 0 0 1 0 14", class: "wave-2" }],
  ];
  for (const [tag, attrs] of parts) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
    svg.append(el);
  }
  return svg;
}

/**
 * The voice bubble of `message` (an `audio` body): `mine` for my own (no dot), `readOnly` inside
 * a chat-history sheet (plays, but has no played state of its own).
 */
export function voiceBubble(message, { mine = false, readOnly = false } = {}) {
  const body = message.body || {};
  const seconds = voiceSeconds(body.duration);
  const key = keyOf(message, readOnly);
  const src = localUrl(message) || safeUrl(body.url);
  const inChat = !readOnly && stored(message);
  const unplayed = inChat && !mine && !isPlayed(message);
  const button = h(
    "button",
    {
      type: "button",
      class: "bubble voice",
      disabled: !src,
      dataset: { key, seconds, duration: Number(body.duration) > 0 ? String(body.duration) : "", src: src || "", chat: inChat ? "1" : "0", unplayed: unplayed ? "1" : "" },
    },
    wave(),
    h("span", { class: "voice-length", text: `${seconds}″` }),
    h("span", { class: "voice-progress", "aria-hidden": "true" }),
  );
  button.style.setProperty("--seconds", String(seconds));
  button.addEventListener("click", () => {
    keepFocus(button);
    // A second click pauses; another resumes where it was.
    if (isPlaying(key)) player.audio.pause();
    else start(message, button);
  });
  draw(button);
  if (isPlaying(key) && !player.frame) player.frame = requestAnimationFrame(tick);
  if (!unplayed) delete button.dataset.unplayed;
  return h(
    "div",
    { class: "voice-line" },
    button,
    unplayed ? h("span", { class: "voice-unplayed", role: "img", "aria-label": t("voiceplay.unplayed"), title: t("voiceplay.unplayed") }) : null,
  );
}
