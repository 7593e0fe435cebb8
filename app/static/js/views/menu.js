// The message menu: opened by right-click, a long press (touch) or the hover toolbar's "⋯".
// ctx = {conversation, meId, role, startReply(message), startEdit(message), enterSelect(message),
// pins, roleOf?(userId)}; the chat view builds it. On a phone the menu is a bottom sheet, on a
// desktop a popover beside the message.
import { emojiPicker } from "../emoji.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { menuKeys } from "../keys.js";
import { openLayer } from "../layers.js";
import { state } from "../store.js";
import { canEdit, canRecall, copyText, hideMessages, react, recall, setPinned } from "./actions.js";
import { openForward } from "./forward.js";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

let open = null;
let point = null;

/** Where the pointer was when the menu was asked for (a right-click): the popover opens there. */
export function notePoint(x, y) {
  point = Number.isFinite(x) && Number.isFinite(y) ? { x, y } : null;
}

export function closeMessageMenu() {
  open?.close();
}

function reacted(message, emoji, meId) {
  return !!message.reactions?.some((item) => item.emoji === emoji && item.user_ids?.includes(meId));
}

function place(panel, anchor) {
  if (!window.matchMedia("(min-width: 800px)").matches) return;
  const rect = anchor?.getBoundingClientRect?.();
  const width = panel.offsetWidth;
  const height = panel.offsetHeight;
  let x = point?.x ?? (rect ? rect.left : window.innerWidth / 2);
  let y = point?.y ?? (rect ? rect.bottom + 4 : window.innerHeight / 2);
  if (!point && rect && y + height > window.innerHeight - 8) y = rect.top - height - 4;
  x = Math.max(8, Math.min(x, window.innerWidth - width - 8));
  y = Math.max(8, Math.min(y, window.innerHeight - height - 8));
  panel.style.left = `${x}px`;
  panel.style.top = `${y}px`;
}

export function openMessageMenu(message, anchor, ctx = {}) {
  closeMessageMenu();
  const at = point;
  point = null;
  if (!message || message.seq == null || message.type === "system") return null;
  const meId = ctx.meId ?? state.me?.id;
  const conversation = ctx.conversation || state.conversations.get(message.conversation_id) || {};
  const active = conversation.active !== false && !conversation.group?.dissolved;
  const isGroup = conversation.kind === "group" || !!conversation.group;
  const pins = ctx.pins || conversation.pins || [];
  const pinned = pins.some((pin) => pin.seq === message.seq);
  const live = !message.recalled;

  const backdrop = h("div", { class: "msg-menu-backdrop" });
  const panel = h("div", { class: "msg-menu", role: "menu", "aria-label": t("act.menu"), dataset: { seq: message.seq } });
  // Esc closes the menu only (not also the composer's reply or edit), through ../layers.js, and
  // the focus goes back to what opened it (the "⋯" button, else the message).
  const opener = document.activeElement && document.activeElement !== document.body ? document.activeElement : anchor;
  const done = openLayer(backdrop, { close: () => close(), opener });
  const menuButton = anchor instanceof HTMLButtonElement ? anchor : null;
  menuButton?.setAttribute("aria-expanded", "true");
  const close = () => {
    backdrop.remove();
    done();
    menuButton?.setAttribute("aria-expanded", "false");
    window.removeEventListener("hashchange", close);
    if (open?.backdrop === backdrop) open = null;
  };
  const run = (action) => () => {
    close();
    action();
  };
  const item = (action, label, fn, danger = false) =>
    h("button", { type: "button", role: "menuitem", class: `menu-item${danger ? " danger-item" : ""}`, dataset: { action }, text: label, onclick: run(fn) });

  const items = [];
  if (live && active && ctx.startReply) items.push(item("reply", t("act.reply"), () => ctx.startReply(message)));
  if (live && message.body?.type === "txt") items.push(item("copy", t("act.copy"), () => copyText(message.body.msg)));
  if (live) items.push(item("forward", t("act.forward"), () => openForward(message.conversation_id, [message])));
  if (live && active && (!isGroup || ctx.role === "owner" || ctx.role === "admin")) {
    items.push(item(pinned ? "unpin" : "pin", pinned ? t("act.unpin") : t("act.pin"), () => setPinned(message, !pinned)));
  }
  if (active && ctx.startEdit && canEdit(message, meId)) items.push(item("edit", t("act.edit"), () => ctx.startEdit(message)));
  if (active && canRecall(message, { meId, role: ctx.role, roleOf: ctx.roleOf })) items.push(item("recall", t("act.recall"), () => recall(message)));
  if (ctx.enterSelect) items.push(item("select", t("act.select"), () => ctx.enterSelect(message)));
  items.push(item("hide", t("act.hide"), () => hideMessages(message.conversation_id, [message.seq]), true));

  const toggle = (emoji) => react(message, emoji, !reacted(message, emoji, meId));
  let reactions = null;
  if (live && active) {
    reactions = h(
      "div",
      { class: "menu-reactions", role: "group", "aria-label": t("act.react") },
      QUICK_REACTIONS.map((emoji) =>
        h("button", { type: "button", role: "menuitemcheckbox", "aria-checked": String(reacted(message, emoji, meId)), class: `react-quick${reacted(message, emoji, meId) ? " mine" : ""}`, dataset: { emoji }, "aria-label": emoji, text: emoji, onclick: run(() => toggle(emoji)) }),
      ),
      h("button", {
        type: "button",
        role: "menuitem",
        class: "react-more",
        "aria-label": t("act.more_emoji"),
        title: t("act.more_emoji"),
        text: "+",
        onclick: () => {
          panel.classList.add("picking");
          // The full picker is no menu: its tabs and emoji buttons take Tab and their own keys.
          panel.setAttribute("role", "dialog");
          panel.replaceChildren(emojiPicker((emoji) => run(() => toggle(emoji))()));
          point = at;
          place(panel, anchor);
          point = null;
        },
      }),
    );
  }
  panel.append(...(reactions ? [reactions] : []), h("div", { class: "msg-menu-items" }, items));
  menuKeys(panel);
  // The tap that ends a long press lands on the backdrop: it does not close the menu it opened.
  const openedAt = Date.now();
  backdrop.addEventListener("click", (event) => {
    if (event.target === backdrop && Date.now() - openedAt > 400) close();
  });
  backdrop.addEventListener("contextmenu", (event) => {
    event.preventDefault();
    if (event.target === backdrop) close();
  });
  window.addEventListener("hashchange", close);
  backdrop.append(panel);
  document.body.append(backdrop);
  point = at;
  place(panel, anchor);
  point = null;
  (panel.querySelector(".react-quick") || panel.querySelector(".menu-item"))?.focus({ preventScroll: true });
  open = { backdrop, close };
  return open;
}
