// The chat pane: header, pin bar, history with infinite scroll both ways (a jump to a message far
// back shows a window around it), the unread divider, composer with replies, edits, mentions,
// emoji, uploads, location; select-many mode.
import { api } from "../api.js";
import { avatar, dayKey, dayLabel, h, icon, toast } from "../dom.js";
import { emojiPicker } from "../emoji.js";
import { t } from "../i18n.js";
import { roving } from "../keys.js";
import { openLayer } from "../layers.js";
import { bucket, conversationName, displayName, on, state } from "../store.js";
import { deliver, loadHistory, markRead, summaryOf, typing } from "../sync.js";
import { selectionBar } from "./actions.js";
import { attachPanel, uploader } from "./attach.js";
import { chatMenu } from "./chatsheets.js";
import { createComposer } from "./composer.js";
import { attached, inWindow, jumpButtons, loadAround, loadLatest, loadNewer, unreadDivider } from "./jumps.js";
import { forgetMembers, groupMembers } from "./mentions.js";
import { openMessageMenu } from "./menu.js";
import { releaseLocalMedia } from "./localmedia.js";
import { messageRow } from "./message.js";
import { pinBar } from "./pinbar.js";
import { scrollKeeper } from "./scrollkeep.js";
import { speakGate } from "./speakstate.js";

const NEAR_BOTTOM = 120;
const PAGE = 40;
const GROUP_GAP_MS = 5 * 60 * 1000;
// Each stored message object once gets a number: a changed message is a new object, so a new row.
const versions = new WeakMap();
let nextVersion = 1;
function versionOf(message) {
  if (!versions.has(message)) versions.set(message, nextVersion++);
  return versions.get(message);
}

/** The chat pane; `seq` opens it at that message (a window around it, flashed). */
export function chatView(conversationId, { seq: openSeq = null } = {}) {
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
  const newer = h("div", { class: "newer muted" });
  const scroller = h("div", { class: "msgs", role: "log", "aria-live": "polite" }, older, list, newer);
  // At the end the view follows what arrives; scrolled up, nothing moves what is read (./scrollkeep.js).
  const keeper = scrollKeeper(scroller, list, { attached: () => attached(conversationId) });
  // The messages are one Tab stop (the newest first); Up/Down move between them, Enter opens one's menu.
  cleanups.push(roving(list, ".msg-list > .msg, .msg-list > .sys, .msg-list > .notice-card", { initial: (items) => items[items.length - 1] }));
  const uploads = h("div", { class: "uploads" });
  const input = h("textarea", { class: "input composer-input", rows: 1, maxlength: 5000, placeholder: t("chat.placeholder"), "aria-label": t("chat.placeholder") });
  const sendButton = h("button", { type: "button", class: "btn primary send", text: t("chat.send"), hidden: true });
  const plusButton = h("button", { type: "button", class: "icon-btn attach-btn", "aria-label": t("chat.attach") }, icon("plus"));
  const emojiButton = h("button", { type: "button", class: "icon-btn emoji-btn", "aria-label": t("chat.emoji") }, icon("smile"));
  const drawer = h("div", { class: "drawer", hidden: true });
  const closedNote = h("div", { class: "closed-note muted", hidden: true });
  const composer = h("footer", { class: "composer" }, emojiButton, input, plusButton, sendButton);
  const selectSlot = h("div", { class: "select-slot", hidden: true });

  const elements = new Map();
  let renderQueued = false;
  let forceBottom = true;
  let loadingOlder = false;
  // After a jump: the seq to bring into view ({seq, flash, top}).
  let target = null;
  // The "N new messages" line: above the first unread message when the chat was opened.
  let divider = null;
  // last_seq when the user was last at the newest message: what came since is counted on the button.
  let seenSeq = null;
  let mentionDone = false;
  let ready = false; // the first page is placed (nothing is read before)
  let selecting = false;
  const selected = new Set();
  // A group chat: {id, role, mentionAll}, with the members' roles once loaded.
  let groupInfo = null;
  const roles = new Map();

  const summary = () => state.conversations.get(conversationId);
  // Until the group's details arrive, mentions work without @all.
  const group = () => groupInfo || (summary()?.group ? { id: summary().group.id, role: null, mentionAll: false } : null);

  const ctx = {
    conversationId,
    get conversation() {
      return summary();
    },
    meId: state.me.id,
    get role() {
      return groupInfo?.role ?? null;
    },
    roleOf: (userId) => roles.get(userId),
    get pins() {
      return summary()?.pins || [];
    },
    startReply: (message) => compose.startReply(message),
    startEdit: (message) => compose.startEdit(message),
    enterSelect(message) {
      selecting = true;
      selected.clear();
      if (message?.seq != null) selected.add(message.seq);
      drawSelection();
    },
    selected: () => [...selected],
    exitSelect() {
      selecting = false;
      selected.clear();
      drawSelection();
    },
  };

  // Only while this chat is open does it hold the sender's own media: its cleanup releases it.
  const startUpload = uploader({ conversationId, uploads, takeReply: () => compose.takeReply(), isOpen: () => el.isConnected, toNewest });
  const compose = createComposer({ conversationId, input, autosize, group, onSent: toNewest, upload: startUpload });
  // The microphone first, as in WeChat (./voicerecord.js).
  composer.prepend(compose.voice);
  const pins = pinBar({ conversationId, canUnpin: () => !!summary()?.active && (summary()?.kind !== "group" || ["owner", "admin"].includes(groupInfo?.role)), jumpTo });
  const jumps = jumpButtons({ onBottom: toNewest, onMention: () => {
    mentionDone = true;
    const seq = summary()?.mention_seq;
    if (seq) jumpTo(seq);
    drawJumps();
  } });
  const el = h("section", { class: "chat" }, header, pins.el, h("div", { class: "msgs-wrap" }, scroller, jumps.el), uploads, closedNote, compose.el, composer, selectSlot, drawer);
  compose.acceptDrops(el);
  // Closed while a mute holds (./speakstate.js): the reason above the composer, its controls off.
  const speak = speakGate({ conversationId, input, controls: [compose.voice, emojiButton, plusButton, sendButton], drawer });
  composer.before(speak.el);
  cleanups.push(speak.destroy);
  // Taken off my list on another device (I left the group there): the chat closes here too.
  cleanups.push(on("dropped", (id) => {
    if (id === conversationId) window.location.hash = "#/chats";
  }));

  function drawHeader() {
    const s = summary();
    if (!s) return;
    title.textContent = conversationName(s);
    head.replaceChildren(avatar(conversationName(s), s.avatar_url, { online: s.peer && !s.peer.is_bot ? !!s.online : null, size: "sm" }));
    const typers = [...(state.typing.get(conversationId) || new Map())].filter(([, until]) => until > Date.now());
    if (!state.connected) {
      subtitle.textContent = t("conn.offline");
      subtitle.className = "sub offline";
    } else if (typers.length) {
      subtitle.textContent = s.group ? t("chat.typing_named", { name: typers.map(([id]) => memberName(id)).join(", ") }) : t("chat.typing");
      subtitle.className = "sub typing";
    } else if (s.kind === "notice") {
      subtitle.textContent = t("chat.notice_sub");
      subtitle.className = "sub";
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
    // Notices are read-only: nobody writes there (the server refuses with `read_only`).
    if (s.kind === "notice") note = t("chat.notice_readonly");
    else if (s.group?.dissolved) note = t("chat.dissolved");
    else if (!s.active) note = t("chat.inactive");
    closedNote.textContent = note;
    closedNote.hidden = !note;
    composer.hidden = !!note || selecting;
    compose.el.hidden = !!note || selecting;
    if (note || selecting) drawer.hidden = true;
    speak.draw(!!note || selecting);
  }

  function memberName(userId) {
    for (const message of bucket(conversationId).bySeq.values()) {
      if (message.sender?.id === userId) return displayName(message.sender);
    }
    const friend = state.friends.find((item) => item.user.id === userId);
    return friend ? displayName(friend.user) : t("chat.someone");
  }

  /**
   * The rows in order: the stored messages of the window by seq, then this device's pending sends
   * (once the window reaches the newest), with day separators and the unread divider. A message
   * right after one of the same sender within five minutes is `grouped` (no avatar, name, time).
   */
  function rows() {
    const box = bucket(conversationId);
    const s = summary();
    const isGroup = s?.kind === "group";
    const seqs = [...box.bySeq.keys()].filter((seq) => (box.minSeq === null || seq >= box.minSeq) && (box.maxSeq === null || seq <= box.maxSeq)).sort((a, b) => a - b);
    let lastMine = null;
    for (const seq of seqs) if (box.bySeq.get(seq).sender?.id === state.me.id) lastMine = seq;
    const peerRead = state.peerRead.get(conversationId) || 0;
    const out = [];
    let day = null;
    let previous = null;
    let dividerPlaced = false;
    const addDay = (iso) => {
      const key = dayKey(iso);
      if (key !== day) {
        day = key;
        previous = null;
        out.push({ key: `d:${key}`, sig: dayLabel(iso), build: () => h("div", { class: "day" }, h("span", { text: dayLabel(iso) })) });
      }
    };
    const groupedWith = (message) => {
      const grouped = !!previous && !message.recalled && message.type !== "system" && previous.sender?.id === message.sender?.id && Date.parse(message.created_at) - Date.parse(previous.created_at) < GROUP_GAP_MS;
      previous = message.recalled || message.type === "system" ? null : message;
      return grouped;
    };
    const opts = (message, mine) => ({
      mine,
      meId: state.me.id,
      onMenu: (item, anchorEl, event) => openMessageMenu(item, anchorEl, ctx),
      onQuote: (seq) => jumpTo(seq),
      onReedit: (text) => compose.setText(text),
      selecting,
      selected: selecting && selected.has(message.seq),
      // In select-many mode a tap on a message picks it (or puts it back).
      onSelect: (item) => {
        if (selected.has(item.seq)) selected.delete(item.seq);
        else selected.add(item.seq);
        drawSelection();
      },
    });
    for (const seq of seqs) {
      const message = box.bySeq.get(seq);
      addDay(message.created_at);
      if (divider && seq >= divider.seq && !dividerPlaced) {
        dividerPlaced = true;
        previous = null;
        const count = divider.count;
        out.push({ key: "unread", sig: String(count), build: () => unreadDivider(count) });
      }
      const mine = message.sender?.id === state.me.id;
      const status = !isGroup && mine && seq === lastMine ? (peerRead >= seq ? "read" : "sent") : null;
      const showName = isGroup && !mine;
      const grouped = groupedWith(message);
      const row = { ...opts(message, mine), showName, status, grouped };
      out.push({
        key: message.client_msg_id && mine ? `c:${message.client_msg_id}` : `s:${seq}`,
        sig: `${seq}|${versionOf(message)}|${status}|${showName}|${grouped}|${selecting}|${row.selected}|${displayName(message.sender)}`,
        build: () => messageRow(message, row),
      });
    }
    const pendings = box.maxSeq === null ? [...box.pending.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt)) : [];
    for (const pending of pendings) {
      addDay(pending.createdAt);
      const { reply = null, mentions = [], mention_all: mentionAll = false } = pending.extras || {};
      const message = { body: { ...pending.extras?.preview, ...pending.body }, type: pending.body.type, sender: state.me, client_msg_id: pending.clientMsgId, created_at: pending.createdAt, reply, mentions, mention_all: mentionAll, reactions: [], edit_count: 0 };
      const grouped = groupedWith(message);
      out.push({
        key: `c:${pending.clientMsgId}`,
        sig: `p|${pending.state}|${pending.error?.message || ""}|${grouped}`,
        build: () => messageRow(message, { mine: true, meId: state.me.id, grouped, pending, onRetry: () => deliver(conversationId, pending.clientMsgId) }),
      });
    }
    return out;
  }

  const fromBottom = keeper.fromBottom;

  /** Showing the newest message: the window reaches it and the list is scrolled to its end. */
  function atNewest() {
    return attached(conversationId) && fromBottom() < NEAR_BOTTOM;
  }

  function render() {
    renderQueued = false;
    keeper.before();
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
    newer.textContent = box.maxSeq !== null ? t("loading") : "";
    if (target) {
      const row = list.querySelector(`:scope > [data-seq="${target.seq}"]`);
      const mark = (target.top && list.querySelector(":scope > .unread-divider")) || row;
      if (mark) {
        if (target.top) scroller.scrollTop += mark.getBoundingClientRect().top - scroller.getBoundingClientRect().top - 8;
        else mark.scrollIntoView({ block: "center" });
        if (target.flash && row) flash(row);
      }
      target = null;
      forceBottom = false;
      keeper.placed();
    } else {
      const bottom = (forceBottom || keeper.stuck) && attached(conversationId);
      if (bottom) forceBottom = false;
      keeper.after(bottom);
    }
    drawHeader();
    pins.draw();
    readIfSeen();
  }

  function flash(row) {
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 1600);
  }

  /** Show a message: scroll to it when it is in the window, else load a page around it first. */
  async function jumpTo(seq) {
    if (!inWindow(conversationId, seq)) {
      try {
        await loadAround(conversationId, seq);
      } catch (error) {
        toast(error.message || t("error.network"));
        return;
      }
    }
    if (!bucket(conversationId).bySeq.has(seq)) {
      toast(t("jump.not_found"));
      return;
    }
    target = { seq, flash: true };
    render();
  }

  /** Back to the newest message (loading the newest page when the window ends before it). */
  async function toNewest() {
    forceBottom = true;
    if (!attached(conversationId)) {
      try {
        await loadLatest(conversationId, PAGE);
      } catch (error) {
        toast(error.message || t("error.network"));
        return;
      }
    }
    forceBottom = true;
    render();
  }

  function drawJumps() {
    const s = summary();
    const newest = atNewest();
    if (newest || seenSeq === null) seenSeq = s?.last_seq ?? seenSeq;
    const away = !attached(conversationId) || fromBottom() > scroller.clientHeight / 2;
    jumps.update({
      showBottom: away,
      newCount: away ? Math.max(0, (s?.last_seq ?? 0) - (seenSeq ?? 0)) : 0,
      showMention: !mentionDone && !!s?.mention_seq && (s.unread_mentions || 0) > 0,
    });
  }

  function drawSelection() {
    selectSlot.hidden = !selecting;
    selectSlot.replaceChildren(selecting ? selectionBar(ctx) : "");
    drawHeader();
    queueRender();
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(render);
  }

  /** Read up to the newest once it is on screen (the user scrolled down to it). */
  function readIfSeen() {
    if (!ready) return;
    drawJumps();
    if (document.visibilityState === "visible" && el.isConnected && bucket(conversationId).loaded && atNewest()) markRead(conversationId);
  }

  async function loadOlder() {
    const box = bucket(conversationId);
    if (loadingOlder || !box.loaded || !box.hasMoreBefore) return;
    loadingOlder = true;
    older.textContent = t("loading");
    try {
      await loadHistory(conversationId);
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
  const sendText = () => compose.submit();
  input.addEventListener("input", () => {
    autosize();
    if (input.value && !compose.editing) typing(conversationId);
  });
  input.addEventListener("keydown", (event) => {
    if (compose.onKeydown(event)) return;
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
    drawer.replaceChildren(kind === "emoji" ? emojiPicker(insertEmoji) : attachPanel({ conversationId, drawer, startUpload, toNewest }));
    drawer.hidden = false;
    // Esc closes it (it is also closed by a tap in the input) and gives the focus back.
    openLayer(drawer, { close: () => { drawer.hidden = true; }, opener: kind === "emoji" ? emojiButton : plusButton, modal: false, scope: el });
    forceBottom = true;
    queueRender();
  }
  function insertEmoji(emoji) {
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.value = input.value.slice(0, start) + emoji + input.value.slice(end);
    input.selectionStart = input.selectionEnd = start + emoji.length;
    autosize();
    compose.keepDraft();
  }
  emojiButton.addEventListener("click", () => toggleDrawer("emoji"));
  plusButton.addEventListener("click", () => toggleDrawer("attach"));

  scroller.addEventListener("scroll", () => {
    keeper.scrolled();
    if (scroller.scrollTop < 200) loadOlder();
    if (!attached(conversationId) && fromBottom() < 300) {
      loadNewer(conversationId)?.then(render).catch(() => {
        newer.textContent = t("error.network");
      });
    }
    readIfSeen();
  }, { passive: true });

  // Sizes change after rows are placed (photos decode, the composer grows, the window turns).
  keeper.observe(list, scroller, older, newer);
  cleanups.push(() => keeper.destroy());
  cleanups.push(() => releaseLocalMedia(conversationId, (id) => bucket(conversationId).pending.has(id)));

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

  async function loadGroupInfo() {
    const gid = summary()?.group?.id;
    if (!gid) return;
    try {
      const info = (await api(`/groups/${gid}`)).group;
      const role = info.my_role || null;
      groupInfo = { id: gid, role, mentionAll: role === "owner" || role === "admin" || !!info.members_mention_all };
      if (role === "admin") for (const member of await groupMembers(gid)) roles.set(member.user.id, member.role);
    } catch {
      groupInfo = groupInfo || { id: gid, role: null, mentionAll: false };
    }
    compose.refresh();
    queueRender();
  }

  /** Open at the newest message, or at the first unread one under an "N new messages" line. */
  async function openAtUnread() {
    const s = summary();
    const box = bucket(conversationId);
    const unread = s.active ? s.unread : 0;
    if (unread > 0 && s.read_seq < s.last_seq) divider = { seq: s.read_seq + 1, count: unread };
    const covered = box.loaded && attached(conversationId) && box.minSeq !== null && divider && box.minSeq <= divider.seq;
    if (divider && !covered) {
      if (unread > PAGE) await loadAround(conversationId, divider.seq);
      else await loadLatest(conversationId, Math.max(PAGE, unread + 10));
    } else if (!box.loaded) await loadHistory(conversationId, PAGE);
    else if (!attached(conversationId)) await loadLatest(conversationId, PAGE);
  }

  (async () => {
    if (!summary() && !(await summaryOf(conversationId).catch(() => null))) {
      toast(t("chat.not_found"));
      window.location.hash = "#/chats";
      return;
    }
    drawHeader();
    if (summary()?.group) {
      loadGroupInfo();
      cleanups.push(on(`group:${summary().group.id}`, () => {
        forgetMembers(summary().group.id);
        loadGroupInfo();
      }));
    }
    try {
      if (openSeq === null) await openAtUnread();
      else if (!inWindow(conversationId, openSeq)) await loadAround(conversationId, openSeq);
    } catch {
      older.textContent = t("error.network");
    }
    ready = true;
    if (openSeq !== null) {
      if (bucket(conversationId).bySeq.has(openSeq)) target = { seq: openSeq, flash: true };
      else toast(t("jump.not_found"));
    } else if (divider && bucket(conversationId).bySeq.size) target = { seq: divider.seq, top: true };
    else forceBottom = true;
    render();
    peerReceipts();
    if (window.matchMedia("(min-width: 800px)").matches) input.focus();
  })();
  queueRender();

  return { el, destroy: () => cleanups.forEach((fn) => fn()) };
}
