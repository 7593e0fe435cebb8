// The window of history a chat shows, and the buttons that move it. Normally the window runs from
// `minSeq` to the newest message; a jump to a message far back (a quote, a pin, the first unread,
// the first @mention) replaces it with a page around that message, ending at `maxSeq` until pages
// after it are loaded as the user scrolls down (or "newest messages" is clicked).
import { api } from "../api.js";
import { h, icon } from "../dom.js";
import { t } from "../i18n.js";
import { bucket, emit, putMessage } from "../store.js";

export const AROUND_PAGE = 50;
export const NEWER_PAGE = 50;

/** Whether seq lies in the window shown. */
export function inWindow(conversationId, seq) {
  const box = bucket(conversationId);
  return box.loaded && box.minSeq !== null && seq >= box.minSeq && (box.maxSeq === null || seq <= box.maxSeq);
}

/** Is the newest message part of the window? */
export function attached(conversationId) {
  return bucket(conversationId).maxSeq === null;
}

function put(conversationId, messages) {
  for (const message of messages) putMessage(message);
}

/** Replace the window with a page around seq. */
export async function loadAround(conversationId, seq, limit = AROUND_PAGE) {
  const data = await api(`/conversations/${conversationId}/messages`, { params: { around_seq: seq, limit } });
  const box = bucket(conversationId);
  // Nothing there for me (before I joined, deleted for me): the window stays as it was.
  if (!data.messages.some((message) => message.seq === seq)) return { ...data, missing: true };
  put(conversationId, data.messages);
  const first = data.messages[0]?.seq ?? seq;
  const last = data.messages.at(-1)?.seq ?? seq;
  box.minSeq = first;
  box.hasMoreBefore = !!data.has_more_before;
  box.hasMoreAfter = !!data.has_more_after;
  box.maxSeq = data.has_more_after ? last : null;
  box.loaded = true;
  emit(`messages:${conversationId}`);
  return data;
}

/** Replace the window with the newest page. */
export async function loadLatest(conversationId, limit = 40) {
  const data = await api(`/conversations/${conversationId}/messages`, { params: { limit } });
  const box = bucket(conversationId);
  put(conversationId, data.messages);
  box.minSeq = data.messages[0]?.seq ?? null;
  box.hasMoreBefore = data.has_more;
  box.hasMoreAfter = false;
  box.maxSeq = null;
  box.loaded = true;
  emit(`messages:${conversationId}`);
}

const loadingNewer = new Map(); // conversation id -> the page being loaded

/** The page after the window's end; the window reaches the newest message when none is left. */
export function loadNewer(conversationId, limit = NEWER_PAGE) {
  const box = bucket(conversationId);
  if (box.maxSeq === null || loadingNewer.has(conversationId)) return loadingNewer.get(conversationId);
  const after = box.maxSeq;
  const loading = (async () => {
    try {
      const data = await api(`/conversations/${conversationId}/messages`, { params: { after_seq: after, limit } });
      if (box.maxSeq !== after) return;
      put(conversationId, data.messages);
      box.hasMoreAfter = data.has_more;
      box.maxSeq = data.has_more ? data.messages.at(-1)?.seq ?? after : null;
      emit(`messages:${conversationId}`);
    } finally {
      loadingNewer.delete(conversationId);
    }
  })();
  loadingNewer.set(conversationId, loading);
  return loading;
}

/**
 * The floating buttons over the history: "newest messages" (with the count of messages that came
 * while the user reads further up) and "you were mentioned" (to the first unread @mention).
 */
export function jumpButtons({ onBottom, onMention }) {
  const count = h("span", { class: "badge jump-count", hidden: true });
  const bottom = h("button", { type: "button", class: "jump-btn jump-bottom", "aria-label": t("jump.bottom"), title: t("jump.bottom"), hidden: true, onclick: onBottom }, icon("back", "icon down"), count);
  const mention = h("button", { type: "button", class: "jump-btn jump-mention", "aria-label": t("jump.mention"), title: t("jump.mention"), hidden: true, onclick: onMention }, h("span", { class: "jump-at", text: "@" }));
  const el = h("div", { class: "jumps" }, mention, bottom);
  return {
    el,
    update({ showBottom, newCount, showMention }) {
      bottom.hidden = !showBottom;
      count.hidden = !(newCount > 0);
      count.textContent = newCount > 99 ? "99+" : String(newCount || "");
      mention.hidden = !showMention;
    },
  };
}

/** The "N new messages" line above the first unread message. */
export function unreadDivider(count) {
  return h("div", { class: "unread-divider", role: "separator" }, h("span", { text: t("jump.new_messages", { n: count }) }));
}
