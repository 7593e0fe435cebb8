// /login/token#<token> (or #jwt=<jwt>): exchange what a company's app handed over for a device
// session, then open the chat. The token arrives in the URL fragment, which the browser never
// sends to a server; it is removed from the address bar (and history) before anything else.
//
// Nothing is exchanged without a click, and the page says who is signed in now and who the link
// signed in: a link someone else made (login CSRF) must not silently swap the browser's session
// for an account of theirs.

// In the reader's language, as the rest of the client (app/static/js/i18n.js: the language picked
// on this browser, else the browser's); once signed in, the account's own choice, if it made one.

import { LOCALES, locale, setLocale, t, translatePage } from "./i18n.js";

const MESSAGES = {
  token_invalid: "token.invalid",
  token_replayed: "token.replayed",
  account_banned: "token.banned",
  protected_account: "token.protected",
  rate_limited: "token.rate_limited",
  not_found: "token.not_found",
};

const $ = (id) => document.getElementById(id);

function readFragment() {
  const raw = window.location.hash.replace(/^#/, "");
  history.replaceState(null, "", window.location.pathname);
  let fragment;
  try {
    fragment = decodeURIComponent(raw);
  } catch {
    return null; // a malformed link (#abc%): said to be invalid, as an unknown token is
  }
  if (fragment.startsWith("jwt=")) return { jwt: fragment.slice(4) };
  if (fragment.startsWith("token=")) return { token: fragment.slice(6) };
  return fragment ? { token: fragment } : null;
}

function fail(text) {
  $("token-title").textContent = t("token.failed_title");
  $("token-status").hidden = true;
  $("token-current").hidden = true;
  $("token-ask").hidden = true;
  const box = $("token-error");
  box.textContent = text;
  box.hidden = false;
}

function describe(user) {
  return `${user.nickname} (@${user.username})`;
}

// The account this browser is signed in to now, as the server rendered the page (or null).
function currentUser() {
  try {
    return JSON.parse($("token-signed-in").textContent);
  } catch {
    return null;
  }
}

async function exchange(body) {
  $("token-confirm").disabled = true;
  let response;
  try {
    response = await fetch("/api/v1/auth/token", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    fail(t("token.unreachable"));
    return;
  }
  if (response.ok) {
    const { user } = await response.json();
    if (LOCALES.includes(user.locale) && user.locale !== locale()) {
      setLocale(user.locale); // kept on this browser: the chat opens in it too
      document.title = t("token.page_title");
    }
    $("token-title").textContent = t("token.done_title");
    $("token-status").textContent = t("token.done", { name: describe(user) });
    $("token-current").hidden = true;
    $("token-ask").hidden = true;
    $("token-done").hidden = false;
    $("token-open").focus();
    return;
  }
  let code = "";
  try {
    code = (await response.json())?.error?.code || "";
  } catch {
    code = "";
  }
  fail(t(MESSAGES[code] || MESSAGES.token_invalid));
}

async function start() {
  const body = readFragment();
  if (!body) {
    fail(t(MESSAGES.token_invalid));
    return;
  }
  const current = currentUser();
  const button = $("token-confirm");
  $("token-status").textContent = t("token.ask");
  if (current) {
    $("token-current").textContent = t("token.current", { name: describe(current) });
    $("token-current").hidden = false;
    button.textContent = t("token.switch");
  }
  $("token-ask").hidden = false;
  button.addEventListener("click", () => exchange(body), { once: true });
}

// Another link opened while this page is showing changes only the fragment: start over.
window.addEventListener("hashchange", () => window.location.reload());
translatePage();
document.title = t("token.page_title");
start();
