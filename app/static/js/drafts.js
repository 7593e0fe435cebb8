// Drafts: what was typed in a chat and not sent, kept per user and conversation in localStorage
// (`parley.draft.<user id>.<conversation id>` → {"text", "at"}), so it survives a switch to another
// chat and a reload. One key per conversation: two tabs writing different chats do not overwrite
// each other. Bounded (MAX_CHARS per draft, MAX_DRAFTS kept, the oldest dropped), cleared on send
// and on sign-out; the chat list shows "[Draft] …" for a conversation that has one.
import { emit } from "./store.js";

const PREFIX = "parley.draft.";
export const MAX_CHARS = 5000;
const MAX_DRAFTS = 100;

function key(userId, conversationId) {
  return `${PREFIX}${userId}.${conversationId}`;
}

function read(name) {
  try {
    const value = JSON.parse(localStorage.getItem(name));
    return value && typeof value.text === "string" ? value : null;
  } catch {
    return null;
  }
}

function draftKeys() {
  const keys = [];
  for (let index = 0; index < localStorage.length; index += 1) {
    const name = localStorage.key(index);
    if (name?.startsWith(PREFIX)) keys.push(name);
  }
  return keys;
}

/** The draft of a conversation ("" when there is none). */
export function draftOf(userId, conversationId) {
  if (userId == null || conversationId == null) return "";
  return read(key(userId, conversationId))?.text || "";
}

/** Keep (or, for blank text, forget) a conversation's draft; the list redraws when it changes. */
export function saveDraft(userId, conversationId, text) {
  if (userId == null || conversationId == null) return;
  const name = key(userId, conversationId);
  const before = draftOf(userId, conversationId);
  const value = String(text ?? "").slice(0, MAX_CHARS);
  try {
    if (!value.trim()) localStorage.removeItem(name);
    else {
      localStorage.setItem(name, JSON.stringify({ text: value, at: Date.now() }));
      if (!before) trim();
    }
  } catch {
    // Storage full or refused (private mode): the draft lives only as long as the page.
  }
  // The list shows no draft for the open chat (its text shows once the chat is left, a route
  // change that redraws the list): it redraws when a chat gains or loses one, not per keystroke.
  if (!before !== !value.trim()) emit("drafts", conversationId);
}

/** At most MAX_DRAFTS drafts: the least recently written go first. */
function trim() {
  const entries = draftKeys().map((name) => [name, read(name)?.at || 0]);
  if (entries.length <= MAX_DRAFTS) return;
  entries.sort((a, b) => a[1] - b[1]);
  for (const [name] of entries.slice(0, entries.length - MAX_DRAFTS)) localStorage.removeItem(name);
}

/** Forget every draft of this browser except `keepUserId`'s (sign-out: everyone's). */
export function clearDrafts(keepUserId = null) {
  const keep = keepUserId == null ? null : `${PREFIX}${keepUserId}.`;
  for (const name of draftKeys()) if (!keep || !name.startsWith(keep)) localStorage.removeItem(name);
  emit("drafts", null);
}
