// Me → Your data: download a copy of one's data (an export built in the background, announced by
// `export:ready`) and delete one's account (with the password, or after a fresh GitHub sign-in on
// the account page). Everything shown comes from the server as text.
import { api, csrfToken, goToSignIn } from "../api.js";
import { confirmSheet, fileSize, h, longDate, sheet, toast } from "../dom.js";
import { clearDrafts } from "../drafts.js";
import { t } from "../i18n.js";
import { socket } from "../socket.js";
import { state } from "../store.js";
import { backBar } from "./common.js";

function exportLine(item) {
  const when = h("small", { class: "muted", text: longDate(item.created_at) });
  let status;
  if (item.url) {
    status = h("a", { class: "btn small export-download", href: item.url, download: "", text: `${t("data.download")} (${fileSize(item.size || 0)})` });
  } else {
    status = h("span", { class: "tag", text: t(`data.state_${item.expired ? "expired" : item.state}`) });
  }
  const until = item.url ? h("small", { class: "muted", text: t("data.until", { time: longDate(item.expires_at) }) }) : null;
  return h("li", { class: `export export-${item.state}` }, h("span", { class: "person-main" }, when, until), status);
}

export function myDataView() {
  const list = h("ul", { class: "list exports" });
  const askButton = h("button", { type: "button", class: "btn primary ask-export", text: t("data.ask"), onclick: ask });

  async function load() {
    const { exports } = await api("/auth/me/exports");
    list.replaceChildren(...exports.map(exportLine));
    askButton.disabled = exports.some((item) => item.state === "pending");
  }

  async function ask() {
    askButton.disabled = true;
    try {
      await api("/auth/me/exports", { method: "POST" });
      toast(t("data.preparing"));
    } catch (error) {
      toast(error.message || t("error.network"));
    }
    load().catch(() => {});
  }

  const onReady = () => {
    toast(t("data.ready"));
    load().catch(() => {});
  };
  socket.on("export:ready", onReady);
  load().catch((error) => toast(error.message));

  const el = h(
    "section",
    { class: "pane my-data" },
    backBar(t("data.title"), "#/me"),
    h("div", { class: "stack pad" }, h("h3", { text: t("data.export_title") }), h("p", { class: "muted", text: t("data.export_help") }), askButton, list),
    h("div", { class: "stack pad danger-zone" }, h("h3", { text: t("data.delete_title") }), h("p", { class: "muted", text: t("data.delete_help") }), deleteControls()),
  );
  return { el, destroy: () => socket.off("export:ready", onReady) };
}

function deleteControls() {
  const me = state.me;
  if (me.is_admin) return h("p", { class: "muted", text: t("data.delete_admin") });
  if (me.has_password) return h("button", { type: "button", class: "btn danger delete-account", text: t("data.delete"), onclick: deleteWithPassword });
  // Neither a password nor GitHub (an account the organisation's backend made): it deletes it.
  if (!me.has_github) return h("p", { class: "muted cannot-delete", text: t("data.cannot_delete_here") });
  // GitHub-only accounts confirm with a fresh GitHub sign-in, started from the account page's form.
  return h(
    "form",
    { method: "post", action: "/account/confirm/github" },
    h("input", { type: "hidden", name: "csrf_token", value: csrfToken() }),
    h("button", { type: "submit", class: "btn danger", text: t("data.confirm_github") }),
  );
}

async function deleteWithPassword() {
  if (!(await confirmSheet(t("data.delete"), t("data.delete_confirm"), t("data.continue"), true))) return;
  const deleted = await sheet(t("data.delete"), (body, close) => {
    const password = h("input", { class: "input", type: "password", name: "password", autocomplete: "current-password", maxlength: 128, "aria-describedby": "error-delete-password" });
    const error = h("span", { class: "field-error", id: "error-delete-password", role: "alert" });
    const submit = h("button", { type: "submit", class: "btn danger", text: t("data.delete_now") });
    const form = h("form", { class: "stack", onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        await api("/auth/me/delete", { method: "POST", body: { password: password.value } });
        close(true);
      } catch (failure) {
        error.textContent = failure.fields?.password || failure.message || t("error.network");
        submit.disabled = false;
      }
    } }, h("label", { class: "field" }, h("span", { text: t("data.password") }), password, error), submit);
    body.append(form);
  });
  if (!deleted) return;
  clearDrafts();
  goToSignIn();
}
