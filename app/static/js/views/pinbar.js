// The pin bar at the top of a chat: the newest pinned message, "1/3" when there are several (a click
// jumps to the one shown and moves on to the next), and ✕ to unpin for those allowed.
// Pins live on the summary (`summary.pins`, newest first), kept live by `conversation:pins`.
import { api } from "../api.js";
import { h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { bucket, setPins, state } from "../store.js";
import { preview } from "./message.js";

/** `canUnpin()` says whether I may unpin here; `jumpTo(seq)` shows a message. */
export function pinBar({ conversationId, canUnpin, jumpTo }) {
  const el = h("div", { class: "pin-bar", hidden: true });
  const fetched = new Map(); // seq -> message, from GET .../pins
  let index = 0;
  let asked = null;

  const pins = () => state.conversations.get(conversationId)?.pins || [];

  function messageOf(pin) {
    return pin.message || bucket(conversationId).bySeq.get(pin.seq) || fetched.get(pin.seq) || null;
  }

  async function fetchMissing() {
    const key = pins().map((pin) => pin.seq).join(",");
    if (asked === key) return;
    asked = key;
    try {
      const data = await api(`/conversations/${conversationId}/pins`);
      for (const pin of data.pins) if (pin.message) fetched.set(pin.seq, pin.message);
      draw();
    } catch {
      // The bar shows what it has; the next change of pins asks again.
      asked = null;
    }
  }

  async function unpin(seq) {
    try {
      const data = await api(`/conversations/${conversationId}/pins/${seq}`, { method: "DELETE" });
      if (data?.pins) setPins(conversationId, data.pins);
    } catch (error) {
      toast(error.message || t("error.network"));
    }
  }

  function draw() {
    const list = pins();
    if (!list.length) {
      el.hidden = true;
      el.replaceChildren();
      index = 0;
      return;
    }
    if (index >= list.length) index = 0;
    const pin = list[index];
    const message = messageOf(pin);
    if (!message) fetchMissing();
    const text = message ? preview(message, false, state.me.id) : t("loading");
    el.replaceChildren(
      h(
        "button",
        { type: "button", class: "pin-main", dataset: { seq: pin.seq }, onclick: () => {
          jumpTo(pin.seq);
          index = (index + 1) % list.length;
          draw();
        } },
        icon("pin", "icon pin-icon"),
        h("span", { class: "pin-text" }, h("strong", { class: "pin-label", text: t("pins.label") }), h("span", { class: "pin-preview", text })),
        list.length > 1 ? h("span", { class: "pin-count", text: t("pins.count", { i: index + 1, n: list.length }) }) : null,
      ),
      canUnpin() ? h("button", { type: "button", class: "icon-btn pin-unpin", "aria-label": t("pins.unpin"), title: t("pins.unpin"), onclick: () => unpin(pin.seq) }, icon("close")) : null,
    );
    el.hidden = false;
  }

  return { el, draw };
}
