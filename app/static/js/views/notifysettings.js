// Me → Notifications: this device's switches (notifications, sound), the account's preview
// privacy, Web Push on this device, and the devices of mine that receive pushes.
import { api } from "../api.js";
import { h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { askPermission, permission, pushDevices, pwa, setSetting, setting } from "../notify.js";
import { emit, on, state } from "../store.js";
import { backBar } from "./common.js";

function toggle(name, label, checked, onChange) {
  const box = h("input", { type: "checkbox", name, checked, onchange: () => onChange(box.checked, box) });
  return { box, el: h("label", { class: "switch-row", dataset: { setting: name } }, h("span", { class: "switch-label", text: label }), box) };
}

export function notificationsView() {
  const permissionNote = h("p", { class: "muted small notify-note", hidden: true });
  const notify = toggle("notifications", t("notify.on"), false, async (on, box) => {
    if (on && permission() === "default") {
      const result = await askPermission();
      box.checked = result === "granted";
    }
    setSetting("notify", box.checked);
    draw();
  });
  const sound = toggle("sound", t("notify.sound"), setting("sound"), (on) => setSetting("sound", on));
  const previews = toggle("previews", t("notify.previews"), state.me.notification_previews !== false, async (on, box) => {
    box.disabled = true;
    try {
      const data = await api("/auth/me", { method: "PATCH", body: { notification_previews: on } });
      state.me = data.user;
      emit("me");
    } catch (error) {
      box.checked = !on;
      toast(error.message || t("error.network"));
    } finally {
      box.disabled = false;
    }
  });
  const pushStatus = h("small", { class: "muted push-status" });
  const pushButton = h("button", { type: "button", class: "btn small push-toggle", hidden: true });
  const devices = h("ul", { class: "list push-devices" });
  let pushNow = "unsupported";

  function draw() {
    const allowed = permission();
    notify.box.checked = allowed === "granted" && setting("notify");
    notify.box.disabled = allowed === "denied" || allowed === "unsupported";
    permissionNote.hidden = allowed !== "denied" && allowed !== "unsupported";
    permissionNote.textContent = allowed === "unsupported" ? t("notify.unsupported") : t("notify.denied");
  }

  async function drawPush() {
    const push = await pwa();
    pushNow = push ? await push.pushState().catch(() => "unsupported") : "unsupported";
    pushStatus.textContent = t(`notify.push_${pushNow}`);
    pushStatus.dataset.state = pushNow;
    pushButton.hidden = pushNow !== "on" && pushNow !== "off";
    pushButton.textContent = pushNow === "on" ? t("notify.push_disable") : t("notify.push_enable");
  }

  async function loadDevices() {
    try {
      const items = await pushDevices();
      devices.replaceChildren(
        ...items.map((item) =>
          h("li", { class: "device", dataset: { deviceId: item.device_id } }, h("span", { class: "person-main" }, h("span", { class: "person-name", text: item.device_name || "" }), item.created_at ? h("small", { class: "muted", text: new Date(item.created_at).toLocaleString() }) : null), item.current ? h("span", { class: "tag", text: t("devices.this") }) : null),
        ),
      );
      if (!items.length) devices.append(h("li", { class: "empty small", text: t("notify.no_push_devices") }));
    } catch {
      devices.replaceChildren(h("li", { class: "empty small", text: t("error.network") }));
    }
  }

  pushButton.addEventListener("click", async () => {
    const push = await pwa();
    if (!push) return;
    pushButton.disabled = true;
    try {
      if (pushNow === "on") await push.disablePush();
      else if ((await push.enablePush()) !== "on") toast(t("notify.push_failed"));
    } catch (error) {
      toast(error?.message || t("notify.push_failed"));
    } finally {
      pushButton.disabled = false;
    }
    draw();
    await drawPush();
    loadDevices();
  });

  const off = on("notify-settings", () => {
    draw();
    drawPush();
  });
  draw();
  drawPush();
  loadDevices();
  const el = h(
    "section",
    { class: "pane notify-settings" },
    backBar(t("notify.title"), "#/me"),
    h(
      "div",
      { class: "stack pad" },
      notify.el,
      permissionNote,
      sound.el,
      previews.el,
      h("div", { class: "switch-row push-row" }, h("span", { class: "switch-label" }, t("notify.push"), h("br"), pushStatus), pushButton),
    ),
    h("h3", { class: "section-head", text: t("notify.push_devices") }),
    devices,
  );
  return { el, destroy: off };
}
