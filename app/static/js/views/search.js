// Search: the box on top of the chat list (contacts, groups and messages) and "Search in chat"
// (one conversation's messages). Typing waits 300 ms; a newer query aborts the request of the
// older one. Message hits page with the server's `next` cursor as the list scrolls. A snippet's
// highlights are [start, end) ranges in characters (code points) of its text: the text stays text
// nodes and the matches <mark> elements, never parsed markup.
import { api, ApiError } from "../api.js";
import { avatar, h, icon, shortTime } from "../dom.js";
import { t } from "../i18n.js";
import { openLayer } from "../layers.js";
import { conversationName, displayName, state } from "../store.js";
import { backBar } from "./common.js";
import { startChat } from "./contacts.js";
import { preview } from "./message.js";

const DEBOUNCE_MS = 300;
const PAGE = 20;
const NEAR_END = 300;

/** The snippet's text with its highlighted ranges as <mark> elements. */
export function highlighted(snippet) {
  const chars = Array.from(String(snippet?.text ?? ""));
  const ranges = (Array.isArray(snippet?.highlights) ? snippet.highlights : [])
    .filter((range) => Array.isArray(range) && Number.isInteger(range[0]) && Number.isInteger(range[1]))
    .sort((a, b) => a[0] - b[0]);
  const out = [];
  let last = 0;
  for (const [from, to] of ranges) {
    const start = Math.max(from, last);
    const end = Math.min(to, chars.length);
    if (end <= start) continue;
    if (start > last) out.push(chars.slice(last, start).join(""));
    out.push(h("mark", { text: chars.slice(start, end).join("") }));
    last = end;
  }
  if (last < chars.length) out.push(chars.slice(last).join(""));
  return out;
}

/** A link to a hash that also works when the hash is already the current one (a second click). */
function go(href) {
  return (event) => {
    if (window.location.hash !== href) return;
    event.preventDefault();
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  };
}

function hitRow(hit, inChat) {
  const message = hit.message;
  const conversation = hit.conversation || { id: message.conversation_id };
  const summary = state.conversations.get(conversation.id);
  const isGroup = (summary?.kind || conversation.kind) === "group";
  const name = summary ? conversationName(summary) : conversation.kind === "notice" ? t("chats.notices") : conversation.name || "";
  const sender = message.sender ? displayName(message.sender) : "";
  const href = `#/chat/${conversation.id}/${message.seq}`;
  const snippet = hit.snippet?.text != null ? highlighted(hit.snippet) : [preview(message, false, state.me.id)];
  const title = inChat ? sender : name;
  const who = !inChat && (isGroup || message.sender?.id === state.me.id) && sender ? h("span", { class: "hit-sender", text: `${sender}: ` }) : null;
  return h(
    "li",
    { class: "hit" },
    h(
      "a",
      { class: "person hit-link", href, onclick: go(href), dataset: { conversationId: conversation.id, seq: message.seq } },
      inChat ? avatar(sender, message.sender?.avatar_url) : avatar(conversation.name || name, conversation.avatar_url ?? summary?.avatar_url),
      h(
        "span",
        { class: "person-main" },
        h("span", { class: "hit-top" }, h("span", { class: "hit-name", text: title }), h("time", { class: "hit-time", text: shortTime(message.created_at) })),
        h("span", { class: "hit-snippet" }, who, snippet),
      ),
    ),
  );
}

/**
 * Message hits in `list`, paged: run(q) starts over (aborting what was loading), more() loads the
 * next page. `status` says "Loading…" or "Nothing found.", `note` shows when the answer is partial.
 */
function messageResults({ conversationId = null, inChat = false, onPage = () => {} }) {
  const list = h("ul", { class: "list hits" });
  const note = h("p", { class: "search-note muted small", text: t("search.partial"), hidden: true });
  const status = h("p", { class: "search-status muted small", hidden: true });
  let controller = null;
  let query = "";
  let next = null;
  let loading = false;

  async function load(cursor) {
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    loading = true;
    status.textContent = t("loading");
    status.hidden = false;
    try {
      const data = await api("/search/messages", { params: { q: query, conversation_id: conversationId, cursor, limit: PAGE }, signal: mine.signal });
      if (controller !== mine) return;
      list.append(...(data.hits || []).map((hit) => hitRow(hit, inChat)));
      next = data.next || null;
      if (data.partial) note.hidden = false;
      status.textContent = list.children.length ? "" : t("search.none");
      status.hidden = !!list.children.length;
    } catch (error) {
      if (controller !== mine || (error instanceof ApiError && error.code === "cancelled")) return;
      status.textContent = error.message || t("error.network");
      status.hidden = false;
    } finally {
      if (controller === mine) {
        loading = false;
        controller = null;
        onPage();
      }
    }
  }

  return {
    el: h("div", { class: "hit-block" }, list, note, status),
    list,
    run(q) {
      query = q;
      next = null;
      list.replaceChildren();
      note.hidden = true;
      if (!q) {
        controller?.abort();
        controller = null;
        loading = false;
        status.hidden = true;
        return;
      }
      load(null);
    },
    more() {
      if (next && !loading && query) load(next);
    },
    get hasMore() {
      return !!next;
    },
  };
}

function searchForm(placeholder, onQuery) {
  const input = h("input", { class: "input", type: "search", name: "q", placeholder, "aria-label": placeholder, autocomplete: "off", enterkeyhint: "search" });
  let timer = null;
  let last = "";
  const fire = () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q === last) return;
    last = q;
    onQuery(q);
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    if (!input.value.trim()) fire();
    else timer = setTimeout(fire, DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && input.value) {
      input.value = "";
      fire();
    }
  });
  const form = h("form", { class: "search-form", role: "search", onsubmit: (event) => { event.preventDefault(); fire(); } }, icon("search"), input);
  return { form, input, stop: () => clearTimeout(timer) };
}

/** Keep loading pages while the scroller is near its end (or not filled). */
function pager(scroller, results, active) {
  const check = () => {
    if (!active() || !results.hasMore || !scroller.clientHeight) return;
    if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_END) results.more();
  };
  scroller.addEventListener("scroll", check, { passive: true });
  return { check, stop: () => scroller.removeEventListener("scroll", check) };
}

async function openDirect(userId) {
  const known = [...state.conversations.values()].find((summary) => summary.peer?.id === userId);
  if (known) {
    window.location.hash = `#/chat/${known.id}`;
    return;
  }
  await startChat(userId);
}

function friendRow(friend) {
  const user = friend.user;
  return h(
    "li",
    {},
    h(
      "button",
      { type: "button", class: "person contact-hit", dataset: { userId: user.id }, onclick: () => openDirect(user.id) },
      avatar(user.nickname, user.avatar_url),
      h("span", { class: "person-main" }, h("span", { class: "person-name", text: friend.remark || user.nickname || user.username }), h("small", { class: "muted", text: friend.remark ? `${user.nickname} · @${user.username}` : `@${user.username}` })),
    ),
  );
}

function groupRow(group) {
  const href = `#/chat/${group.conversation_id}`;
  return h(
    "li",
    {},
    h(
      "a",
      { class: "person group-hit", href, onclick: go(href), dataset: { groupId: group.id } },
      avatar(group.name, group.avatar_url),
      h("span", { class: "person-main" }, h("span", { class: "person-name", text: group.name }), group.member_count != null ? h("small", { class: "muted", text: t("chat.members", { n: group.member_count }) }) : null),
    ),
  );
}

/**
 * The search box on top of the chat list. While it holds a query the list gives way to the
 * results (the container gets the class "searching"); clearing it brings the list back.
 */
export function mountSearch(container) {
  const contactsHead = h("h3", { class: "section-head", text: t("search.contacts"), hidden: true });
  const contacts = h("ul", { class: "list contact-hits" });
  const groupsHead = h("h3", { class: "section-head", text: t("search.groups"), hidden: true });
  const groups = h("ul", { class: "list group-hits" });
  const messagesHead = h("h3", { class: "section-head", text: t("search.messages") });
  let active = false;
  const results = messageResults({ onPage: () => paging.check() });
  const paging = pager(container, results, () => active);
  let contactsController = null;

  async function findContacts(q) {
    contactsController?.abort();
    const mine = new AbortController();
    contactsController = mine;
    try {
      const data = await api("/search/contacts", { params: { q }, signal: mine.signal });
      if (contactsController !== mine) return;
      contacts.replaceChildren(...(data.friends || []).map(friendRow));
      groups.replaceChildren(...(data.groups || []).map(groupRow));
    } catch {
      if (contactsController !== mine) return;
      contacts.replaceChildren();
      groups.replaceChildren();
    }
    contactsHead.hidden = !contacts.children.length;
    groupsHead.hidden = !groups.children.length;
  }

  const box = searchForm(t("search.box"), (q) => {
    active = !!q;
    container.classList.toggle("searching", active);
    panel.hidden = !active;
    contacts.replaceChildren();
    groups.replaceChildren();
    contactsHead.hidden = groupsHead.hidden = true;
    if (active) {
      container.scrollTop = 0;
      // Esc (in the list's pane) clears the query: the list comes back, the focus stays in the box.
      openLayer(panel, { close: () => clearQuery(), opener: box.input, modal: false, scope: container });
      findContacts(q);
    } else {
      contactsController?.abort();
      contactsController = null;
    }
    results.run(q);
  });
  const panel = h("div", { class: "search-results", hidden: true }, contactsHead, contacts, groupsHead, groups, messagesHead, results.el);
  const clearQuery = () => {
    box.input.value = "";
    box.input.dispatchEvent(new Event("input"));
  };
  const el = h("div", { class: "search-top" }, box.form);
  return {
    el,
    panel,
    destroy() {
      box.stop();
      paging.stop();
      contactsController?.abort();
      container.classList.remove("searching");
    },
  };
}

/** "Search in chat": one conversation's messages (#/chat/<id>/search). */
export function chatSearchView(conversationId) {
  const summary = state.conversations.get(conversationId);
  const name = conversationName(summary);
  const results = messageResults({ conversationId, inChat: true, onPage: () => paging.check() });
  const box = searchForm(name ? `${t("search.in_chat")}: ${name}` : t("search.in_chat"), (q) => results.run(q));
  const el = h("section", { class: "pane chat-search" }, backBar(t("search.in_chat"), `#/chat/${conversationId}`), box.form, results.el);
  const paging = pager(el, results, () => true);
  setTimeout(() => box.input.focus(), 0);
  return {
    el,
    destroy() {
      box.stop();
      paging.stop();
    },
  };
}
