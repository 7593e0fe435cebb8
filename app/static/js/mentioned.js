// "[@me]" in the conversation list: the summary's unread_mentions kept right between summaries —
// counted up by live messages that mention me, set from the server's answer when I read.
import { emit, state } from "./store.js";

export function mentionsMe(message, meId = state.me?.id) {
  if (!message || message.recalled || message.sender?.id === meId) return false;
  return !!message.mention_all || (Array.isArray(message.mentions) && message.mentions.includes(meId));
}

/** A new live message: one more unread mention when it calls me and I have not read it. */
export function noteMention(message) {
  const summary = state.conversations.get(message.conversation_id);
  if (!summary || !mentionsMe(message) || message.seq <= summary.read_seq) return;
  summary.unread_mentions = (summary.unread_mentions || 0) + 1;
  if (!summary.mention_seq || summary.mention_seq > message.seq) summary.mention_seq = message.seq;
  emit("conversations");
  emit(`conversation:${summary.id}`);
}

/** The server's count after a read (the ack or `conversation:read`), when it carries one. */
export function setUnreadMentions(conversationId, unreadMentions) {
  const summary = state.conversations.get(conversationId);
  if (!summary || typeof unreadMentions !== "number" || summary.unread_mentions === unreadMentions) return;
  summary.unread_mentions = unreadMentions;
  if (!unreadMentions) summary.mention_seq = null;
  emit("conversations");
  emit(`conversation:${conversationId}`);
}
