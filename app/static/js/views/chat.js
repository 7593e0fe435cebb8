// The chat pane: header, history with infinite scroll up, composer with emoji, uploads, location.
import { api, upload } from "../api.js";
import { avatar, confirmSheet, dayKey, dayLabel, h, icon, sheet, toast } from "../dom.js";
import { emojiPicker } from "../emoji.js";
import { t } from "../i18n.js";
import { bucket, displayName, on, putSummary, state } from "../store.js";
import { deliver, loadHistory, markRead, send, typing } from "../sync.js";
import { messageRow } from "./message.js";

const NEAR_BOTTOM = 120;

export function chatView(conversationId) {
  const cleanups = [];
  const title = h("h2", { class: "title" });
  const subtitle = h("div", { class: "sub" });
  const head = h("div", { class: "head-avatar" });
  const header = h(
    "header",
    { class: "bar chat-bar" },
    h("a", { class: "icon-btn back", href: "#/chats", "aria-label": t("back") }, icon("back")),
    head,
    h("div", { class: "title-wrap" }, title, subtitle),
    h("button", { class: "icon-btn", type: "button", "aria-label": t("chat.more"), onclick: () => chatMenu(conversationId) }, icon("more")),
  );
  const older = h("div", { class: "older muted" });
  const list = h("div", { class: "msg-list" });
  const scroller = h("div", { class: "msgs", role: "log", "aria-live": "polite" }, older, list);
  const uploads = h("div", { class: "uploads" });
  const input = h("textarea", { class: "input composer-input", rows: 1, maxlength: 5000, placeholder: t("chat.placeholder"), "aria-label": t("chat.placeholder") });
  const sendButton = h("button", { type: "button", class: "btn primary send", text: t("chat.send"), hidden: true });
  const plusButton = h("button", { type: "button", class: "icon-btn attach-btn", "aria-label": t("chat.attach") }, icon("plus"));
  const emojiButton = h("button", { type: "button", class: "icon-btn emoji-btn", "aria-label": t("chat.emoji") }, icon("smile"));
  const drawer = h("div", { class: "drawer", hidden: true });
  const closedNote = h("div", { class: "closed-note muted", hidden: true });
  const composer = h("footer", { class: "composer" }, emojiButton, input, plusButton, sendButton);
  const el = h("section", { class: "chat" }, header, scroller, uploads, closedNote, composer, drawer);

  const elements = new Map();
  let renderQueued = false;
  let anchor = null;
  let forceBottom = true;
  let loadingOlder = false;

  const summary = () => state.conversations.get(conversationId);

  function drawHeader() {
    const s = summary();
    if (!s) return;
    title.textContent = s.peer ? displayName(s.peer) : s.name;
    head.replaceChildren(avatar(s.name, s.avatar_url, { online: s.peer && !s.peer.is_bot ? !!s.online : null, size: "sm" }));
    const typers = [...(state.typing.get(conversationId) || new Map())].filter(([, until]) => until > Date.now());
    if (!state.connected) {
      subtitle.textContent = t("conn.offline");
      subtitle.className = "sub offline";
    } else if (typers.length) {
      subtitle.textContent = s.group ? t("chat.typing_named", { name: typers.map(([id]) => memberName(id)).join(", ") }) : t("chat.typing");
      subtitle.className = "sub typing";
    } else if (s.group) {
      subtitle.textContent = t("chat.members", { n: s.group.member_count });
      subtitle.className = "sub";
    } else if (s.peer?.is_bot) {
      subtitle.textContent = t("chat.bot");
      subtitle.className = "sub";
    } else {
      subtitle.textContent = s.online ? t("online") : t("offline");
      subtitle.className = `sub ${s.online ? "online" : ""}`;
    }
    let note = "";
    if (s.group?.dissolved) note = t("chat.dissolved");
    else if (!s.active) note = t("chat.inactive");
    else if (state.sanction?.active) note = t("chat.muted_note");
    closedNote.textContent = note;
    closedNote.hidden = !note;
    composer.hidden = !!note;
    if (note) drawer.hidden = true;
  }

  function memberName(userId) {
    for (const message of bucket(conversationId).bySeq.values()) {
      if (message.sender?.id === userId) return displayName(message.sender);
    }
    const friend = state.friends.find((item) => item.user.id === userId);
    return friend ? displayName(friend.user) : t("chat.someone");
  }

  /** The rows in order: stored messages by seq, then this device's pending sends, with day separators. */
  function rows() {
    const box = bucket(conversationId);
    const s = summary();
    const isGroup = s?.kind === "group";
    const seqs = [...box.bySeq.keys()].filter((seq) => box.minSeq === null || seq >= box.minSeq).sort((a, b) => a - b);
    let lastMine = null;
    for (const seq of seqs) if (box.bySeq.get(seq).sender?.id === state.me.id) lastMine = seq;
    const peerRead = state.peerRead.get(conversationId) || 0;
    const out = [];
    let day = null;
    const addDay = (iso) => {
      const key = dayKey(iso);
      if (key !== day) {
        day = key;
        out.push({ key: `d:${key}`, sig: dayLabel(iso), build: () => h("div", { class: "day" }, h("span", { text: dayLabel(iso) })) });
      }
    };
    for (const seq of seqs) {
      const message = box.bySeq.get(seq);
      addDay(message.created_at);
      const mine = message.sender?.id === state.me.id;
      const status = !isGroup && mine && seq === lastMine ? (peerRead >= seq ? "read" : "sent") : null;
      const showName = isGroup && !mine;
      out.push({
        key: message.client_msg_id && mine ? `c:${message.client_msg_id}` : `s:${seq}`,
        sig: `${seq}|${message.recalled}|${status}|${showName}|${displayName(message.sender)}`,
        build: () => messageRow(message, { mine, showName, status }),
      });
    }
    const pendings = [...box.pending.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const pending of pendings) {
      addDay(pending.createdAt);
      const message = { body: pending.body, type: pending.body.type, sender: state.me, client_msg_id: pending.clientMsgId, created_at: pending.createdAt };
      out.push({
        key: `c:${pending.clientMsgId}`,
        sig: `p|${pending.state}|${pending.error?.message || ""}`,
        build: () => messageRow(message, { mine: true, pending, onRetry: () => deliver(conversationId, pending.clientMsgId) }),
      });
    }
    return out;
  }

  function render() {
    renderQueued = false;
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM;
    const wanted = rows();
    const keep = new Set(wanted.map((row) => row.key));
    for (const [key, entry] of elements) {
      if (!keep.has(key)) {
        entry.el.remove();
        elements.delete(key);
      }
    }
    let cursor = list.firstChild;
    for (const row of wanted) {
      let entry = elements.get(row.key);
      if (!entry) {
        entry = { el: row.build(), sig: row.sig };
        elements.set(row.key, entry);
      } else if (entry.sig !== row.sig) {
        const fresh = row.build();
        if (cursor === entry.el) cursor = fresh;
        entry.el.replaceWith(fresh);
        entry.el = fresh;
        entry.sig = row.sig;
      }
      if (entry.el === cursor) cursor = cursor.nextSibling;
      else list.insertBefore(entry.el, cursor);
    }
    const box = bucket(conversationId);
    older.textContent = !box.loaded ? t("loading") : box.hasMoreBefore ? "" : t("chat.beginning");
    if (anchor !== null) {
      scroller.scrollTop = scroller.scrollHeight - anchor;
      anchor = null;
    } else if (forceBottom || nearBottom) {
      scroller.scrollTop = scroller.scrollHeight;
      forceBottom = false;
    }
    drawHeader();
    readIfSeen();
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(render);
  }

  function readIfSeen() {
    if (document.visibilityState === "visible" && el.isConnected && bucket(conversationId).loaded) markRead(conversationId);
  }

  async function loadOlder() {
    const box = bucket(conversationId);
    if (loadingOlder || !box.loaded || !box.hasMoreBefore) return;
    loadingOlder = true;
    older.textContent = t("loading");
    try {
      const distance = scroller.scrollHeight - scroller.scrollTop;
      await loadHistory(conversationId);
      anchor = distance;
      render();
    } catch {
      older.textContent = t("error.network");
    } finally {
      loadingOlder = false;
    }
  }

  async function peerReceipts() {
    const s = summary();
    if (!s || s.kind !== "direct") return;
    const box = bucket(conversationId);
    const mine = [...box.bySeq.values()].filter((m) => m.sender?.id === state.me.id).map((m) => m.seq);
    if (!mine.length) return;
    const last = Math.max(...mine);
    try {
      const data = await api(`/conversations/${conversationId}/messages/${last}/readers`);
      if (data.read_by.length && (state.peerRead.get(conversationId) || 0) < last) {
        state.peerRead.set(conversationId, last);
        queueRender();
      }
    } catch {
      // Receipts are a nicety; live receipt:read events still arrive.
    }
  }

  // Composer.
  function autosize() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 140)}px`;
    const empty = !input.value.trim();
    sendButton.hidden = empty;
    plusButton.hidden = !empty;
  }
  function sendText() {
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    autosize();
    forceBottom = true;
    send(conversationId, { type: "txt", msg: text });
  }
  input.addEventListener("input", () => {
    autosize();
    if (input.value) typing(conversationId);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  input.addEventListener("focus", () => {
    drawer.hidden = true;
  });
  sendButton.addEventListener("click", sendText);

  function toggleDrawer(kind) {
    if (!drawer.hidden && drawer.dataset.kind === kind) {
      drawer.hidden = true;
      return;
    }
    drawer.dataset.kind = kind;
    drawer.replaceChildren(kind === "emoji" ? emojiPicker(insertEmoji) : attachPanel());
    drawer.hidden = false;
    forceBottom = true;
    queueRender();
  }
  function insertEmoji(emoji) {
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.value = input.value.slice(0, start) + emoji + input.value.slice(end);
    input.selectionStart = input.selectionEnd = start + emoji.length;
    autosize();
  }
  emojiButton.addEventListener("click", () => toggleDrawer("emoji"));
  plusButton.addEventListener("click", () => toggleDrawer("attach"));

  function attachPanel() {
    const picker = (accept, type) => {
      const file = h("input", { type: "file", accept, hidden: true, onchange: () => {
        if (file.files[0]) startUpload(file.files[0], type);
        drawer.hidden = true;
      } });
      return file;
    };
    const tiles = [
      ["image", "chat.image", "image/*", "img"],
      ["video", "chat.video", "video/*", "video"],
      ["file", "chat.file", "", "file"],
    ].map(([name, label, accept, type]) => {
      const fileInput = picker(accept, type);
      return h("button", { type: "button", class: "tile", dataset: { kind: type }, onclick: () => fileInput.click() }, h("span", { class: "tile-icon" }, icon(name)), h("span", { text: t(label) }), fileInput);
    });
    tiles.push(h("button", { type: "button", class: "tile", dataset: { kind: "loc" }, onclick: () => { drawer.hidden = true; locationSheet(conversationId); } }, h("span", { class: "tile-icon" }, icon("location")), h("span", { text: t("chat.location") })));
    return h("div", { class: "attach" }, tiles);
  }

  function startUpload(file, type) {
    const bar = h("progress", { max: 1, value: 0 });
    const job = upload(file, (fraction) => {
      bar.value = fraction;
    });
    const item = h("div", { class: "upload-item" }, h("span", { class: "upload-name", text: file.name }), bar, h("button", { type: "button", class: "btn small", text: t("cancel"), onclick: () => job.abort() }));
    uploads.append(item);
    job.promise
      .then((stored) => {
        forceBottom = true;
        send(conversationId, { type, upload_id: stored.id });
      })
      .catch((error) => {
        if (error.code !== "cancelled") toast(error.message || t("error.upload"));
      })
      .finally(() => item.remove());
  }

  scroller.addEventListener("scroll", () => {
    if (scroller.scrollTop < 200) loadOlder();
  }, { passive: true });
  const onVisible = () => readIfSeen();
  document.addEventListener("visibilitychange", onVisible);
  cleanups.push(() => document.removeEventListener("visibilitychange", onVisible));
  cleanups.push(on(`messages:${conversationId}`, queueRender));
  cleanups.push(on("pending", queueRender));
  cleanups.push(on(`conversation:${conversationId}`, queueRender));
  cleanups.push(on(`typing:${conversationId}`, drawHeader));
  cleanups.push(on("presence", drawHeader));
  cleanups.push(on("connection", drawHeader));
  cleanups.push(on("sanction", drawHeader));
  cleanups.push(on("friends", queueRender));
  cleanups.push(on("synced", queueRender));

  (async () => {
    if (!summary()) {
      try {
        putSummary((await api(`/conversations/${conversationId}`)).conversation);
      } catch {
        toast(t("chat.not_found"));
        window.location.hash = "#/chats";
        return;
      }
    }
    drawHeader();
    if (!bucket(conversationId).loaded) {
      try {
        await loadHistory(conversationId);
      } catch {
        older.textContent = t("error.network");
      }
    }
    forceBottom = true;
    render();
    peerReceipts();
    if (window.matchMedia("(min-width: 800px)").matches) input.focus();
  })();
  queueRender();

  return { el, destroy: () => cleanups.forEach((fn) => fn()) };
}

async function chatMenu(conversationId) {
  const s = state.conversations.get(conversationId);
  if (!s) return;
  const patch = async (changes) => {
    try {
      putSummary((await api(`/conversations/${conversationId}`, { method: "PATCH", body: changes })).conversation);
    } catch (error) {
      toast(error.message);
    }
  };
  await sheet(s.peer ? displayName(s.peer) : s.name, (body, close) => {
    const item = (label, action) => h("button", { type: "button", class: "menu-item", text: label, onclick: () => { close(); action(); } });
    body.append(
      h(
        "div",
        { class: "menu" },
        s.group ? item(t("group.info"), () => { window.location.hash = `#/group/${s.group.id}`; }) : null,
        s.peer && !s.peer.is_bot ? item(t("contacts.profile"), () => { window.location.hash = `#/user/${s.peer.id}`; }) : null,
        item(s.pinned ? t("chat.unpin") : t("chat.pin"), () => patch({ pinned: !s.pinned })),
        item(s.muted ? t("chat.unmute") : t("chat.mute"), () => patch({ muted: !s.muted })),
        item(t("chat.hide"), async () => {
          if (await confirmSheet(t("chat.hide"), t("chat.hide_confirm"), t("chat.hide"))) {
            await patch({ hidden: true });
            state.conversations.delete(conversationId);
            window.location.hash = "#/chats";
          }
        }),
      ),
    );
  });
}

function locationSheet(conversationId) {
  return sheet(t("chat.location"), (body, close) => {
    const titleInput = h("input", { class: "input", name: "title", placeholder: t("loc.title"), maxlength: 200 });
    const lat = h("input", { class: "input", name: "lat", type: "number", step: "any", min: -90, max: 90, placeholder: t("loc.lat") });
    const lng = h("input", { class: "input", name: "lng", type: "number", step: "any", min: -180, max: 180, placeholder: t("loc.lng") });
    const status = h("p", { class: "muted small" });
    const here = h("button", { type: "button", class: "btn", onclick: () => {
      if (!navigator.geolocation) {
        status.textContent = t("loc.unavailable");
        return;
      }
      status.textContent = t("loc.locating");
      navigator.geolocation.getCurrentPosition(
        (position) => {
          lat.value = position.coords.latitude.toFixed(6);
          lng.value = position.coords.longitude.toFixed(6);
          if (!titleInput.value) titleInput.value = t("loc.my_location");
          status.textContent = "";
        },
        () => {
          status.textContent = t("loc.denied");
        },
        { enableHighAccuracy: true, timeout: 10000 },
      );
    } }, icon("location"), h("span", { text: t("loc.use_mine") }));
    const form = h("form", { class: "stack", onsubmit: (event) => {
      event.preventDefault();
      const latitude = Number(lat.value);
      const longitude = Number(lng.value);
      if (lat.value === "" || lng.value === "" || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) {
        status.textContent = t("loc.invalid");
        return;
      }
      send(conversationId, { type: "loc", title: titleInput.value.trim() || t("loc.pinned"), lat: latitude, lng: longitude });
      close();
    } }, here, titleInput, h("div", { class: "row-btns" }, lat, lng), status, h("button", { type: "submit", class: "btn primary", text: t("chat.send") }));
    body.append(form);
  });
}
