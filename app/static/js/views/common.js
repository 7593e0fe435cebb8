// Pieces shared by the detail panes.
import { h, icon } from "../dom.js";
import { t } from "../i18n.js";

export function backBar(title, backHref, ...actions) {
  return h("header", { class: "bar" }, h("a", { class: "icon-btn back", href: backHref, "aria-label": t("back") }, icon("back")), h("h2", { class: "title", text: title }), h("span", { class: "bar-actions" }, actions));
}

/** Checkbox list of friends to pick (new group, invitations). */
export function friendPicker(friends, excluded = new Set()) {
  const chosen = new Set();
  const list = h("ul", { class: "list picker" });
  for (const friend of friends) {
    if (excluded.has(friend.user.id) || friend.user.is_bot) continue;
    const box = h("input", { type: "checkbox", value: String(friend.user.id), onchange: () => (box.checked ? chosen.add(friend.user.id) : chosen.delete(friend.user.id)) });
    list.append(h("li", {}, h("label", { class: "person" }, box, h("span", { class: "person-name", text: friend.remark || friend.user.nickname }), h("small", { class: "muted", text: `@${friend.user.username}` }))));
  }
  if (!list.children.length) list.append(h("li", { class: "empty small", text: t("group.no_friends_to_pick") }));
  return { el: list, chosen };
}
