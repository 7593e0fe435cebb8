// The chat's sheets: the chat options (info, pin, mute, delete from the list) and sending a location.
import { confirmSheet, h, icon, sheet, toast } from "../dom.js";
import { t } from "../i18n.js";
import { conversationName, state } from "../store.js";
import { patchConversation, send } from "../sync.js";

export async function chatMenu(conversationId) {
  const s = state.conversations.get(conversationId);
  if (!s) return;
  const patch = async (changes) => {
    try {
      await patchConversation(conversationId, changes);
    } catch (error) {
      toast(error.message);
    }
  };
  await sheet(conversationName(s), (body, close) => {
    const item = (label, action) => h("button", { type: "button", class: "menu-item", text: label, onclick: () => { close(); action(); } });
    body.append(
      h(
        "div",
        { class: "menu" },
        s.group ? item(t("group.info"), () => { window.location.hash = `#/group/${s.group.id}`; }) : null,
        s.peer && !s.peer.is_bot ? item(t("contacts.profile"), () => { window.location.hash = `#/user/${s.peer.id}`; }) : null,
        item(t("search.in_chat"), () => { window.location.hash = `#/chat/${conversationId}/search`; }),
        item(s.pinned ? t("chat.unpin") : t("chat.pin"), () => patch({ pinned: !s.pinned })),
        item(s.muted ? t("chat.unmute") : t("chat.mute"), () => patch({ muted: !s.muted })),
        item(t("chat.hide"), async () => {
          if (await confirmSheet(t("chat.hide"), t("chat.hide_confirm"), t("chat.hide"))) {
            await patch({ hidden: true });
            state.conversations.delete(conversationId);
            window.location.hash = "#/chats";
          }
        }),
      ),
    );
  });
}

export function locationSheet(conversationId, onSent) {
  return sheet(t("chat.location"), (body, close) => {
    const titleInput = h("input", { class: "input", name: "title", placeholder: t("loc.title"), maxlength: 200 });
    const lat = h("input", { class: "input", name: "lat", type: "number", step: "any", min: -90, max: 90, placeholder: t("loc.lat") });
    const lng = h("input", { class: "input", name: "lng", type: "number", step: "any", min: -180, max: 180, placeholder: t("loc.lng") });
    const status = h("p", { class: "muted small" });
    const here = h("button", { type: "button", class: "btn", onclick: () => {
      if (!navigator.geolocation) {
        status.textContent = t("loc.unavailable");
        return;
      }
      status.textContent = t("loc.locating");
      navigator.geolocation.getCurrentPosition(
        (position) => {
          lat.value = position.coords.latitude.toFixed(6);
          lng.value = position.coords.longitude.toFixed(6);
          if (!titleInput.value) titleInput.value = t("loc.my_location");
          status.textContent = "";
        },
        () => {
          status.textContent = t("loc.denied");
        },
        { enableHighAccuracy: true, timeout: 10000 },
      );
    } }, icon("location"), h("span", { text: t("loc.use_mine") }));
    const form = h("form", { class: "stack", onsubmit: (event) => {
      event.preventDefault();
      const latitude = Number(lat.value);
      const longitude = Number(lng.value);
      if (lat.value === "" || lng.value === "" || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) {
        status.textContent = t("loc.invalid");
        return;
      }
      send(conversationId, { type: "loc", title: titleInput.value.trim() || t("loc.pinned"), lat: latitude, lng: longitude });
      onSent();
      close();
    } }, here, titleInput, h("div", { class: "row-btns" }, lat, lng), status, h("button", { type: "submit", class: "btn primary", text: t("chat.send") }));
    body.append(form);
  });
}
