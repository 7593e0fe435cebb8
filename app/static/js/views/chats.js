// The conversation list: pinned first, then by last activity; badges, presence, mute. Pages after
// the first load as the user scrolls near the end (or at once while the list does not fill the pane).
import { avatar, batched, h, icon, shortTime } from "../dom.js";
import { draftOf } from "../drafts.js";
import { t } from "../i18n.js";
import { roving } from "../keys.js";
import { conversationName, on, sortedConversations, state } from "../store.js";
import { loadMoreConversations } from "../sync.js";
import { permissionBanner } from "../notify.js";
import { preview } from "./message.js";
import { mountSearch } from "./search.js";

const NEAR_END = 400;

export function mountChatList(container, currentId) {
  const list = h("ul", { class: "list conv-list" });
  const empty = h("div", { class: "empty" }, h("p", { text: t("chats.empty") }), h("a", { class: "btn primary", href: "#/search", text: t("contacts.add") }));
  // The search box on top; while it holds a query its results stand in for the list.
  const search = mountSearch(container);
  const banner = permissionBanner();
  container.replaceChildren(search.el, banner.el, list, empty, search.panel);
  const items = new Map();

  function item(summary) {
    const name = conversationName(summary);
    const badge = summary.unread > 0 ? h("span", { class: `badge${summary.muted ? " dot-badge" : ""}`, text: summary.muted ? "" : summary.unread > 99 ? "99+" : String(summary.unread) }) : null;
    return h(
      "li",
      { class: `conv${summary.pinned ? " pinned" : ""}${summary.kind === "notice" ? " notice" : ""}${summary.id === currentId() ? " current" : ""}`, dataset: { id: summary.id } },
      h(
        "a",
        { href: `#/chat/${summary.id}`, class: "conv-link" },
        h("span", { class: "conv-avatar" }, avatar(name, summary.avatar_url, { online: summary.peer && !summary.peer.is_bot ? !!summary.online : null }), badge),
        h(
          "span",
          { class: "conv-main" },
          h("span", { class: "conv-top" }, h("span", { class: "conv-name", text: name }), h("time", { class: "conv-time", text: shortTime(summary.last_activity_at) })),
          h("span", { class: "conv-bottom" }, summary.unread_mentions > 0 ? h("span", { class: "at-me", text: t("chats.at_me") }) : null, draftPreview(summary) || h("span", { class: "conv-preview", text: preview(summary.last_message, summary.kind === "group", state.me.id) }), summary.muted ? icon("mute", "icon tiny muted-icon") : null),
        ),
      ),
    );
  }

  /** "[Draft] …" instead of the last message, for a chat left with unsent text (not the open one). */
  function draftPreview(summary) {
    const draft = summary.id === currentId() ? "" : draftOf(state.me.id, summary.id);
    if (!draft) return null;
    return h("span", { class: "conv-preview has-draft" }, h("span", { class: "draft-tag", text: t("chats.draft") }), ` ${draft.replace(/\s+/g, " ").slice(0, 100)}`);
  }

  function render() {
    const ordered = sortedConversations();
    const fresh = ordered.map((summary) => {
      const el = item(summary);
      const old = items.get(summary.id);
      // The list's Tab stop (../keys.js) is no change of the item.
      const tabindex = old?.querySelector(".conv-link")?.getAttribute("tabindex");
      if (tabindex) el.querySelector(".conv-link").setAttribute("tabindex", tabindex);
      if (old && old.isEqualNode(el)) return old;
      items.set(summary.id, el);
      return el;
    });
    for (const [id, el] of items) if (!state.conversations.has(id)) { el.remove(); items.delete(id); }
    list.replaceChildren(...fresh);
    empty.hidden = ordered.length > 0;
    moreIfNearEnd();
  }
  function moreIfNearEnd() {
    if (!state.listNext || !list.isConnected || !container.clientHeight || container.classList.contains("searching")) return;
    if (container.scrollHeight - container.scrollTop - container.clientHeight < NEAR_END) loadMoreConversations();
  }
  const redraw = batched(render);
  const off = [on("conversations", redraw), on("friends", redraw), on("route", redraw), on("drafts", redraw)];
  // One Tab stop for the list (the open chat's item first); Up/Down move, Enter opens.
  off.push(roving(list, ".conv-link"));
  container.addEventListener("scroll", moreIfNearEnd, { passive: true });
  render();
  return () => {
    off.forEach((fn) => fn());
    container.removeEventListener("scroll", moreIfNearEnd);
    search.destroy();
    banner.destroy();
  };
}
