// The composer's modes: a plain message, a reply (bar with the quoted message above the input) or an
// edit of my own text (bar "Editing"; Enter saves, Esc cancels); @mentions through ./mentions.js.
// Its text is kept as the conversation's draft (../drafts.js); files pasted into it or dropped on
// the chat are sent as the attach menu sends them, and so is a voice message recorded with its
// microphone button (./voicerecord.js).
import { api } from "../api.js";
import { fileSize, h, icon, toast } from "../dom.js";
import { draftOf, saveDraft } from "../drafts.js";
import { t } from "../i18n.js";
import { displayName, limits, replaceMessage, state } from "../store.js";
import { send } from "../sync.js";
import { mentionPicker } from "./mentions.js";
import { preview } from "./message.js";
import { voiceButton } from "./voicerecord.js";

const QUOTE_CHARS = 100;
// Upload kinds as the server names them -> the message type that carries them.
const BODY_TYPES = { image: "img", video: "video", file: "file" };

/** The kind the server will most likely find in a file (it sniffs the bytes; this is a guess). */
function guessKind(file) {
  if (file.type.startsWith("image/")) return "image";
  if (file.type.startsWith("video/")) return "video";
  return "file";
}

/** The files a paste or a drop carries (never the text of a paste). */
function filesOf(transfer) {
  if (!transfer) return [];
  const files = [...(transfer.files || [])];
  if (files.length) return files;
  return [...(transfer.items || [])].filter((item) => item.kind === "file").map((item) => item.getAsFile()).filter(Boolean);
}

function carriesFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes("Files");
}

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
 * {id, role, mentionAll} for a group chat (null for a direct one). `upload(file, type)` sends a
 * file as the attach menu does (type null: from what the server found) and resolves when done;
 * `acceptDrops(zone)` sends the files dropped anywhere on the zone (the chat) too. `voice` is the
 * microphone button, for the chat to place (null without `upload`).
 */
export function createComposer({ conversationId, input, autosize, onSent, group, upload = null }) {
  const bar = h("div", { class: "compose-bar", hidden: true });
  const mentions = mentionPicker({ input, group, onPick: autosize });
  const el = h("div", { class: "compose-extras" }, mentions.el, bar);
  let mode = null; // null | {kind: "reply", message} | {kind: "edit", message, draft}
  const userId = state.me?.id;

  /** The draft is what the input holds, or while editing a message, what it held before. */
  function keepDraft() {
    saveDraft(userId, conversationId, mode?.kind === "edit" ? mode.draft || "" : input.value);
  }

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

  /** Whether this chat takes messages now (not read-only, left, muted or selecting). */
  function canSend() {
    return !input.disabled && !input.closest("[hidden]") && input.isConnected;
  }

  /** Send files one after another (their messages arrive in order); each is checked first. */
  let queue = Promise.resolve();
  function sendFiles(files) {
    if (!upload || !files.length) return;
    if (!canSend()) {
      toast(t("composer.cannot_send"));
      return;
    }
    for (const file of files) {
      const max = limits.maxBytes?.[guessKind(file)];
      if (max && file.size > max) {
        toast(t("composer.too_large", { name: file.name || t("chat.file"), max: fileSize(max) }));
        continue;
      }
      queue = queue.then(() => upload(file, null)).catch(() => {});
    }
  }

  // A finished recording is uploaded as a voice message (the server measures it; `duration` is
  // this browser's own measure, which it checks) and sent as an `audio` message.
  const voice = upload
    ? voiceButton({
      canSend,
      sendVoice(file, seconds) {
        queue = queue.then(() => upload(file, "audio", { purpose: "voice", duration: seconds })).catch(() => {});
      },
    })
    : null;

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
    keepDraft();
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
    saveDraft(userId, conversationId, "");
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

  input.addEventListener("input", () => {
    mentions.onInput();
    keepDraft();
  });
  input.addEventListener("blur", () => setTimeout(() => mentions.close(), 150));

  // A pasted image (a screenshot) or file is sent; pasted text stays text in the input.
  input.addEventListener("paste", (event) => {
    const files = filesOf(event.clipboardData);
    if (!files.length || !upload) return;
    event.preventDefault();
    sendFiles(files);
  });

  /** Files dragged over the zone: a drop target covers it; a drop sends each file. */
  function acceptDrops(dropZone) {
    const target = h("div", { class: "drop-target", hidden: true }, h("div", { class: "drop-target-inner" }, icon("file"), h("span", { text: t("composer.drop") })));
    dropZone.append(target);
    let depth = 0;
    const hide = () => {
      depth = 0;
      target.hidden = true;
    };
    dropZone.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      depth += 1;
      target.hidden = !canSend();
    });
    dropZone.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      // Never the browser's own drop (it would leave Parley to show the file).
      event.preventDefault();
      event.dataTransfer.dropEffect = canSend() ? "copy" : "none";
    });
    dropZone.addEventListener("dragleave", (event) => {
      if (!carriesFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) hide();
    });
    dropZone.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      hide();
      sendFiles(filesOf(event.dataTransfer));
    });
  }

  // The draft kept for this chat comes back (a switch to another chat, a reload).
  if (!input.value) {
    const draft = draftOf(userId, conversationId);
    if (draft) {
      input.value = draft;
      requestAnimationFrame(() => autosize());
    }
  }

  return {
    el,
    startReply,
    startEdit,
    cancel,
    setText,
    submit,
    onKeydown,
    sendFiles,
    acceptDrops,
    keepDraft,
    voice: voice?.el || null,
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
