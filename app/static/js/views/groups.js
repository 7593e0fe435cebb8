// Group screens: create, info with members and roles, invite, join requests, settings, leave, dissolve.
import { all, api } from "../api.js";
import { avatar, confirmSheet, h, prompt, sheet, toast } from "../dom.js";
import { t } from "../i18n.js";
import { on, state } from "../store.js";
import { loadGroups, patchConversation as patchConversationOf } from "../sync.js";
import { chooseAvatar } from "../crop.js";
import { backBar, friendPicker } from "./common.js";

export function newGroupView() {
  const name = h("input", { class: "input", name: "name", maxlength: 64, required: true, placeholder: t("group.name") });
  const picker = friendPicker(state.friends);
  const form = h("form", { class: "stack pad", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const data = await api("/groups", { method: "POST", body: { name: name.value, member_ids: [...picker.chosen] } });
      await loadGroups();
      window.location.hash = `#/chat/${data.group.conversation_id}`;
    } catch (error) {
      toast(error.fields?.name || error.message);
    }
  } }, h("label", { class: "field" }, h("span", { text: t("group.name") }), name), h("h3", { class: "section-head", text: t("group.pick_members") }), picker.el, h("button", { type: "submit", class: "btn primary", text: t("group.create") }));
  return { el: h("section", { class: "pane" }, backBar(t("group.create"), "#/contacts"), form) };
}

const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };

export function groupView(groupId) {
  const body = h("div", { class: "group-info" });
  const bar = backBar(t("group.info"), "#/chats");
  const el = h("section", { class: "pane" }, bar, body);
  let group = null;
  let members = [];
  let requests = [];
  // Loads under way, and whether this view asks no more (I am leaving the group here, or the view
  // closed): a load must not ask for the members of a group I left in the middle of it.
  const loading = new Set();
  let stopped = false;

  async function loadOnce() {
    try {
      const answer = (await api(`/groups/${groupId}`)).group;
      if (stopped) return;
      group = answer;
      bar.querySelector(".back").setAttribute("href", `#/chat/${group.conversation_id}`);
      if (group.my_role) {
        const list = await all(`/groups/${groupId}/members`, "members");
        if (stopped) return;
        members = list.sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role]);
        requests = group.my_role !== "member" && !group.dissolved ? (await api(`/groups/${groupId}/join-requests`)).requests : [];
        if (stopped) return;
      }
      render();
    } catch (error) {
      if (!stopped) body.replaceChildren(h("p", { class: "empty", text: error.message }));
    }
  }

  async function load() {
    if (stopped) return;
    const run = loadOnce();
    loading.add(run);
    try {
      await run;
    } finally {
      loading.delete(run);
    }
  }

  const act = async (fn) => {
    try {
      await fn();
    } catch (error) {
      toast(error.fields?.avatar_url || error.message);
    }
    await load();
  };

  function memberMenu(member) {
    const me = group.my_role;
    const canRemove = member.user.id !== state.me.id && member.role !== "owner" && (me === "owner" || (me === "admin" && member.role === "member"));
    const canRole = me === "owner" && member.role !== "owner";
    if (!canRemove && !canRole) return;
    sheet(member.user.nickname, (sheetBody, close) => {
      const item = (label, fn, cls = "") => h("button", { type: "button", class: `menu-item ${cls}`, text: label, onclick: () => { close(); act(fn); } });
      sheetBody.append(
        h(
          "div",
          { class: "menu" },
          canRole ? item(member.role === "admin" ? t("group.make_member") : t("group.make_admin"), () => api(`/groups/${groupId}/members/${member.user.id}/role`, { method: "PUT", body: { role: member.role === "admin" ? "member" : "admin" } })) : null,
          canRole ? item(t("group.transfer"), () => api(`/groups/${groupId}/transfer`, { method: "POST", body: { user_id: member.user.id } })) : null,
          canRemove ? item(t("group.mute_member"), () => api(`/groups/${groupId}/members/${member.user.id}/mute`, { method: "PUT", body: { minutes: 60 } })) : null,
          canRemove ? item(t("group.unmute_member"), () => api(`/groups/${groupId}/members/${member.user.id}/mute`, { method: "PUT", body: { minutes: 0 } })) : null,
          canRemove ? item(t("group.remove"), () => api(`/groups/${groupId}/members/${member.user.id}`, { method: "DELETE" }), "danger") : null,
        ),
      );
    });
  }

  function render() {
    const moderator = group.my_role === "owner" || group.my_role === "admin";
    const open = !group.dissolved;
    const summary = state.conversations.get(group.conversation_id);
    const parts = [
      h("div", { class: "profile-head" }, moderator && open ? h("div", { class: "photo-edit" }, avatar(group.name, group.avatar_url, { size: "lg" }), h("button", { type: "button", class: "btn small change-photo", text: t("profile.change_photo"), onclick: newPhoto })) : avatar(group.name, group.avatar_url, { size: "lg" }), h("div", {}, h("h2", { text: group.name }), h("p", { class: "muted", text: `${t("chat.members", { n: group.member_count })} · ${t(`group.policy_${group.join_policy}`)}` }), group.dissolved ? h("p", { class: "danger-text", text: t("chat.dissolved") }) : null)),
    ];
    if (group.intro) parts.push(h("div", { class: "info-block" }, h("h3", { text: t("group.intro") }), h("p", { text: group.intro })));
    parts.push(h("div", { class: "info-block announcement" }, h("h3", { text: t("group.announcement") }), h("p", { class: group.announcement ? "" : "muted", text: group.announcement || t("group.no_announcement") })));
    if (group.my_role) {
      const grid = h("div", { class: "member-grid" });
      for (const member of members) {
        grid.append(
          h("button", { type: "button", class: "member", dataset: { userId: member.user.id, role: member.role }, onclick: () => memberMenu(member) }, avatar(member.user.nickname, member.user.avatar_url, { online: !!member.online }), h("span", { class: "member-name", text: member.user.nickname }), member.role !== "member" ? h("span", { class: `role ${member.role}`, text: t(`group.role_${member.role}`) }) : null),
        );
      }
      const canInvite = open && (moderator || group.join_policy !== "invite");
      if (canInvite) grid.append(h("button", { type: "button", class: "member invite", onclick: invite }, h("span", { class: "avatar add", text: "+" }), h("span", { class: "member-name", text: t("group.invite") })));
      parts.push(h("div", { class: "info-block" }, h("h3", { text: t("group.members") }), grid));
    }
    if (requests.length) {
      parts.push(
        h(
          "div",
          { class: "info-block" },
          h("h3", { text: t("group.join_requests") }),
          h("ul", { class: "list" }, requests.map((request) => h("li", { class: "person" }, avatar(request.user.nickname, request.user.avatar_url), h("span", { class: "person-main" }, h("span", { class: "person-name", text: request.user.nickname }), h("small", { class: "muted", text: request.message || "" })), h("span", { class: "row-btns" }, h("button", { type: "button", class: "btn small", text: t("requests.reject"), onclick: () => act(() => api(`/group-join-requests/${request.id}/reject`, { method: "POST" })) }), h("button", { type: "button", class: "btn small primary", text: t("requests.accept"), onclick: () => act(() => api(`/group-join-requests/${request.id}/approve`, { method: "POST" })) }))))),
        ),
      );
    }
    const menu = h("div", { class: "menu" });
    if (summary) {
      menu.append(
        h("button", { type: "button", class: "menu-item", text: summary.pinned ? t("chat.unpin") : t("chat.pin"), onclick: () => patchConversation({ pinned: !summary.pinned }) }),
        h("button", { type: "button", class: "menu-item", text: summary.muted ? t("chat.unmute") : t("chat.mute"), onclick: () => patchConversation({ muted: !summary.muted }) }),
      );
    }
    if (moderator && open) {
      menu.append(
        h("button", { type: "button", class: "menu-item", text: t("group.edit"), onclick: edit }),
        h("button", { type: "button", class: "menu-item", text: group.muted_all ? t("group.unmute_all") : t("group.mute_all"), onclick: () => act(() => api(`/groups/${groupId}/mute`, { method: "PUT", body: { muted: !group.muted_all } })) }),
      );
    }
    if (group.my_role && group.my_role !== "owner" && open) {
      menu.append(h("button", { type: "button", class: "menu-item danger", text: t("group.leave"), onclick: async () => {
        if (!(await confirmSheet(t("group.leave"), t("group.leave_confirm", { name: group.name }), t("group.leave"), true))) return;
        stopped = true;
        await Promise.allSettled([...loading]);
        try {
          await api(`/groups/${groupId}/members/${state.me.id}`, { method: "DELETE" });
        } catch (error) {
          stopped = false;
          toast(error.message);
          load();
          return;
        }
        // Out of the group: its chat leaves my list (conversation:update hidden on every device).
        window.location.hash = "#/chats";
        await loadGroups();
      } }));
    }
    if (group.my_role === "owner" && open) {
      menu.append(h("button", { type: "button", class: "menu-item danger", text: t("group.dissolve"), onclick: async () => {
        const reason = await prompt(t("group.dissolve_confirm", { name: group.name }), { placeholder: t("group.reason"), okLabel: t("group.dissolve") });
        if (reason === null) return;
        await act(() => api(`/groups/${groupId}/dissolve`, { method: "POST", body: reason.trim() ? { reason: reason.trim() } : {} }));
        loadGroups();
      } }));
    }
    parts.push(menu);
    body.replaceChildren(...parts);
  }

  async function patchConversation(changes) {
    try {
      await patchConversationOf(group.conversation_id, changes);
      render();
    } catch (error) {
      toast(error.message);
    }
  }

  // Owner and admins: pick, crop and upload a photo (app/static/js/crop.js), then set it.
  async function newPhoto(event) {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const uploaded = await chooseAvatar();
      if (uploaded) await act(() => api(`/groups/${groupId}`, { method: "PATCH", body: { avatar_url: uploaded.url } }));
    } catch (error) {
      toast(Object.values(error.fields || {})[0] || error.message || t("error.upload"));
    } finally {
      button.disabled = false;
    }
  }

  async function invite() {
    const inGroup = new Set(members.map((member) => member.user.id));
    const ids = await sheet(t("group.invite"), (sheetBody, close) => {
      const picker = friendPicker(state.friends, inGroup);
      sheetBody.append(picker.el, h("button", { type: "button", class: "btn primary", text: t("group.invite"), onclick: () => close([...picker.chosen]) }));
    });
    if (ids?.length) act(() => api(`/groups/${groupId}/members`, { method: "POST", body: { user_ids: ids } }));
  }

  async function edit() {
    const changes = await sheet(t("group.edit"), (sheetBody, close) => {
      const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
      const name = h("input", { class: "input", name: "name", value: group.name, maxlength: 64 });
      const avatarUrl = h("input", { class: "input", name: "avatar_url", value: group.avatar_url || "", placeholder: "https://…" });
      const intro = h("textarea", { class: "input", name: "intro", rows: 2, value: group.intro || "" });
      const announcement = h("textarea", { class: "input", name: "announcement", rows: 3, value: group.announcement || "" });
      const policy = h("select", { class: "input", name: "join_policy" }, ["open", "approval", "invite"].map((value) => h("option", { value, text: t(`group.policy_${value}`), selected: group.join_policy === value })));
      const discoverable = h("input", { type: "checkbox", name: "discoverable", checked: group.discoverable });
      sheetBody.append(
        h("form", { class: "stack", onsubmit: (event) => {
          event.preventDefault();
          const wanted = { name: name.value.trim(), avatar_url: avatarUrl.value.trim() || null, intro: intro.value, announcement: announcement.value, join_policy: policy.value, discoverable: discoverable.checked };
          close(Object.fromEntries(Object.entries(wanted).filter(([key, value]) => value !== (group[key] ?? (key === "avatar_url" ? null : "")))));
        } }, field(t("group.name"), name), field(t("profile.avatar"), avatarUrl), field(t("group.intro"), intro), field(t("group.announcement"), announcement), field(t("group.policy"), policy), h("label", { class: "check" }, discoverable, h("span", { text: t("group.discoverable") })), h("button", { type: "submit", class: "btn primary", text: t("save") })),
      );
    });
    if (changes && Object.keys(changes).length) act(() => api(`/groups/${groupId}`, { method: "PATCH", body: changes }));
  }

  const off = on(`group:${groupId}`, load);
  load();
  return {
    el,
    destroy: () => {
      stopped = true;
      off();
    },
  };
}
