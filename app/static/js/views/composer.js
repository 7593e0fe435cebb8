// The composer's modes: a plain message, a reply (bar with the quoted message above the input) or an
// edit of my own text (bar "Editing"; Enter saves, Esc cancels); @mentions through ./mentions.js.
import { api } from "../api.js";
import { h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { displayName, replaceMessage, state } from "../store.js";
import { send } from "../sync.js";
import { mentionPicker } from "./mentions.js";
import { preview } from "./message.js";

const QUOTE_CHARS = 100;

/** The snapshot a reply shows while it is being sent (the server stores its own). */
export function quoteOf(message) {
  const body = message.body || {};
  let text = "";
  if (body.type === "txt") text = Array.from(body.msg || "").slice(0, QUOTE_CHARS).join("");
  else if (body.type === "file") text = body.name || body.upload?.name || "";
  else if (body.type === "loc") text = body.title || "";
  const sender = message.sender ? { id: message.sender.id, nickname: message.sender.nickname } : null;
  return { seq: message.seq, sender, type: body.type || message.type, text, recalled: false };
}

/**
 * Wire the composer of one chat. `input` is its textarea; `onSent()` runs after a send (the chat
 * scrolls to the newest); `autosize()` redraws the input's height and buttons; `group()` answers
 * {id, role, mentionAll} for a group chat (null for a direct one).
 */
export function createComposer({ conversationId, input, autosize, onSent, group }) {
  const bar = h("div", { class: "compose-bar", hidden: true });
  const mentions = mentionPicker({ input, group, onPick: autosize });
  const el = h("div", { class: "compose-extras" }, mentions.el, bar);
  let mode = null; // null | {kind: "reply", message} | {kind: "edit", message, draft}

  function drawBar() {
    if (!mode) {
      bar.hidden = true;
      bar.replaceChildren();
      return;
    }
    const { message } = mode;
    const label = mode.kind === "reply" ? t("composer.reply_to", { name: displayName(message.sender) || t("chat.someone") }) : t("composer.editing");
    bar.className = `compose-bar ${mode.kind}`;
    bar.replaceChildren(
      h("div", { class: "compose-bar-text" }, h("strong", { class: "compose-bar-label", text: label }), h("span", { class: "compose-bar-preview", text: preview(message, false, state.me.id) })),
      h("button", { type: "button", class: "icon-btn compose-cancel", "aria-label": t("composer.cancel"), title: t("composer.cancel"), onclick: () => cancel() }, icon("close")),
    );
    bar.hidden = false;
  }

  function startReply(message) {
    if (mode?.kind === "edit") restoreDraft();
    mode = { kind: "reply", message };
    drawBar();
    input.focus();
  }

  function startEdit(message) {
    const draft = mode?.kind === "edit" ? mode.draft : input.value;
    mode = { kind: "edit", message, draft };
    input.value = message.body?.msg || "";
    mentions.reset();
    drawBar();
    autosize();
    input.focus();
    input.selectionStart = input.selectionEnd = input.value.length;
  }

  function restoreDraft() {
    input.value = mode.draft || "";
    autosize();
  }

  function cancel() {
    if (!mode) return;
    if (mode.kind === "edit") restoreDraft();
    mode = null;
    drawBar();
    input.focus();
  }

  /** Put text into the composer (a recalled message's text offered back). */
  function setText(text) {
    if (mode?.kind === "edit") {
      mode = null;
      drawBar();
    }
    input.value = text;
    autosize();
    input.focus();
    input.selectionStart = input.selectionEnd = input.value.length;
  }

  async function saveEdit(text) {
    const { message, draft } = mode;
    if (text === (message.body?.msg || "")) {
      toast(t("composer.edited_nothing"));
      cancel();
      return;
    }
    try {
      const data = await api(`/conversations/${conversationId}/messages/${message.seq}`, { method: "PATCH", body: { msg: text, version: message.edit_count || 0 } });
      replaceMessage(data.message);
      if (mode?.message === message) {
        mode = null;
        input.value = draft || "";
        drawBar();
        autosize();
      }
    } catch (error) {
      toast(error.message || t("error.network"));
    }
  }

  function submit() {
    const text = input.value;
    if (!text.trim()) return;
    if (mode?.kind === "edit") {
      saveEdit(text);
      return;
    }
    const extras = mentions.extras(text);
    if (mode?.kind === "reply") {
      extras.reply_to = mode.message.seq;
      extras.reply = quoteOf(mode.message);
      mode = null;
      drawBar();
    }
    input.value = "";
    mentions.reset();
    autosize();
    send(conversationId, { type: "txt", msg: text }, extras);
    onSent();
  }

  /** Keys the composer handles before the chat's own: the mention list, then Esc. */
  function onKeydown(event) {
    if (mentions.onKeydown(event)) return true;
    if (event.key === "Escape" && mode) {
      event.preventDefault();
      cancel();
      return true;
    }
    return false;
  }

  input.addEventListener("input", () => mentions.onInput());
  input.addEventListener("blur", () => setTimeout(() => mentions.close(), 150));

  return {
    el,
    startReply,
    startEdit,
    cancel,
    setText,
    submit,
    onKeydown,
    /** The group's details changed (my role): an open mention list is drawn again. */
    refresh() {
      if (document.activeElement === input) mentions.onInput();
    },
    /** Other things a send carries (an upload): the pending reply goes with it. */
    takeReply() {
      if (mode?.kind !== "reply") return {};
      const extras = { reply_to: mode.message.seq, reply: quoteOf(mode.message) };
      mode = null;
      drawBar();
      return extras;
    },
    get editing() {
      return mode?.kind === "edit";
    },
  };
}
