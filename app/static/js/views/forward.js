// The forward dialog: pick one or several chats, one by one or combined into a chat-history card.
import { api } from "../api.js";
import { avatar, h, sheet, toast } from "../dom.js";
import { t } from "../i18n.js";
import { conversationName, putMessage, sortedConversations } from "../store.js";

function chatName(summary) {
  return conversationName(summary);
}

function forwardable(message) {
  return message && message.seq != null && !message.recalled && message.type !== "system";
}

/** Forward `messages` of conversation `sourceId`; resolves true when at least one chat got them. */
export async function openForward(sourceId, messages) {
  const seqs = messages.filter(forwardable).map((message) => message.seq).sort((a, b) => a - b);
  if (!seqs.length) {
    toast(t("fwd.nothing"));
    return false;
  }
  const result = await sheet(t("fwd.title"), (body, close) => {
    const chosen = new Set();
    const list = h("ul", { class: "list picker forward-targets" });
    for (const summary of sortedConversations()) {
      if (!summary.active || summary.group?.dissolved || summary.kind === "notice") continue;
      const box = h("input", { type: "checkbox", value: String(summary.id), onchange: () => (box.checked ? chosen.add(summary.id) : chosen.delete(summary.id)) });
      list.append(h("li", {}, h("label", { class: "person forward-target", dataset: { id: summary.id } }, box, avatar(chatName(summary), summary.avatar_url, { size: "sm" }), h("span", { class: "person-name", text: chatName(summary) }))));
    }
    const mode = (value, label, checked) => h("label", { class: "radio" }, h("input", { type: "radio", name: "mode", value, checked, onchange: () => { titleInput.hidden = value !== "merged"; } }), h("span", { text: label }));
    const titleInput = h("input", { class: "input forward-title", name: "title", maxlength: 100, value: t("fwd.default_title"), "aria-label": t("fwd.title_label"), hidden: seqs.length < 2 });
    const status = h("p", { class: "muted small forward-status" });
    // One id per target (and mode) for the life of this sheet: a retry after a lost answer is
    // recognised by the server as the same forward, not stored twice.
    const clientIds = new Map();
    const clientIdFor = (merged, id) => {
      const key = `${merged ? "m" : "s"}:${id}`;
      if (!clientIds.has(key)) clientIds.set(key, crypto.randomUUID());
      return clientIds.get(key);
    };
    const submit = h("button", { type: "submit", class: "btn primary", text: t("fwd.send") });
    const form = h(
      "form",
      {
        class: "stack forward-form",
        onsubmit: async (event) => {
          event.preventDefault();
          if (!chosen.size) {
            status.textContent = t("fwd.pick");
            return;
          }
          const merged = form.elements.mode.value === "merged";
          const payload = {
            conversation_id: sourceId,
            seqs,
            mode: merged ? "merged" : "separate",
            targets: [...chosen].map((id) => ({ conversation_id: id, client_msg_id: clientIdFor(merged, id) })),
          };
          if (merged && titleInput.value.trim()) payload.title = titleInput.value.trim();
          submit.disabled = true;
          try {
            close(await api("/messages/forward", { method: "POST", body: payload }));
          } catch (error) {
            submit.disabled = false;
            status.textContent = error.message || t("error.network");
          }
        },
      },
      h("div", { class: "forward-modes" }, mode("separate", t("fwd.separate"), seqs.length < 2), mode("merged", t("fwd.merged"), seqs.length >= 2)),
      titleInput,
      list,
      status,
      submit,
    );
    body.append(form);
  });
  if (!result) return false;
  let sent = false;
  for (const item of result.results || []) {
    if (item.ok) {
      sent = true;
      for (const message of item.messages || []) putMessage(message, { live: true });
    } else {
      const summary = sortedConversations().find((s) => s.id === item.conversation_id);
      toast(t("fwd.failed", { name: summary ? chatName(summary) : item.conversation_id, reason: item.error?.message || "" }));
    }
  }
  if (sent && (result.results || []).every((item) => item.ok)) toast(t("fwd.done"));
  return sent;
}
