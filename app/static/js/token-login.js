// /login/token#<token> (or #jwt=<jwt>): exchange what a company's app handed over for a device
// session, then open the chat. The token arrives in the URL fragment, which the browser never
// sends to a server; it is removed from the address bar (and history) before anything else.
//
// Nothing is exchanged without a click, and the page says who is signed in now and who the link
// signed in: a link someone else made (login CSRF) must not silently swap the browser's session
// for an account of theirs.

const MESSAGES = {
  token_invalid: "This sign-in link is invalid, has expired or was used already.",
  token_replayed: "This sign-in link was used already.",
  account_banned: "This account is banned.",
  protected_account: "This account cannot be signed in with a link.",
  rate_limited: "Too many sign-in attempts; wait a moment and try again.",
  not_found: "This account does not exist.",
};

const $ = (id) => document.getElementById(id);

function readFragment() {
  const fragment = decodeURIComponent(window.location.hash.replace(/^#/, ""));
  history.replaceState(null, "", window.location.pathname);
  if (fragment.startsWith("jwt=")) return { jwt: fragment.slice(4) };
  if (fragment.startsWith("token=")) return { token: fragment.slice(6) };
  return fragment ? { token: fragment } : null;
}

function fail(text) {
  $("token-title").textContent = "Could not sign in";
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

async function currentUser() {
  try {
    const response = await fetch("/api/v1/auth/me", {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    return response.ok ? (await response.json()).user : null;
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
    fail("The server cannot be reached; try again.");
    return;
  }
  if (response.ok) {
    const { user } = await response.json();
    $("token-title").textContent = "Signed in";
    $("token-status").textContent = `You are now signed in as ${describe(user)}.`;
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
  fail(MESSAGES[code] || MESSAGES.token_invalid);
}

async function start() {
  const body = readFragment();
  if (!body) {
    fail(MESSAGES.token_invalid);
    return;
  }
  const current = await currentUser();
  const button = $("token-confirm");
  $("token-status").textContent = "An app sent you here with a sign-in link. Continue only if you opened it yourself.";
  if (current) {
    $("token-current").textContent = `You are signed in as ${describe(current)}; continue with the link's account instead?`;
    $("token-current").hidden = false;
    button.textContent = "Continue with the link's account";
  }
  $("token-ask").hidden = false;
  button.addEventListener("click", () => exchange(body), { once: true });
}

// Another link opened while this page is showing changes only the fragment: start over.
window.addEventListener("hashchange", () => window.location.reload());
start();
