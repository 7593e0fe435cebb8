// Me: profile, devices, settings (language, theme), sign out.
import { api, goToSignIn } from "../api.js";
import { chooseAvatar } from "../crop.js";
import { avatar, confirmSheet, h, icon, longDate, relativeTime, toast } from "../dom.js";
import { clearDrafts } from "../drafts.js";
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
        entry("#/data", "file", t("data.title")),
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
  clearDrafts();
  goToSignIn();
}

export function profileView() {
  const me = state.me;
  const errors = {};
  const errorFor = (name) => (errors[name] = h("span", { class: "field-error", id: `error-${name}`, role: "alert" }));
  const field = (label, input, name) => h("label", { class: "field" }, h("span", { text: label }), input, errorFor(name));
  const nickname = h("input", { class: "input", name: "nickname", value: me.nickname, maxlength: 64, required: true, "aria-describedby": "error-nickname" });
  const avatarUrl = h("input", { class: "input", name: "avatar_url", type: "url", inputmode: "url", value: isLink(me.avatar_url) ? me.avatar_url : "", placeholder: "https://…", "aria-describedby": "error-avatar_url" });
  const signature = h("input", { class: "input", name: "signature", value: me.signature || "", maxlength: 200, "aria-describedby": "error-signature" });
  const photoError = h("p", { class: "field-error photo-error", role: "alert" });
  const progress = h("span", { class: "photo-progress", "aria-live": "polite" });
  const changePhoto = h("button", { type: "button", class: "btn small change-photo", text: t("profile.change_photo"), onclick: () => newPhoto() });
  // The header shows what is saved, and follows every change (this device's and the others').
  const head = h("div", { class: "profile-head" });
  function renderHead() {
    const current = state.me;
    head.replaceChildren(
      h("div", { class: "photo-edit" }, avatar(current.nickname, current.avatar_url, { size: "lg" }), changePhoto),
      h("div", { class: "person-main" }, h("h2", { class: "profile-name", text: current.nickname }), h("p", { class: "muted", text: `@${current.username}` }), progress, photoError),
    );
  }
  renderHead();

  function showErrors(error) {
    for (const el of Object.values(errors)) el.textContent = "";
    const fields = error?.fields || {};
    let shown = false;
    for (const [name, message] of Object.entries(fields)) {
      if (errors[name]) {
        errors[name].textContent = message;
        shown = true;
      }
    }
    if (error && !shown) toast(error.message || t("error.network"));
  }

  async function save(changes) {
    const data = await api("/auth/me", { method: "PATCH", body: changes });
    state.me = data.user;
    emit("me");
    return data.user;
  }

  async function newPhoto() {
    photoError.textContent = "";
    changePhoto.disabled = true;
    try {
      const uploaded = await chooseAvatar({ onProgress: (part) => { progress.textContent = `${t("profile.uploading")} ${Math.round(part * 100)}%`; } });
      if (!uploaded) return;
      await save({ avatar_url: uploaded.url });
      avatarUrl.value = "";
      toast(t("profile.photo_saved"));
    } catch (error) {
      photoError.textContent = Object.values(error.fields || {})[0] || error.message || t("error.upload");
    } finally {
      progress.textContent = "";
      changePhoto.disabled = false;
    }
  }

  const form = h("form", { class: "stack pad", novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    showErrors(null);
    const link = avatarUrl.value.trim();
    const changes = { nickname: nickname.value, signature: signature.value };
    // The link field shows a link only: a photo uploaded here stays unless a link replaces it.
    if (link || isLink(state.me.avatar_url)) changes.avatar_url = link || null;
    try {
      await save(changes);
      toast(t("saved"));
    } catch (error) {
      showErrors(error);
    }
  } }, field(t("profile.nickname"), nickname, "nickname"), field(t("profile.avatar_link"), avatarUrl, "avatar_url"), field(t("profile.signature"), signature, "signature"), h("button", { type: "submit", class: "btn primary", text: t("save") }));
  const off = on("me", renderHead);
  return { el: h("section", { class: "pane" }, backBar(t("me.profile"), "#/me"), head, form), destroy: off };
}

/** An avatar that is a link elsewhere (shown in the link field), not a photo uploaded here. */
function isLink(url) {
  return typeof url === "string" && url.startsWith("https://");
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
          h("span", { class: "person-main" }, h("span", { class: "person-name", text: device.name }), device.ip ? h("small", { class: "muted device-ip", text: device.ip }) : null, h("small", { class: "muted device-seen", title: longDate(device.last_seen_at) }, `${t("devices.last_seen")} `, h("time", { datetime: device.last_seen_at, text: relativeTime(device.last_seen_at) }))),
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
