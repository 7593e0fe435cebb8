// What the message menu does: the API calls (recall, edit, react, pin, delete for me) and their
// sheets (edit history, who reacted), and the bar of the select-many mode.
//
// The chat view mounts `selectionBar(ctx)` while it is selecting; the bar reads
// `ctx.selected` (a Set of seqs, an array, or a function returning either) when clicked, and calls
// `ctx.exitSelect()` when done. Answers are applied to the store at once; the socket events that
// follow (message:recalled, message:edited, message:reactions, conversation:pins, message:hidden)
// carry the same state to the other devices.
import { api } from "../api.js";
import { avatar, clock, confirmSheet, h, sheet, toast } from "../dom.js";
import { t } from "../i18n.js";
import { bucket, displayName, limits, patchMessage, replaceMessage, setPins } from "../store.js";
import { dropHidden } from "../sync.js";
import { openForward } from "./forward.js";

const MAX_EDITS = 10;

/** Text I recalled, by message id, with when: "Re-edit" offers it back for RECALL_WINDOW_SECONDS. */
const recalledTexts = new Map();

function messagePath(message) {
  return `/conversations/${message.conversation_id}/messages/${message.seq}`;
}

function fail(error) {
  toast(error?.message || t("error.network"));
}

function ageSeconds(message) {
  return (Date.now() - Date.parse(message.created_at)) / 1000;
}

/** Whether I may recall this message, as the server judges it (role from the chat view). */
export function canRecall(message, { meId, role, roleOf } = {}) {
  if (message.recalled || message.type === "system" || message.seq == null) return false;
  // My own messages: within the window, whatever my role (the server judges so too).
  if (message.sender?.id === meId) return ageSeconds(message) < limits.recallSeconds;
  if (role === "owner") return true;
  if (role === "admin") return (roleOf?.(message.sender?.id) ?? "member") === "member";
  return false;
}

export function canEdit(message, meId) {
  return (
    !message.recalled &&
    message.seq != null &&
    message.sender?.id === meId &&
    message.body?.type === "txt" &&
    message.type !== "merged" &&
    (message.edit_count || 0) < MAX_EDITS &&
    ageSeconds(message) < limits.editSeconds
  );
}

export async function recall(message) {
  if (message.body?.type === "txt") recalledTexts.set(message.id, { text: message.body.msg, at: Date.now() });
  try {
    const data = await api(`${messagePath(message)}/recall`, { method: "POST" });
    replaceMessage(data.message);
    return data.message;
  } catch (error) {
    recalledTexts.delete(message.id);
    fail(error);
    return null;
  }
}

/** The text of my recalled message while it may still be re-edited, and the ms left; else null. */
export function reeditable(message) {
  const kept = recalledTexts.get(message.id);
  if (!kept) return null;
  const left = kept.at + limits.recallSeconds * 1000 - Date.now();
  if (left <= 0) {
    recalledTexts.delete(message.id);
    return null;
  }
  return { text: kept.text, left };
}

export async function showEditHistory(message) {
  let versions;
  try {
    versions = (await api(`${messagePath(message)}/edits`)).versions;
  } catch (error) {
    fail(error);
    return;
  }
  await sheet(t("act.history"), (body) => {
    const list = h("ol", { class: "edit-history" });
    versions.forEach((item, index) => {
      const label = index === versions.length - 1 ? t("act.current") : item.version === 0 ? t("act.original") : t("act.version", { n: item.version });
      list.append(
        h(
          "li",
          { class: "edit-version", dataset: { version: item.version } },
          h("div", { class: "edit-head muted small" }, h("span", { text: label }), h("time", { datetime: item.written_at, text: clock(item.written_at) })),
          h("div", { class: "edit-text", text: item.body?.msg ?? "" }),
        ),
      );
    });
    body.append(list);
  });
}

/** Add or take back my reaction; the answer's summary replaces the message's. */
export async function react(message, emoji, add) {
  try {
    const data = await api(`${messagePath(message)}/reactions/${encodeURIComponent(emoji)}`, { method: add ? "PUT" : "DELETE" });
    if (data?.reactions) patchMessage(message.conversation_id, message.seq, { reactions: data.reactions });
  } catch (error) {
    fail(error);
  }
}

/** Everyone who reacted, emoji by emoji (`only` opens at one emoji). */
export async function showReactors(message, only = null) {
  const items = (message.reactions || []).filter((item) => !only || item.emoji === only);
  await sheet(t("act.who_reacted"), (body) => {
    for (const item of items) {
      const names = h("ul", { class: "list reactors" }, h("li", { class: "muted small", text: t("loading") }));
      body.append(h("section", { class: "reactor-group", dataset: { emoji: item.emoji } }, h("h3", { class: "reactor-head" }, h("span", { text: item.emoji }), h("small", { class: "muted", text: String(item.count) })), names));
      api(`${messagePath(message)}/reactions/${encodeURIComponent(item.emoji)}`)
        .then((data) => {
          names.replaceChildren(...data.users.map((user) => h("li", { class: "person reactor" }, avatar(displayName(user), user.avatar_url, { size: "sm" }), h("span", { class: "person-name", text: displayName(user) }))));
        })
        .catch((error) => names.replaceChildren(h("li", { class: "muted small", text: error.message || t("error.network") })));
    }
  });
}

export async function setPinned(message, pinned) {
  const path = `/conversations/${message.conversation_id}/pins/${message.seq}`;
  try {
    const data = await api(path, { method: pinned ? "PUT" : "DELETE" });
    if (data?.pins) setPins(message.conversation_id, data.pins);
    toast(pinned ? t("act.pinned") : t("act.unpinned"));
  } catch (error) {
    fail(error);
  }
}

/** Delete for me, after asking: gone from every device of mine, still there for the others. */
export async function hideMessages(conversationId, seqs) {
  if (!seqs.length) return false;
  if (!(await confirmSheet(t("act.hide"), t("act.hide_confirm", { n: seqs.length }), t("act.hide"), true))) return false;
  try {
    const data = await api(`/conversations/${conversationId}/messages/hide`, { method: "POST", body: { seqs } });
    dropHidden((data?.seqs || seqs).map((seq) => ({ conversation_id: conversationId, seq })));
    return true;
  } catch (error) {
    fail(error);
    return false;
  }
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", { class: "copy-buffer", value: text, readonly: true });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(t("act.copied"));
}

function selectedSeqs(ctx) {
  const raw = typeof ctx.selected === "function" ? ctx.selected() : ctx.selected;
  return [...(raw || [])].map(Number).sort((a, b) => a - b);
}

/** The select-many bar: Forward / Delete for me / Cancel, over the chosen messages. */
export function selectionBar(ctx) {
  const conversationId = ctx.conversation?.id ?? ctx.conversationId;
  const count = h("span", { class: "select-count", text: t("act.selected", { n: selectedSeqs(ctx).length }) });
  const forward = async () => {
    const box = bucket(conversationId);
    const messages = selectedSeqs(ctx).map((seq) => box.bySeq.get(seq)).filter(Boolean);
    if (await openForward(conversationId, messages)) ctx.exitSelect?.();
  };
  const hide = async () => {
    if (await hideMessages(conversationId, selectedSeqs(ctx))) ctx.exitSelect?.();
  };
  return h(
    "div",
    { class: "select-bar", role: "toolbar" },
    count,
    h("button", { type: "button", class: "btn select-forward", text: t("act.forward"), onclick: forward }),
    h("button", { type: "button", class: "btn danger select-hide", text: t("act.hide"), onclick: hide }),
    h("button", { type: "button", class: "btn select-cancel", text: t("cancel"), onclick: () => ctx.exitSelect?.() }),
  );
}
