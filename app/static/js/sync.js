// Keeps the state complete, as docs/PROTOCOL.md "How a client stays complete" says:
// list + cursor at start, then the socket, then after every (re)connect replay /sync pages while
// has_more; upsert messages by (conversation_id, seq), replace summaries, and advance the cursor
// only from sync answers.
import { all, api, ApiError, goToSignIn } from "./api.js";
import { request, socket } from "./socket.js";
import { toast } from "./dom.js";
import { t } from "./i18n.js";
import { noteMention, setUnreadMentions } from "./mentioned.js";
import { bucket, changedSince, dropMessages, emit, patchMessage, putMessage, putSummary, replaceMessage, setPins, setPlayed, setPresence, setRead, state, summaryMark } from "./store.js";
import { setAccountMute } from "./views/speakstate.js";

const SYNC_PAGE = 200;
const RESYNC_SPREAD_MS = 3000;
const LIST_PAGE = 50;
// `me:update` and `account:sanction` events received so far: an answer of `/auth/me` read before
// one of them may arrive after it, and must not put back what the event changed.
let liveMeEvents = 0;
const ME_ASKS = 3;
// Asks for one conversation's summary while live changes of it keep arriving during the request.
const SUMMARY_ASKS = 3;
let loadingList = null;
const MAX_SYNC_PAGES = 1000;
let syncing = null;
let syncAgain = false;

export async function start(me) {
  state.me = me;
  setAccountMute(me.sanction);
  const data = await api("/conversations", { params: { limit: LIST_PAGE } });
  state.cursor = data.cursor;
  state.listNext = data.next;
  state.unreadElsewhere = new Map(Object.entries(data.unread_elsewhere || {}).map(([id, unread]) => [Number(id), unread]));
  for (const summary of data.conversations) putSummary(summary);
  // The robot's chat belongs in every list while the robot is on: open it once.
  const robotOn = JSON.parse(document.getElementById("robot")?.textContent || "false");
  if (robotOn && !data.conversations.some((summary) => summary.peer?.is_bot)) {
    const mark = summaryMark();
    api("/bot").then((bot) => putAnswered([bot.conversation], mark)).catch(() => {});
  }
  wireSocket();
  socket.connect();
  // A browser that knows it went offline drops the socket at once, so nothing is half-delivered;
  // coming back reconnects, and the connect handler catches up.
  window.addEventListener("offline", () => socket.disconnect());
  window.addEventListener("online", () => socket.connect());
  loadContacts();
}

/**
 * Load the next page of the conversation list (the list view asks as the user scrolls near its
 * end). Items already known from a live event or sync are merged, never moved backwards.
 */
export function loadMoreConversations() {
  if (!state.listNext || loadingList) return loadingList;
  loadingList = (async () => {
    let data;
    const mark = summaryMark();
    try {
      data = await api("/conversations", { params: { cursor: state.listNext, limit: LIST_PAGE } });
    } catch (error) {
      loadingList = null;
      if (!(error instanceof ApiError)) throw error;
      // A failed page is asked again on the next scroll (not at once, so no loop while offline).
      if (error.code === "invalid_cursor") state.listNext = null;
      return;
    }
    // Done before the redraw, which may ask for the next page while the pane is not filled.
    loadingList = null;
    state.listNext = data.next;
    putAnswered(data.conversations, mark);
    emit("conversations");
  })();
  return loadingList;
}

/** Replay /sync from the kept cursor until has_more is false; one run at a time. */
export function catchUp() {
  if (syncing) {
    syncAgain = true;
    return syncing;
  }
  syncing = (async () => {
    do {
      syncAgain = false;
      for (let page = 0; page < MAX_SYNC_PAGES; page += 1) {
        const mark = summaryMark();
        const data = await api("/sync", { params: { cursor: state.cursor, limit: SYNC_PAGE } });
        for (const message of data.messages) putMessage(message);
        putAnswered(data.conversations, mark);
        dropHidden(data.hidden || []);
        // Voice messages played on another device meanwhile.
        for (const item of data.played || []) setPlayed(item.conversation_id, item.seq);
        state.cursor = data.cursor;
        if (!data.has_more) break;
      }
    } while (syncAgain);
    emit("synced");
  })().finally(() => {
    syncing = null;
  });
  return syncing;
}

/** Put summaries asked for at `mark`; a conversation that a live event changed since is asked
 * for again instead, since its summary here may have been read before that change. */
function putAnswered(summaries, mark) {
  for (const summary of summaries) {
    if (changedSince(summary.id, mark)) summaryOf(summary.id).catch(() => {});
    else putSummary(summary);
  }
}

/** A conversation's summary as the server has it now; asked again (up to SUMMARY_ASKS times in
 * all) while live changes of it arrive during the request, since its answer may be older.
 * Answers the summary, or null when the server refused (not a member, not found, offline). */
export async function summaryOf(conversationId, asks = SUMMARY_ASKS) {
  const mark = summaryMark();
  let data;
  try {
    data = await api(`/conversations/${conversationId}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return null;
  }
  if (changedSince(conversationId, mark)) {
    // The live change already put a newer summary here; the last answer is still "found".
    return asks > 1 ? summaryOf(conversationId, asks - 1) : data.conversation;
  }
  putSummary(data.conversation);
  return data.conversation;
}

/** Change my settings of a conversation (mute, pin, remark…): its answer goes in like any other
 * summary, unless a live change of the conversation arrived meanwhile (then it is asked again). */
export async function patchConversation(conversationId, changes) {
  const mark = summaryMark();
  const data = await api(`/conversations/${conversationId}`, { method: "PATCH", body: changes });
  putAnswered([data.conversation], mark);
}

/** Messages I deleted for me (here or on another device): out of the history, and a fresh preview. */
export function dropHidden(items) {
  const byConversation = new Map();
  for (const { conversation_id: id, seq } of items) {
    if (!byConversation.has(id)) byConversation.set(id, []);
    byConversation.get(id).push(seq);
  }
  for (const [id, seqs] of byConversation) {
    if (dropMessages(id, seqs)) summaryOf(id).catch(() => {});
  }
}

function wireSocket() {
  socket.on("connect", async () => {
    state.connected = true;
    emit("connection");
    // A `me:update` or `account:sanction` sent before this socket joined (after a cut, or between
    // the page's render and its first connect) was missed: ask once per connect.
    askMe().catch(() => {});
    if (contacts === "idle") loadContacts();
    try {
      await catchUp();
      resendNetworkFailures();
    } catch {
      // The next reconnect tries again from the same cursor.
    }
  });
  // The server's process lost its link to the other processes for a while (Redis restarted), or
  // another process died: live events may have been missed, so replay /sync from the cursor as
  // after a reconnect, and ask again who is online (presence is not in /sync).
  // Spread over a few seconds: when a process dies, every client of the deployment is asked.
  socket.on("resync", () => {
    setTimeout(() => {
      catchUp().catch(() => {});
      refreshPresence().catch(() => {});
    }, Math.random() * RESYNC_SPREAD_MS);
  });
  socket.on("disconnect", (reason) => {
    state.connected = false;
    emit("connection");
    // The server drops a device's sockets when it is signed out (elsewhere, by a password change
    // or a ban): ask again, and the `unauthenticated` refusal below leads to the sign-in page.
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", (error) => {
    if (error?.data?.code === "unauthenticated") goToSignIn("/login?signed_out=1");
  });
  socket.on("message:new", (message) => {
    if (!state.conversations.has(message.conversation_id)) summaryOf(message.conversation_id);
    if (putMessage(message, { live: true })) {
      noteMention(message);
      // notify.js: a notification and a chime when this tab is not showing the chat.
      emit("incoming", message);
    }
    const typing = state.typing.get(message.conversation_id);
    if (message.sender && typing?.delete(message.sender.id)) emit(`typing:${message.conversation_id}`);
  });
  socket.on("message:recalled", (message) => {
    replaceMessage(message);
    emit("recalled", message);
  });
  socket.on("message:edited", (message) => replaceMessage(message));
  socket.on("message:reactions", (data) => patchMessage(data.conversation_id, data.seq, { reactions: data.reactions }));
  socket.on("conversation:pins", (data) => setPins(data.conversation_id, data.pins));
  socket.on("message:played", (data) => setPlayed(data.conversation_id, data.seq));
  socket.on("message:hidden", (data) => dropHidden(data.seqs.map((seq) => ({ conversation_id: data.conversation_id, seq }))));
  socket.on("conversation:new", (summary) => putSummary(summary, { live: true }));
  socket.on("conversation:update", (summary) => putSummary(summary, { live: true }));
  socket.on("conversation:read", (data) => {
    // Read on another device in a conversation whose page is not loaded yet: its badge count
    // comes with its summary.
    if (!state.conversations.has(data.conversation_id) && state.unreadElsewhere.has(data.conversation_id)) summaryOf(data.conversation_id);
    setRead(data.conversation_id, data.read_seq);
    setUnreadMentions(data.conversation_id, data.unread_mentions);
  });
  socket.on("receipt:read", (data) => {
    if ((state.peerRead.get(data.conversation_id) || 0) < data.read_seq) {
      state.peerRead.set(data.conversation_id, data.read_seq);
      emit(`messages:${data.conversation_id}`);
    }
  });
  socket.on("presence", (data) => setPresence(data.user_id, data.online));
  socket.on("typing", (data) => {
    if (data.user_id === state.me.id) return;
    if (!state.typing.has(data.conversation_id)) state.typing.set(data.conversation_id, new Map());
    state.typing.get(data.conversation_id).set(data.user_id, Date.now() + 3000);
    emit(`typing:${data.conversation_id}`);
    setTimeout(() => emit(`typing:${data.conversation_id}`), 3100);
  });
  socket.on("friend:request", () => loadRequests());
  socket.on("friend:update", (friend) => {
    const index = state.friends.findIndex((item) => item.user.id === friend.user.id);
    if (index >= 0) state.friends[index] = friend;
    emit("friends");
    emit("conversations");
  });
  socket.on("friend:removed", () => loadFriends());
  socket.on("group:update", (group) => {
    const index = state.groups.findIndex((item) => item.id === group.id);
    if (index >= 0) state.groups[index] = group;
    // The group's brief in its chat's summary follows (name, avatar, mute all: the composer).
    const summary = state.conversations.get(group.conversation_id);
    if (summary?.group) {
      const { id, name, avatar_url: avatarUrl, member_count: memberCount, dissolved, muted_all: mutedAll, members_mention_all: mentionAll } = group;
      const brief = { ...summary.group, id, name, avatar_url: avatarUrl, member_count: memberCount, dissolved, muted_all: mutedAll, members_mention_all: mentionAll };
      putSummary({ ...summary, name, avatar_url: avatarUrl, group: brief }, { live: true });
    }
    emit("groups");
    emit(`group:${group.id}`, group);
  });
  socket.on("group:join_request", (joinRequest) => emit(`group:${joinRequest.group.id}`));
  // My profile changed (here, on another device, or by the server API): the Me tab, the profile
  // header and my own bubbles show the new one.
  socket.on("me:update", (user) => {
    liveMeEvents += 1;
    state.me = { ...state.me, ...user };
    emit("me");
  });
  // A mute with an end lifts itself here too (the server stops refusing at that time).
  socket.on("account:sanction", (sanction) => {
    liveMeEvents += 1;
    if (sanction.kind === "mute") setAccountMute(sanction, { announce: true });
  });
}

/** My profile and site mute as the server has them now; asked again (up to ME_ASKS times in all)
 * while live events arrive during the request, since its answer may be older than they are. */
async function askMe(asks = ME_ASKS) {
  const before = liveMeEvents;
  const data = await api("/auth/me");
  if (liveMeEvents !== before) {
    if (asks > 1) await askMe(asks - 1);
    return;
  }
  state.me = data.user;
  emit("me");
  // A site mute that started or ended meanwhile (views/speakstate.js).
  if (data.sanction) setAccountMute(data.sanction);
}

/** Ask again for the presence of everyone shown (in pages of the 200 `GET /presence` takes). */
async function refreshPresence() {
  const ids = [...state.presence.keys()];
  for (let start = 0; start < ids.length; start += 200) {
    const data = await api("/presence", { params: { user_ids: ids.slice(start, start + 200).join(",") } });
    for (const entry of data.presence) setPresence(entry.user_id, entry.online);
  }
}

/**
 * A loader of a whole list (friends, requests, groups) whose answers go in newest-asked only: a
 * live event asks again while an earlier load (read before that event's change) may still be on
 * its way, and answers can arrive in either order. `read` answers a function that applies what it
 * read; a superseded call applies nothing and settles with the newest one.
 */
function newestWins(read) {
  let asked = 0;
  let newest = null;
  return () => {
    const mine = ++asked;
    const call = read().then((apply) => {
      if (mine === asked) apply();
      else return newest;
    });
    newest = call;
    return call;
  };
}

export const loadFriends = newestWins(async () => {
  const friends = await all("/friends", "friends");
  return () => {
    state.friends = friends;
    for (const friend of friends) state.presence.set(friend.user.id, friend.online);
    emit("friends");
    emit("conversations");
  };
});

export const loadRequests = newestWins(async () => {
  const [incoming, outgoing] = await Promise.all([
    api("/friend-requests", { params: { direction: "incoming" } }),
    api("/friend-requests", { params: { direction: "outgoing" } }),
  ]);
  return () => {
    state.incoming = incoming.requests;
    state.outgoing = outgoing.requests;
    emit("requests");
    if (incoming.requests.some((item) => item.status === "accepted") || outgoing.requests.some((item) => item.status === "accepted")) {
      loadFriends();
    }
  };
});

export const loadGroups = newestWins(async () => {
  const { groups } = await api("/groups");
  return () => {
    state.groups = groups;
    emit("groups");
  };
});

// "idle" until loaded, and again after a failure (an offline start): the next connect retries.
let contacts = "idle";

function loadContacts() {
  contacts = "loading";
  Promise.all([loadFriends(), loadRequests(), loadGroups()]).then(
    () => { contacts = "loaded"; },
    () => { contacts = "idle"; },
  );
}

/** The newest page, or the page before the oldest message shown; keeps (conversation, seq) unique. */
export async function loadHistory(conversationId, limit = 40) {
  const box = bucket(conversationId);
  const params = { limit };
  if (box.loaded && box.minSeq !== null) params.before_seq = box.minSeq;
  const data = await api(`/conversations/${conversationId}/messages`, { params });
  for (const message of data.messages) putMessage(message);
  if (data.messages.length) box.minSeq = Math.min(box.minSeq ?? Infinity, data.messages[0].seq);
  box.hasMoreBefore = data.has_more;
  box.loaded = true;
  emit(`messages:${conversationId}`);
}

/**
 * Optimistic send: shown at once as "sending"; the same client_msg_id is reused by every retry.
 * `extras` carries the send's reply_to, mentions and mention_all (and `reply`, the quote shown
 * while it is pending).
 */
export function send(conversationId, body, extras = {}) {
  const clientMsgId = crypto.randomUUID();
  bucket(conversationId).pending.set(clientMsgId, { clientMsgId, body, extras, state: "sending", error: null, createdAt: new Date().toISOString() });
  emit(`messages:${conversationId}`);
  deliver(conversationId, clientMsgId);
  return clientMsgId;
}

export async function deliver(conversationId, clientMsgId) {
  const pending = bucket(conversationId).pending.get(clientMsgId);
  if (!pending) return;
  pending.state = "sending";
  pending.error = null;
  emit(`messages:${conversationId}`);
  try {
    const { reply_to: replyTo, mentions, mention_all: mentionAll } = pending.extras || {};
    const payload = { conversation_id: conversationId, client_msg_id: clientMsgId, body: pending.body };
    if (replyTo) payload.reply_to = replyTo;
    if (mentions?.length) payload.mentions = mentions;
    if (mentionAll) payload.mention_all = true;
    lastTyping.delete(conversationId);
    const ack = await request("message:send", payload, 15000);
    putMessage(ack.message, { live: true });
    if (typingAfterSend.delete(conversationId)) typing(conversationId);
  } catch (error) {
    typingAfterSend.delete(conversationId);
    if (!bucket(conversationId).pending.has(clientMsgId)) return;
    pending.state = "failed";
    pending.error = error;
    emit(`messages:${conversationId}`);
  }
}

function resendNetworkFailures() {
  for (const [conversationId, box] of state.buckets) {
    for (const pending of box.pending.values()) {
      if (pending.state === "failed" && pending.error?.code === "network") deliver(conversationId, pending.clientMsgId);
    }
  }
}

/** Everything up to the newest message is read; every device of mine clears its badge. */
const reading = new Set();

export async function markRead(conversationId) {
  const summary = state.conversations.get(conversationId);
  if (!summary || !state.connected || summary.unread === 0 || reading.has(conversationId)) return;
  reading.add(conversationId);
  try {
    const ack = await request("conversation:read", { conversation_id: conversationId, seq: summary.last_seq });
    setRead(conversationId, ack.read_seq);
    setUnreadMentions(conversationId, ack.unread_mentions);
  } catch {
    // Read state is retried the next time the conversation is looked at.
  } finally {
    reading.delete(conversationId);
  }
}

// When "typing" was last told, by conversation: at most one every 2 s, as the server allows, but
// a send starts over (the server's count too), so typing right after a send shows at once.
const lastTyping = new Map();
// Conversations where typing waits for a send in flight: told after its ack, so the peer gets it
// after the message (whose arrival clears the indicator), not before.
const typingAfterSend = new Set();

export function typing(conversationId) {
  if (!state.connected) return;
  if ([...bucket(conversationId).pending.values()].some((pending) => pending.state === "sending")) {
    typingAfterSend.add(conversationId);
    return;
  }
  if (Date.now() - (lastTyping.get(conversationId) || 0) < 2000) return;
  lastTyping.set(conversationId, Date.now());
  request("typing", { conversation_id: conversationId }).catch(() => {});
}
