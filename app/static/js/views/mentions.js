// @mentions in a group's composer: typing "@" opens the members, filtered as one types (nickname,
// remark or username; arrows + Enter/Tab or a click pick one); "@Nickname " goes into the text and
// the id is remembered. The send carries the ids whose "@name" is still in the text, and @all.
import { all } from "../api.js";
import { avatar, h } from "../dom.js";
import { t } from "../i18n.js";
import { displayName, state } from "../store.js";

const SHOWN = 8;
// "@" at the start or after a space, then the name typed so far (up to the caret).
const TOKEN = /(?:^|\s)@([^\s@]{0,32})$/u;

const memberCache = new Map(); // group id -> Promise of members

export function groupMembers(groupId, { fresh = false } = {}) {
  if (fresh || !memberCache.has(groupId)) {
    const loading = all(`/groups/${groupId}/members`, "members").catch((error) => {
      memberCache.delete(groupId);
      throw error;
    });
    memberCache.set(groupId, loading);
  }
  return memberCache.get(groupId);
}

export function forgetMembers(groupId) {
  memberCache.delete(groupId);
}

/** `group()` answers {id, role, mentionAll} in a group chat, else null. */
export function mentionPicker({ input, group, onPick }) {
  const list = h("ul", { class: "mention-list", role: "listbox", "aria-label": t("mention.list"), hidden: true });
  const picked = new Map(); // user id ("all" for @all) -> the name inserted (two people may share one)
  let items = [];
  let active = 0;
  let token = null; // {start, end, query}
  let asked = 0;

  function close() {
    list.hidden = true;
    token = null;
    items = [];
  }

  function current() {
    const caret = input.selectionStart ?? input.value.length;
    const match = TOKEN.exec(input.value.slice(0, caret));
    if (!match) return null;
    return { start: caret - match[1].length - 1, end: caret, query: match[1].toLowerCase() };
  }

  async function onInput() {
    const info = group();
    token = info ? current() : null;
    if (!token) {
      close();
      return;
    }
    const ask = ++asked;
    let members;
    try {
      members = await groupMembers(info.id);
    } catch {
      close();
      return;
    }
    if (ask !== asked || !token) return;
    const query = token.query;
    const matches = (member) => {
      const names = [displayName(member.user), member.user.nickname, member.user.username];
      return !query || names.some((name) => (name || "").toLowerCase().includes(query));
    };
    const found = members.filter((member) => member.user.id !== state.me.id && matches(member));
    found.sort((a, b) => Number(!startsWith(a, query)) - Number(!startsWith(b, query)));
    items = found.slice(0, SHOWN).map((member) => ({ id: member.user.id, name: member.user.nickname || member.user.username, user: member.user }));
    const allName = t("mention.all_name");
    if (info.mentionAll && (!query || allName.toLowerCase().startsWith(query) || "all".startsWith(query))) {
      items.unshift({ id: "all", name: allName, user: null });
    }
    active = 0;
    draw();
  }

  function startsWith(member, query) {
    return [displayName(member.user), member.user.nickname, member.user.username].some((name) => (name || "").toLowerCase().startsWith(query));
  }

  function draw() {
    if (!items.length) {
      list.hidden = true;
      return;
    }
    list.replaceChildren(
      ...items.map((item, index) =>
        h(
          "li",
          {
            class: `mention-item${index === active ? " active" : ""}${item.id === "all" ? " mention-all" : ""}`,
            role: "option",
            "aria-selected": index === active ? "true" : "false",
            dataset: { id: item.id },
            onmousedown: (event) => {
              event.preventDefault();
              pick(index);
            },
          },
          item.user ? avatar(displayName(item.user), item.user.avatar_url, { size: "sm" }) : h("span", { class: "avatar sm mention-all-icon", text: "@" }),
          h("span", { class: "mention-name", text: item.user ? displayName(item.user) : t("mention.all") }),
          item.user ? h("small", { class: "muted", text: `@${item.user.username}` }) : null,
        ),
      ),
    );
    list.hidden = false;
    list.children[active]?.scrollIntoView({ block: "nearest" });
  }

  function pick(index) {
    const item = items[index];
    if (!item || !token) return;
    const text = `@${item.name} `;
    input.value = input.value.slice(0, token.start) + text + input.value.slice(token.end);
    input.selectionStart = input.selectionEnd = token.start + text.length;
    picked.set(item.id, item.name);
    close();
    input.focus();
    onPick?.();
  }

  function onKeydown(event) {
    if (list.hidden || !items.length || event.isComposing) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      active = (active + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      draw();
    } else if (event.key === "Enter" || event.key === "Tab") {
      pick(active);
    } else if (event.key === "Escape") {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  /** What a send of `text` carries: the picked members still named in it, and @all. */
  function extras(text) {
    const ids = new Set();
    let everyone = false;
    for (const [id, name] of picked) {
      if (!text.includes(`@${name}`)) continue;
      if (id === "all") everyone = true;
      else ids.add(id);
    }
    const out = {};
    if (ids.size) out.mentions = [...ids];
    if (everyone) out.mention_all = true;
    return out;
  }

  return {
    el: list,
    onInput,
    onKeydown,
    extras,
    close,
    reset() {
      picked.clear();
      close();
    },
  };
}
