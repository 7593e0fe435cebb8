const BUILD = { version: "dev", precache: [] }; // the server's /sw.js puts the real build here
// Parley's service worker (served at /sw.js, scope "/"): keeps the app shell for offline use and
// shows Web Push notifications. docs/ARCHITECTURE.md, "The installable app", says what it caches.
//
// - The client's static files (styles, modules, the socket.io library, icons) are precached in a
//   cache named after the build; a new build fills a new cache and deletes the old ones.
// - The shell page "/" (per user: it carries the user and a CSRF token) and the first page of the
//   conversation list are network-first, their last good answers kept in a data cache for offline
//   starts. Signing out (or landing on the sign-in page) drops that cache.
// - Everything else (the API, sockets, media, other pages) goes to the network untouched.

const STATIC_CACHE = `parley-static-${BUILD.version}`;
const DATA_CACHE = "parley-data-v1";
const PRECACHED = new Set(BUILD.precache);
const SHELL = "/";
// The conversation list's first page, kept under its path whatever its query (limit).
const LIST = "/api/v1/conversations";
const SIGNED_OUT_PAGES = new Set(["/login", "/register"]);
const ICON = "/static/icons/icon-192.png";
const BADGE = "/static/icons/badge-96.png";

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(STATIC_CACHE);
      await cache.addAll(BUILD.precache.map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const keep = new Set([STATIC_CACHE, DATA_CACHE]);
      for (const name of await caches.keys()) {
        if (name.startsWith("parley-") && !keep.has(name)) await caches.delete(name);
      }
      // The page that registered this worker loaded before it: keep its shell and list now, so
      // Parley opens offline even if it is never reloaded while online.
      await Promise.all([SHELL, LIST].map((url) => networkFirst(new Request(url, { credentials: "same-origin" }), url).catch(() => null)));
      await self.clients.claim();
    })(),
  );
});

/** The network's answer, kept for offline use when it is a good one; else the kept copy. */
async function networkFirst(request, key = request) {
  const cache = await caches.open(DATA_CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic" && !response.redirected) {
      await cache.put(key, response.clone());
    }
    return response;
  } catch (error) {
    const kept = await cache.match(key, { ignoreVary: true });
    if (kept) return kept;
    throw error;
  }
}

/** The sign-in or register page itself (not a redirect back to the app): nobody is signed in
 * on this browser any more, so the kept shell and list go. */
async function signedOutPage(request) {
  const response = await fetch(request);
  if (response.type !== "opaqueredirect") await caches.delete(DATA_CACHE);
  return response;
}

async function cacheFirst(request) {
  const kept = await caches.match(request, { cacheName: STATIC_CACHE });
  return kept || fetch(request);
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    if (request.method === "POST" && url.pathname === "/logout") event.waitUntil(caches.delete(DATA_CACHE));
    return;
  }
  if (request.mode === "navigate") {
    if (url.pathname === SHELL) event.respondWith(networkFirst(request, SHELL));
    else if (SIGNED_OUT_PAGES.has(url.pathname)) event.respondWith(signedOutPage(request));
    return;
  }
  // Only the list's first page is kept (later pages have cursors that go stale).
  if (url.pathname === LIST && !url.searchParams.has("cursor")) event.respondWith(networkFirst(request, LIST));
  else if (PRECACHED.has(url.pathname)) event.respondWith(cacheFirst(request));
});

/** Is a Parley window in front of the user? Then the page shows the message itself. */
async function aWindowIsFocused() {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return windows.some((client) => client.focused && client.visibilityState === "visible");
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data.text() };
  }
  event.waitUntil(
    (async () => {
      if (await aWindowIsFocused()) return;
      const conversation = data.conversation_id ?? null;
      // One notification per conversation: a newer push replaces it and alerts again.
      const tag = data.tag || (conversation !== null ? `conversation-${conversation}` : "parley");
      await self.registration.showNotification(data.title || "Parley", {
        body: data.body || "",
        tag,
        renotify: true,
        icon: ICON,
        badge: BADGE,
        timestamp: Date.now(),
        data: { url: data.url || (conversation !== null ? `/#/chat/${conversation}` : "/"), conversation_id: conversation },
      });
    })(),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  // Pushes carry a url; the page's own notifications (notify.js) carry the conversation.
  const data = event.notification.data || {};
  const link = data.url || (data.conversation_id != null ? `/#/chat/${data.conversation_id}` : "/");
  const url = new URL(link, self.location.origin);
  if (url.origin !== self.location.origin) return;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const target = windows.find((client) => new URL(client.url).pathname === url.pathname) || windows[0];
      if (!target) {
        await self.clients.openWindow(url.href);
        return;
      }
      await target.focus();
      if (new URL(target.url).pathname === url.pathname) {
        // The app is open: pwa.js follows the link in place (a hash route, no reload).
        target.postMessage({ type: "parley:open", url: url.href });
      } else {
        // Another Parley page (the account page): load the app there, or in a new window.
        await target.navigate(url.href).catch(() => self.clients.openWindow(url.href));
      }
    })(),
  );
});

// The push service replaced this browser's subscription: register the new one with Parley.
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(
    (async () => {
      const subscription =
        event.newSubscription ||
        (await self.registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: event.oldSubscription?.options?.applicationServerKey,
        }));
      const { endpoint, keys } = subscription.toJSON();
      await fetch("/api/v1/push/subscriptions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ endpoint, keys }),
      });
    })(),
  );
});
