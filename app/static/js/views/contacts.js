// Contacts: friends with presence and remarks, friend requests, groups; search; a person's card.
import { api, ApiError } from "../api.js";
import { avatar, batched, confirmSheet, h, icon, prompt, toast } from "../dom.js";
import { t } from "../i18n.js";
import { roving } from "../keys.js";
import { displayName, on, putSummary, state } from "../store.js";
import { loadFriends, loadGroups, loadRequests } from "../sync.js";
import { backBar } from "./common.js";

export function pendingIncoming() {
  return state.incoming.filter((item) => item.status === "pending").length;
}

export function mountContacts(container) {
  const top = h("ul", { class: "list entries" });
  const groupsList = h("ul", { class: "list" });
  const friendsList = h("ul", { class: "list" });
  const groupsHead = h("h3", { class: "section-head" });
  const friendsHead = h("h3", { class: "section-head" });
  container.replaceChildren(top, groupsHead, groupsList, friendsHead, friendsList);

  const entry = (href, iconName, label, badge, cls) =>
    h("li", {}, h("a", { class: `entry ${cls}`, href }, h("span", { class: "entry-icon" }, icon(iconName)), h("span", { class: "entry-label", text: label }), badge ? h("span", { class: "badge", text: String(badge) }) : null));

  function render() {
    top.replaceChildren(
      entry("#/requests", "addUser", t("contacts.requests"), pendingIncoming(), "requests-entry"),
      entry("#/search", "search", t("contacts.add"), 0, "search-entry"),
      entry("#/new-group", "group", t("group.create"), 0, "new-group-entry"),
    );
    groupsHead.textContent = t("contacts.groups", { n: state.groups.length });
    groupsHead.hidden = !state.groups.length;
    groupsList.replaceChildren(
      ...state.groups.map((group) =>
        h("li", {}, h("a", { class: "person", href: `#/chat/${group.conversation_id}` }, avatar(group.name, group.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: group.name }), h("small", { class: "muted", text: t("chat.members", { n: group.member_count }) })))),
      ),
    );
    const friends = [...state.friends].sort((a, b) => displayName(a.user).localeCompare(displayName(b.user), undefined, { sensitivity: "base" }));
    friendsHead.textContent = t("contacts.friends", { n: friends.length });
    friendsList.replaceChildren(
      ...friends.map((friend) =>
        h(
          "li",
          {},
          h(
            "a",
            { class: "person friend", href: `#/user/${friend.user.id}`, dataset: { userId: friend.user.id } },
            avatar(friend.user.nickname, friend.user.avatar_url, { online: friend.user.is_bot ? null : !!friend.online }),
            h("span", { class: "person-main" }, h("span", { class: "person-name", text: displayName(friend.user) }), h("small", { class: "muted", text: friend.remark ? friend.user.nickname : friend.user.signature || `@${friend.user.username}` })),
            h("small", { class: `presence ${friend.online ? "online" : ""}`, text: friend.user.is_bot ? "" : friend.online ? t("online") : t("offline") }),
          ),
        ),
      ),
    );
    if (!friends.length) friendsList.append(h("li", { class: "empty small", text: t("contacts.no_friends") }));
  }
  const redraw = batched(render);
  const off = ["friends", "requests", "groups", "presence"].map((topic) => on(topic, redraw));
  // The entries, groups and friends are one Tab stop; Up/Down move between them, Enter opens.
  off.push(roving(container, ".entries .entry, a.person"));
  render();
  loadGroups().catch(() => {});
  return () => off.forEach((fn) => fn());
}

/** Open (or create) the direct chat with a friend. */
export async function startChat(userId) {
  try {
    const data = await api("/conversations", { method: "POST", body: { user_id: userId } });
    putSummary(data.conversation);
    window.location.hash = `#/chat/${data.conversation.id}`;
  } catch (error) {
    toast(error.message);
  }
}

async function addFriend(user) {
  const message = await prompt(t("search.request_title", { name: user.nickname }), { value: t("search.request_default", { name: state.me.nickname }), okLabel: t("search.send_request") });
  if (message === null) return false;
  try {
    await api("/friend-requests", { method: "POST", body: { user_id: user.id, message } });
    toast(t("search.request_sent"));
    loadRequests();
    return true;
  } catch (error) {
    toast(error.message);
    return false;
  }
}

export function searchView() {
  const input = h("input", { class: "input", type: "search", name: "q", placeholder: t("search.placeholder"), "aria-label": t("search.placeholder"), autocomplete: "off" });
  const kind = { value: "users" };
  const tabs = h("div", { class: "seg" });
  const results = h("ul", { class: "list results" });
  const el = h("section", { class: "pane" }, backBar(t("contacts.add"), "#/contacts"), h("form", { class: "search-form", onsubmit: (e) => { e.preventDefault(); run(); } }, icon("search"), input), tabs, results);
  const drawTabs = () => tabs.replaceChildren(...["users", "groups"].map((name) => h("button", { type: "button", class: `seg-btn${kind.value === name ? " on" : ""}`, text: t(`search.${name}`), onclick: () => { kind.value = name; drawTabs(); run(); } })));
  drawTabs();
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });

  async function run() {
    const q = input.value.trim();
    if (!q) {
      results.replaceChildren();
      return;
    }
    try {
      if (kind.value === "users") {
        const data = await api("/users/search", { params: { q, limit: 30 } });
        if (input.value.trim() !== q) return;
        results.replaceChildren(...data.users.filter((user) => user.id !== state.me.id).map(userResult));
      } else {
        const data = await api("/groups/search", { params: { q, limit: 30 } });
        if (input.value.trim() !== q) return;
        results.replaceChildren(...data.groups.map(groupResult));
      }
      if (!results.children.length) results.append(h("li", { class: "empty small", text: t("search.none") }));
    } catch (error) {
      toast(error.message);
    }
  }

  function userResult(user) {
    const asked = state.outgoing.some((item) => item.status === "pending" && item.to.id === user.id);
    const action = user.is_friend
      ? h("button", { type: "button", class: "btn small", text: t("contacts.message"), onclick: () => startChat(user.id) })
      : h("button", { type: "button", class: "btn small primary add-friend", text: asked ? t("search.requested") : t("search.add"), disabled: asked, onclick: async (event) => {
          const button = event.currentTarget;
          if (await addFriend(user)) {
            button.textContent = t("search.requested");
            button.disabled = true;
          }
        } });
    return h("li", { class: "person", dataset: { userId: user.id } }, avatar(user.nickname, user.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: user.nickname }), h("small", { class: "muted", text: `@${user.username}` })), action);
  }

  function groupResult(group) {
    const mine = state.groups.some((item) => item.id === group.id);
    const action = mine
      ? h("a", { class: "btn small", href: `#/chat/${group.conversation_id}`, text: t("contacts.message") })
      : h("button", { type: "button", class: "btn small primary", text: group.join_policy === "open" ? t("search.join") : t("search.ask_join"), disabled: group.join_policy === "invite", onclick: async (event) => {
          const button = event.currentTarget;
          try {
            const data = await api(`/groups/${group.id}/join-requests`, { method: "POST", body: {} });
            if (data.status === "joined") {
              await loadGroups();
              window.location.hash = `#/chat/${data.group.conversation_id}`;
            } else {
              button.textContent = t("search.requested");
              button.disabled = true;
            }
          } catch (error) {
            toast(error.message);
          }
        } });
    return h("li", { class: "person" }, avatar(group.name, group.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: group.name }), h("small", { class: "muted", text: `${t("chat.members", { n: group.member_count })}${group.intro ? ` · ${group.intro}` : ""}` })), action);
  }

  setTimeout(() => input.focus(), 0);
  return { el };
}

export function requestsView() {
  const list = h("ul", { class: "list requests" });
  const el = h("section", { class: "pane" }, backBar(t("contacts.requests"), "#/contacts"), list);
  const act = async (path, options) => {
    try {
      await api(path, options);
      await loadRequests();
      await loadFriends();
    } catch (error) {
      toast(error.message);
    }
  };
  function render() {
    const rows = [];
    for (const item of state.incoming) {
      const controls =
        item.status === "pending"
          ? h("span", { class: "row-btns" }, h("button", { type: "button", class: "btn small", text: t("requests.reject"), onclick: () => act(`/friend-requests/${item.id}/reject`, { method: "POST" }) }), h("button", { type: "button", class: "btn small primary accept", text: t("requests.accept"), onclick: () => act(`/friend-requests/${item.id}/accept`, { method: "POST" }) }))
          : h("small", { class: "muted", text: t(`requests.${item.status}`) });
      rows.push(h("li", { class: "person request", dataset: { from: item.from.username } }, avatar(item.from.nickname, item.from.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: item.from.nickname }), h("small", { class: "muted", text: item.message || `@${item.from.username}` })), controls));
    }
    for (const item of state.outgoing.filter((row) => row.status === "pending")) {
      rows.push(h("li", { class: "person request outgoing" }, avatar(item.to.nickname, item.to.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: item.to.nickname }), h("small", { class: "muted", text: t("requests.waiting") })), h("button", { type: "button", class: "btn small", text: t("requests.withdraw"), onclick: () => act(`/friend-requests/${item.id}`, { method: "DELETE" }) })));
    }
    list.replaceChildren(...rows);
    if (!rows.length) list.append(h("li", { class: "empty small", text: t("requests.none") }));
  }
  const off = on("requests", render);
  render();
  loadRequests().catch(() => {});
  return { el, destroy: off };
}

export function userView(userId) {
  const body = h("div", { class: "profile-card" });
  const el = h("section", { class: "pane" }, backBar(t("contacts.profile"), "#/contacts"), body);
  function render() {
    const friend = state.friends.find((item) => item.user.id === userId);
    if (!friend) {
      body.replaceChildren(h("p", { class: "empty", text: t("contacts.not_friend") }));
      return;
    }
    const user = friend.user;
    body.replaceChildren(
      h("div", { class: "profile-head" }, avatar(user.nickname, user.avatar_url, { online: user.is_bot ? null : !!friend.online, size: "lg" }), h("div", {}, h("h2", { text: displayName(user) }), h("p", { class: "muted", text: `${friend.remark ? `${t("profile.nickname")}: ${user.nickname} · ` : ""}@${user.username}` }), user.signature ? h("p", { class: "signature", text: user.signature }) : null)),
      h(
        "div",
        { class: "menu" },
        h("button", { type: "button", class: "menu-item primary-item", text: t("contacts.message"), onclick: () => startChat(user.id) }),
        h("button", { type: "button", class: "menu-item", text: t("contacts.set_remark"), onclick: async () => {
          const remark = await prompt(t("contacts.set_remark"), { value: friend.remark || "", max: 64 });
          if (remark === null) return;
          try {
            await api(`/friends/${user.id}`, { method: "PATCH", body: { remark: remark.trim() || null } });
            await loadFriends();
          } catch (error) {
            toast(error.message);
          }
        } }),
        h("button", { type: "button", class: "menu-item danger", text: t("contacts.remove"), onclick: async () => {
          if (!(await confirmSheet(t("contacts.remove"), t("contacts.remove_confirm", { name: displayName(user) }), t("contacts.remove"), true))) return;
          await api(`/friends/${user.id}`, { method: "DELETE" }).catch((error) => toast(error.message));
          await loadFriends();
          window.location.hash = "#/contacts";
        } }),
        h("button", { type: "button", class: "menu-item danger", text: t("contacts.block"), onclick: async () => {
          if (!(await confirmSheet(t("contacts.block"), t("contacts.block_confirm", { name: displayName(user) }), t("contacts.block"), true))) return;
          try {
            await api("/blocks", { method: "POST", body: { user_id: user.id } });
            toast(t("contacts.blocked"));
          } catch (error) {
            if (error instanceof ApiError) toast(error.message);
          }
        } }),
      ),
    );
  }
  const off = [on("friends", render), on("presence", render)];
  render();
  return { el, destroy: () => off.forEach((fn) => fn()) };
}
