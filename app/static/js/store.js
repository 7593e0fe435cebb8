// The client's state: conversation summaries, messages keyed by (conversation_id, seq), pending
// sends keyed by client_msg_id, presence, contacts — and a tiny publish/subscribe so views redraw.

import { t } from "./i18n.js";

export const state = {
  me: null,
  cursor: null,
  connected: false,
  conversations: new Map(),
  // The conversation list comes in pages: the cursor of the next one (null once all are loaded),
  // and the unread counts of un-muted conversations not loaded yet, by id, for the tab badge.
  listNext: null,
  unreadElsewhere: new Map(),
  buckets: new Map(),
  presence: new Map(),
  typing: new Map(),
  peerRead: new Map(),
  friends: [],
  incoming: [],
  outgoing: [],
  groups: [],
  // An administrator's mute of this account ({"kind", "active", "expires_at"}), as last announced.
  sanction: null,
};

const listeners = new Map();

export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

export function emit(topic, detail) {
  for (const fn of listeners.get(topic) || []) fn(detail);
}

/** Messages of one conversation: stored ones by seq, and this device's sends not yet stored. */
export function bucket(conversationId) {
  let found = state.buckets.get(conversationId);
  if (!found) {
    // maxSeq is set while the window shown ends before the newest message (after a jump).
    found = { bySeq: new Map(), pending: new Map(), minSeq: null, maxSeq: null, hasMoreBefore: true, hasMoreAfter: false, loaded: false };
    state.buckets.set(conversationId, found);
  }
  return found;
}

function recount(summary) {
  summary.unread = Math.max(0, summary.last_seq - summary.read_seq);
}

// Live changes of summaries (`conversation:new`, `conversation:update`, `group:update`), numbered
// in the order they arrived, and the number of each conversation's latest one: a summary asked
// for before that change may have been read before it too, and must not put back what it changed.
let liveChanges = 0;
const liveChangeOf = new Map();

/** The mark to keep when asking the server for summaries (see `changedSince`). */
export function summaryMark() {
  return liveChanges;
}

/** Whether a live change of the conversation arrived after `mark`: a summary of it asked for at
 * that mark may be older than what is shown, and is asked for again rather than applied. */
export function changedSince(conversationId, mark) {
  return (liveChangeOf.get(conversationId) || 0) > mark;
}

/**
 * Take a summary from the server (`live`: from a live event). A summary can be older than a live
 * message already applied (it was computed before that message committed): positions never move
 * backwards here. Answers older than a live change are the callers' to leave out (`changedSince`).
 */
export function putSummary(summary, { live = false } = {}) {
  if (live) {
    liveChanges += 1;
    liveChangeOf.set(summary.id, liveChanges);
  }
  if (summary.hidden) {
    dropConversation(summary.id);
    return;
  }
  const known = state.conversations.get(summary.id);
  const next = { ...summary };
  if (known && summary.active && known.last_seq > next.last_seq) {
    next.last_seq = known.last_seq;
    next.last_message = known.last_message;
    next.last_activity_at = known.last_activity_at;
    recount(next);
  }
  if (known && known.read_seq > next.read_seq) {
    next.read_seq = known.read_seq;
    recount(next);
  }
  state.conversations.set(summary.id, next);
  state.unreadElsewhere.delete(summary.id);
  if (next.peer) state.presence.set(next.peer.id, next.online);
  emit("conversations");
  emit(`conversation:${summary.id}`);
}

/**
 * A conversation taken off my list on some device of mine (I left the group, or deleted the chat):
 * gone from the list, the badge and memory (a later return starts from a new window); an open
 * chat of it closes (`dropped`).
 */
export function dropConversation(conversationId) {
  state.conversations.delete(conversationId);
  state.unreadElsewhere.delete(conversationId);
  state.buckets.delete(conversationId);
  emit("conversations");
  emit("dropped", conversationId);
}

/** Store a message once, whether it came from a live event, a sync page, history or an ack. */
export function putMessage(message, { live = false } = {}) {
  const box = bucket(message.conversation_id);
  const isNew = !box.bySeq.has(message.seq);
  box.bySeq.set(message.seq, message);
  if (message.client_msg_id && box.pending.delete(message.client_msg_id)) emit("pending");
  const summary = state.conversations.get(message.conversation_id);
  if (summary && message.seq >= summary.last_seq) {
    summary.last_seq = message.seq;
    summary.last_message = message;
    summary.last_activity_at = message.created_at;
    // My own messages, and system messages about what I did ("You left"), are never unread.
    const mine = message.sender ? message.sender.id === state.me.id : message.body?.actor_id === state.me.id;
    if (live && mine) summary.read_seq = message.seq;
    recount(summary);
    emit("conversations");
  }
  if (isNew || live) emit(`messages:${message.conversation_id}`, message);
  return isNew;
}

/**
 * A stored message changed (recalled by an administrator or its sender): replace the copy shown,
 * and the list's preview when it is the conversation's last message. Positions do not move.
 */
export function replaceMessage(message) {
  const box = bucket(message.conversation_id);
  if (box.bySeq.has(message.seq)) box.bySeq.set(message.seq, message);
  const summary = state.conversations.get(message.conversation_id);
  if (summary?.last_message && summary.last_message.seq === message.seq) {
    summary.last_message = message;
    emit("conversations");
    emit(`conversation:${message.conversation_id}`);
  }
  emit(`messages:${message.conversation_id}`, message);
}

export function setRead(conversationId, readSeq) {
  const summary = state.conversations.get(conversationId);
  if (!summary || readSeq <= summary.read_seq) return;
  summary.read_seq = readSeq;
  recount(summary);
  emit("conversations");
  emit(`conversation:${conversationId}`);
}

export function setPresence(userId, online) {
  state.presence.set(userId, online);
  for (const summary of state.conversations.values()) {
    if (summary.peer?.id === userId) summary.online = online;
  }
  for (const friend of state.friends) {
    if (friend.user.id === userId) friend.online = online;
  }
  emit("presence", userId);
  emit("conversations");
}

export function totalUnread() {
  let total = 0;
  for (const summary of state.conversations.values()) {
    if (!summary.muted) total += summary.unread;
  }
  for (const unread of state.unreadElsewhere.values()) total += unread;
  return total;
}

export function sortedConversations() {
  return [...state.conversations.values()].sort((a, b) => {
    if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
    return (b.last_activity_at || "").localeCompare(a.last_activity_at || "") || b.id - a.id;
  });
}

export function displayName(user) {
  if (!user) return "";
  if (user.deleted) return t("user.deleted");
  const friend = state.friends.find((item) => item.user.id === user.id);
  return friend?.remark || user.nickname || user.username;
}

/** A conversation's title: the peer's name (my remark for them first), the group's, or "Notices"
 * for the user's read-only notice conversation (kind "notice", which has neither). */
export function conversationName(summary) {
  if (!summary) return "";
  if (summary.kind === "notice") return t("chats.notices");
  return summary.peer ? displayName(summary.peer) : summary.name;
}

/** Change fields of a stored message (its reactions); a message not loaded is left alone. */
export function patchMessage(conversationId, seq, changes) {
  const box = state.buckets.get(conversationId);
  const message = box?.bySeq.get(seq);
  if (!message) return;
  replaceMessage({ ...message, ...changes });
}

// Voice messages I played, here or on another device of mine ("conversation_id:seq"): a copy of
// the message read before the play (a sync page, a history page) may still say `played: false`.
const playedVoice = new Set();

/** Whether I played this voice message (someone else's; my own need no playing). A live one
 * carries no flag: not played. */
export function isPlayed(message) {
  return message.played === true || playedVoice.has(`${message.conversation_id}:${message.seq}`);
}

/** A voice message of someone else's was played on one of my devices: its unplayed dot goes. */
export function setPlayed(conversationId, seq) {
  playedVoice.add(`${conversationId}:${seq}`);
  const message = state.buckets.get(conversationId)?.bySeq.get(seq);
  if (message && message.played !== true) patchMessage(conversationId, seq, { played: true });
}

/**
 * Messages deleted for me (on any of my devices): gone from the loaded history. Returns true when
 * one of them was the list's preview, which the caller then asks the server for again.
 */
export function dropMessages(conversationId, seqs) {
  const box = state.buckets.get(conversationId);
  for (const seq of seqs) box?.bySeq.delete(seq);
  const summary = state.conversations.get(conversationId);
  const stale = !!summary?.last_message && seqs.includes(summary.last_message.seq);
  emit(`messages:${conversationId}`);
  return stale;
}

/** The conversation's pinned messages ([{seq, by, at, message?}], newest first), read as `summary.pins`. */
export function setPins(conversationId, pins) {
  const summary = state.conversations.get(conversationId);
  if (!summary) return;
  summary.pins = pins;
  emit("conversations");
  emit(`conversation:${conversationId}`);
}

/** The windows the server enforces (config RECALL_WINDOW_SECONDS, EDIT_WINDOW_SECONDS), the
 * largest upload of each kind (MAX_IMAGE_BYTES, MAX_VIDEO_BYTES, MAX_AUDIO_BYTES, MAX_FILE_BYTES;
 * null: unknown) and the longest voice recording (VOICE_MAX_SECONDS). */
export const limits = (() => {
  try {
    const data = JSON.parse(document.getElementById("limits")?.textContent || "{}") || {};
    const maxBytes = {
      image: data.max_image_bytes ?? null,
      video: data.max_video_bytes ?? null,
      audio: data.max_audio_bytes ?? null,
      file: data.max_file_bytes ?? null,
    };
    return {
      recallSeconds: data.recall_seconds ?? 120,
      editSeconds: data.edit_seconds ?? 172800,
      maxBytes,
      voiceMaxSeconds: data.voice_max_seconds ?? 60,
    };
  } catch {
    return { recallSeconds: 120, editSeconds: 172800, maxBytes: {}, voiceMaxSeconds: 60 };
  }
})();
