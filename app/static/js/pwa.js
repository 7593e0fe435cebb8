// The installable app, page side: registers the service worker (/sw.js), shows the offline banner,
// follows notification clicks, and turns Web Push on and off for this device (the Me page's
// settings call pushSupported / pushState / enablePush / disablePush).
import { api } from "./api.js";
import { onLocale, t } from "./i18n.js";
import { on, state } from "./store.js";

// A socket that drops for less than this (a server restart, a network switch) reconnects before
// anyone needs to be told.
const OFFLINE_GRACE_MS = 3000;
let registering = null;

/** Register the service worker once; resolves with its registration (null where unsupported). */
export function registerWorker() {
  if (!("serviceWorker" in navigator)) return Promise.resolve(null);
  if (!registering) {
    navigator.serviceWorker.addEventListener("message", (event) => {
      if (event.data?.type === "parley:open") follow(event.data.url);
    });
    registering = navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => null);
  }
  return registering;
}

/** Go where a clicked notification points: a hash route in place, another page by loading it. */
function follow(href) {
  const url = new URL(href, window.location.href);
  if (url.origin !== window.location.origin) return;
  if (url.pathname !== window.location.pathname) window.location.assign(url.href);
  else if (url.hash && url.hash !== window.location.hash) window.location.hash = url.hash;
}

/**
 * The "Offline — reconnecting…" banner: shown at once while the browser is offline, and when the
 * socket has been disconnected for a few seconds.
 */
export function mountConnectionBanner(banner) {
  let timer = null;
  const show = (visible) => {
    banner.textContent = t("conn.lost");
    banner.hidden = !visible;
  };
  const update = () => {
    clearTimeout(timer);
    if (!navigator.onLine) show(true);
    else if (state.connected) show(false);
    else timer = setTimeout(() => show(!state.connected), OFFLINE_GRACE_MS);
  };
  on("connection", update);
  window.addEventListener("online", update);
  window.addEventListener("offline", update);
  onLocale(() => {
    banner.textContent = t("conn.lost");
  });
  update();
}

export function pushSupported() {
  return window.isSecureContext && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

async function activeRegistration() {
  await registerWorker();
  return navigator.serviceWorker.ready;
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration("/");
  return (await registration?.pushManager.getSubscription()) || null;
}

/** This device's push state: "on" | "off" | "denied" | "unsupported". */
export async function pushState() {
  if (!pushSupported()) return "unsupported";
  if (Notification.permission === "denied") return "denied";
  if (Notification.permission !== "granted") return "off";
  return (await currentSubscription()) ? "on" : "off";
}

function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const held = new Uint8Array(buffer);
  return held.length === bytes.length && held.every((value, index) => value === bytes[index]);
}

/** A browser whose push service cannot be reached may never settle a subscribe: give up. */
function withTimeout(promise, ms) {
  let timer;
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new DOMException("The push service did not answer.", "TimeoutError")), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Ask for permission (call it from a click), subscribe this browser with the server's VAPID key
 * and register the subscription with Parley. Resolves with the new state; rejects with an
 * ApiError or the browser's DOMException (AbortError or NotAllowedError when the browser has no
 * push service or refuses one, as in private windows; TimeoutError when it does not answer).
 */
export async function enablePush({ timeoutMs = 20000 } = {}) {
  if (!pushSupported()) return "unsupported";
  const permission = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
  if (permission !== "granted") return permission === "denied" ? "denied" : "off";
  const registration = await activeRegistration();
  const { public_key: publicKey } = await api("/push/key");
  const key = keyBytes(publicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
    // Made with another server key (the keys were replaced): it can no longer be used.
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ||= await withTimeout(registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }), timeoutMs);
  const { endpoint, keys } = subscription.toJSON();
  await api("/push/subscriptions", { method: "POST", body: { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } } });
  return "on";
}

/**
 * On each start, a push subscription this browser holds is registered again for this device:
 * Parley forgets it when the device signs out (then in again), its session expires, or the push
 * service failed too often — without this the browser would think push is on and get nothing.
 */
export async function resyncPush() {
  if (!pushSupported() || Notification.permission !== "granted") return;
  try {
    const subscription = await currentSubscription();
    if (!subscription) return;
    const { endpoint, keys } = subscription.toJSON();
    await api("/push/subscriptions", { method: "POST", body: { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } } });
  } catch {
    // Offline or refused: the next start tries again.
  }
}

/** Unsubscribe this browser and remove this device's subscription from Parley. */
export async function disablePush() {
  if (!pushSupported()) return "unsupported";
  const subscription = await currentSubscription();
  await subscription?.unsubscribe();
  await api("/push/subscriptions", { method: "DELETE" });
  return pushState();
}
