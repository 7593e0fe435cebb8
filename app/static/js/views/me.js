// Me: profile, devices, settings (language, theme), sign out.
import { api } from "../api.js";
import { avatar, confirmSheet, h, icon, toast } from "../dom.js";
import { LOCALES, locale, setLocale, t } from "../i18n.js";
import { emit, on, state } from "../store.js";
import { backBar } from "./common.js";

export function mountMe(container) {
  function render() {
    const me = state.me;
    container.replaceChildren(
      h("a", { class: "me-card", href: "#/profile" }, avatar(me.nickname, me.avatar_url, { size: "lg" }), h("span", { class: "person-main" }, h("strong", { class: "me-name", text: me.nickname }), h("small", { class: "muted", text: `@${me.username}` }), me.signature ? h("small", { class: "muted", text: me.signature }) : null)),
      h(
        "ul",
        { class: "list entries" },
        entry("#/devices", "devices", t("me.devices")),
        entry("#/notifications", "bell", t("notify.title")),
        entry("#/settings", "settings", t("me.settings")),
        h("li", {}, h("a", { class: "entry", href: "/account" }, h("span", { class: "entry-icon" }, icon("key")), h("span", { class: "entry-label", text: t("me.password") }))),
        h("li", {}, h("button", { type: "button", class: "entry danger sign-out", onclick: signOut }, h("span", { class: "entry-icon" }, icon("logout")), h("span", { class: "entry-label", text: t("me.sign_out") }))),
      ),
    );
  }
  const off = [on("me", render), on("locale", render)];
  render();
  return () => off.forEach((fn) => fn());
}

function entry(href, iconName, label) {
  return h("li", {}, h("a", { class: "entry", href }, h("span", { class: "entry-icon" }, icon(iconName)), h("span", { class: "entry-label", text: label })));
}

async function signOut() {
  if (!(await confirmSheet(t("me.sign_out"), t("me.sign_out_confirm"), t("me.sign_out"), true))) return;
  await api("/auth/logout", { method: "POST" }).catch(() => {});
  window.location.assign("/login");
}

export function profileView() {
  const me = state.me;
  const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
  const nickname = h("input", { class: "input", name: "nickname", value: me.nickname, maxlength: 64, required: true });
  const avatarUrl = h("input", { class: "input", name: "avatar_url", value: me.avatar_url || "", placeholder: "https://…" });
  const signature = h("input", { class: "input", name: "signature", value: me.signature || "", maxlength: 200 });
  const form = h("form", { class: "stack pad", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const data = await api("/auth/me", { method: "PATCH", body: { nickname: nickname.value, avatar_url: avatarUrl.value.trim() || null, signature: signature.value } });
      state.me = data.user;
      emit("me");
      toast(t("saved"));
    } catch (error) {
      toast(Object.values(error.fields || {})[0] || error.message);
    }
  } }, h("div", { class: "profile-head" }, avatar(me.nickname, me.avatar_url, { size: "lg" }), h("div", {}, h("h2", { text: me.nickname }), h("p", { class: "muted", text: `@${me.username}` }))), field(t("profile.nickname"), nickname), field(t("profile.avatar"), avatarUrl), field(t("profile.signature"), signature), h("button", { type: "submit", class: "btn primary", text: t("save") }));
  return { el: h("section", { class: "pane" }, backBar(t("me.profile"), "#/me"), form) };
}

export function devicesView() {
  const list = h("ul", { class: "list devices" });
  const others = h("button", { type: "button", class: "btn danger", text: t("devices.sign_out_others"), onclick: async () => {
    if (!(await confirmSheet(t("devices.sign_out_others"), t("devices.others_confirm"), t("devices.sign_out"), true))) return;
    await api("/auth/devices/sign-out-others", { method: "POST" }).catch((error) => toast(error.message));
    load();
  } });
  async function load() {
    const { devices } = await api("/auth/devices");
    list.replaceChildren(
      ...devices.map((device) =>
        h(
          "li",
          { class: "device" },
          h("span", { class: "entry-icon" }, icon("devices")),
          h("span", { class: "person-main" }, h("span", { class: "person-name", text: device.name }), h("small", { class: "muted", text: `${device.ip || ""} · ${t("devices.last_seen")} ${new Date(device.last_seen_at).toLocaleString()}` })),
          device.current
            ? h("span", { class: "tag", text: t("devices.this") })
            : h("button", { type: "button", class: "btn small", text: t("devices.sign_out"), onclick: async () => {
                await api(`/auth/devices/${device.id}`, { method: "DELETE" }).catch((error) => toast(error.message));
                load();
              } }),
        ),
      ),
    );
    others.hidden = devices.length < 2;
  }
  load().catch((error) => toast(error.message));
  return { el: h("section", { class: "pane" }, backBar(t("me.devices"), "#/me"), list, h("div", { class: "pad" }, others)) };
}

export function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

export function settingsView() {
  const language = h("select", { class: "input", name: "language", onchange: () => {
    setLocale(language.value);
    api("/auth/me", { method: "PATCH", body: { locale: language.value } }).catch(() => {});
  } }, LOCALES.map((code) => h("option", { value: code, text: t(`lang.${code}`), selected: code === locale() })));
  const current = localStorage.getItem("parley.theme") || "auto";
  const theme = h("select", { class: "input", name: "theme", onchange: () => {
    localStorage.setItem("parley.theme", theme.value);
    applyTheme(theme.value);
  } }, ["auto", "light", "dark"].map((value) => h("option", { value, text: t(`theme.${value}`), selected: value === current })));
  const field = (label, input) => h("label", { class: "field" }, h("span", { text: label }), input);
  return { el: h("section", { class: "pane" }, backBar(t("me.settings"), "#/me"), h("div", { class: "stack pad" }, field(t("settings.language"), language), field(t("settings.theme"), theme))) };
}
