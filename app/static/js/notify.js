// In-page notifications while Parley is open. A new message from someone else, when the tab is
// hidden or another chat is open, shows a system notification (one per conversation: a newer one
// replaces it) and plays a short tone; muted chats stay silent unless the message mentions me.
// The unread total is drawn on the favicon (the tab title carries it too, see app.js). Permission
// is asked only from a visible prompt (the banner on the chat list), never on page load. The
// switches are per device (localStorage); whether previews show text is the account's setting.
import { api } from "./api.js";
import { batched, h } from "./dom.js";
import { t } from "./i18n.js";
import { mentionsMe } from "./mentioned.js";
import { conversationName, displayName, emit, on, state, totalUnread } from "./store.js";
import { preview } from "./views/message.js";

const KEYS = { notify: "parley.notify", sound: "parley.sound", prompt: "parley.notify_prompt" };
const SUMMARY_WAIT_MS = 3000;

/** A per-device switch ("notify" or "sound"); both are on until turned off. */
export function setting(name) {
  return localStorage.getItem(KEYS[name]) !== "off";
}

export function setSetting(name, value) {
  localStorage.setItem(KEYS[name], value ? "on" : "off");
  emit("notify-settings");
}

/** "granted", "denied", "default" or "unsupported" (no Notification API, or not a secure page). */
export function permission() {
  return "Notification" in window ? Notification.permission : "unsupported";
}

/** The service worker's push code, when this build has it (loaded on demand, never required). */
export function pwa() {
  return import("./pwa.js").catch(() => null);
}

/** Ask the browser for permission (from a click); on "granted" notifications and push go on. */
export async function askPermission() {
  if (permission() === "unsupported") return "unsupported";
  localStorage.setItem(KEYS.prompt, "done");
  let result;
  try {
    result = await Notification.requestPermission();
  } catch {
    result = permission();
  }
  emit("notify-settings");
  if (result === "granted") {
    setSetting("notify", true);
    const push = await pwa();
    if (push?.pushSupported?.()) {
      try {
        await push.enablePush();
      } catch {
        // Push is a nicety on top; the Me page shows its state and can try again.
      }
      emit("notify-settings");
    }
  }
  return result;
}

function wantsPrompt() {
  return permission() === "default" && localStorage.getItem(KEYS.prompt) !== "done";
}

/** "Turn on notifications?" with Enable / Not now, shown until answered on this device. */
export function permissionBanner() {
  const el = h(
    "div",
    { class: "notify-banner", role: "region", "aria-label": t("notify.ask") },
    h("span", { class: "notify-banner-text", text: t("notify.ask") }),
    h(
      "span",
      { class: "row-btns" },
      h("button", { type: "button", class: "btn small notify-later", text: t("notify.not_now"), onclick: () => {
        localStorage.setItem(KEYS.prompt, "done");
        emit("notify-settings");
      } }),
      h("button", { type: "button", class: "btn small primary notify-enable", text: t("notify.enable"), onclick: () => askPermission() }),
    ),
  );
  const draw = () => {
    el.hidden = !wantsPrompt();
  };
  draw();
  return { el, destroy: on("notify-settings", draw) };
}

// The chat open in this tab (#/chat/<id> or #/chat/<id>/<seq>), or null.
function openConversation() {
  const match = window.location.hash.match(/^#\/chat\/(\d+)(?:\/\d+)?$/);
  return match ? Number(match[1]) : null;
}

/** The conversation's summary; a message of a chat new to this tab waits for it briefly. */
function summaryOf(conversationId) {
  const known = state.conversations.get(conversationId);
  if (known) return Promise.resolve(known);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(null);
    }, SUMMARY_WAIT_MS);
    const off = on(`conversation:${conversationId}`, () => {
      clearTimeout(timer);
      off();
      resolve(state.conversations.get(conversationId) || null);
    });
  });
}

async function incoming(message) {
  if (!message || message.type === "system" || message.recalled || !message.sender || message.sender.id === state.me.id) return;
  const id = message.conversation_id;
  if (!document.hidden && openConversation() === id) return;
  const summary = await summaryOf(id);
  if (summary?.muted && !mentionsMe(message)) return;
  if (setting("sound")) chime();
  if (setting("notify") && permission() === "granted") show(message, summary);
}

/** The app's icon for notifications: the manifest-sized one when the page names it. */
function appIcon() {
  const touch = document.querySelector('link[rel="apple-touch-icon"]')?.href;
  return touch || original.find((item) => !item.href.startsWith("data:"))?.href || undefined;
}

// conversation id -> the notification shown for it (one per conversation: they share a tag).
const showing = new Map();

/** A recalled message's notification goes away (its text must not stay on the screen). */
function recalled(message) {
  const id = message.conversation_id;
  const mine = showing.get(id);
  if (mine && mine.seq === message.seq) {
    mine.note.close();
    showing.delete(id);
  }
  navigator.serviceWorker?.getRegistration("/").then((registration) =>
    registration?.getNotifications({ tag: `conversation-${id}` }).then((notes) => {
      for (const note of notes) if (note.data?.seq === message.seq) note.close();
    }),
  ).catch(() => {});
}

function show(message, summary) {
  const id = message.conversation_id;
  const isGroup = summary ? summary.kind === "group" : false;
  // Private previews hide who wrote too, as a push does: "Parley", "New message".
  const previews = state.me.notification_previews !== false;
  const title = !previews ? "Parley" : isGroup || summary?.kind === "notice" ? conversationName(summary) : displayName(message.sender);
  const body = previews ? preview(message, isGroup, state.me.id) : t("notify.new_message");
  const options = { body, tag: `conversation-${id}`, renotify: true, icon: appIcon(), data: { conversation_id: id, seq: message.seq } };
  const open = () => {
    window.focus();
    window.location.hash = `#/chat/${id}`;
  };
  try {
    const note = new Notification(title, options);
    showing.set(id, { note, seq: message.seq });
    note.onclick = () => {
      open();
      note.close();
    };
  } catch {
    // Some browsers (Android's) show notifications only through the service worker; its click
    // handler opens the chat.
    navigator.serviceWorker?.ready.then((registration) => registration.showNotification(title, options)).catch(() => {});
  }
}

// A short two-note chime made with WebAudio (no sound file). Browsers start audio only after a
// user gesture, so the context is made (or resumed) on the first click or key press.
let audio = null;

function audioContext() {
  if (!audio) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      audio = new Context();
    } catch {
      return null;
    }
  }
  if (audio.state === "suspended") audio.resume().catch(() => {});
  return audio;
}

export function chime() {
  const context = audioContext();
  if (!context) return;
  const now = context.currentTime;
  const tone = context.createOscillator();
  const gain = context.createGain();
  tone.type = "sine";
  tone.frequency.setValueAtTime(880, now);
  tone.frequency.setValueAtTime(1320, now + 0.09);
  gain.gain.setValueAtTime(0.0001, now);
  gain.gain.exponentialRampToValueAtTime(0.18, now + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.3);
  tone.connect(gain);
  gain.connect(context.destination);
  tone.start(now);
  tone.stop(now + 0.32);
}

// The favicon with the unread total: the page's icon drawn on a canvas with a red badge.
let original = [];
let baseImage = null;
let shown = 0;

function drawIcon(count) {
  const size = 64;
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext("2d");
  if (!g) return null;
  if (baseImage?.complete && baseImage.naturalWidth) {
    g.drawImage(baseImage, 0, 0, size, size);
  } else {
    g.fillStyle = "#07c160";
    g.fillRect(0, 0, size, size);
    g.fillStyle = "#fff";
    g.beginPath();
    g.moveTo(14, 16);
    g.lineTo(50, 16);
    g.lineTo(50, 42);
    g.lineTo(26, 42);
    g.lineTo(14, 52);
    g.closePath();
    g.fill();
  }
  g.fillStyle = "#fa5151";
  g.beginPath();
  g.arc(size - 20, 20, 20, 0, Math.PI * 2);
  g.fill();
  g.fillStyle = "#fff";
  g.font = "bold 28px sans-serif";
  g.textAlign = "center";
  g.textBaseline = "middle";
  g.fillText(count > 9 ? "9+" : String(count), size - 20, 21);
  return canvas.toDataURL("image/png");
}

function drawFavicon(force = false) {
  const count = totalUnread();
  if (count === shown && !force) return;
  shown = count;
  let links = [...document.querySelectorAll('link[rel~="icon"]')];
  if (!links.length) {
    links = [h("link", { rel: "icon", href: "data:," })];
    document.head.append(links[0]);
    original = [{ link: links[0], href: "data:," }];
  }
  const url = count ? drawIcon(count) : null;
  for (const item of original) item.link.href = url || item.href;
}

/** Wire everything up once the state is loaded (app.js). */
export function startNotify() {
  original = [...document.querySelectorAll('link[rel~="icon"]')].map((link) => ({ link, href: link.getAttribute("href") || "" }));
  const base = original.find((item) => item.href && !item.href.startsWith("data:"));
  if (base) {
    baseImage = new Image();
    baseImage.addEventListener("load", () => drawFavicon(true));
    baseImage.src = base.link.href;
  }
  const unlock = () => {
    if (setting("sound")) audioContext();
  };
  document.addEventListener("pointerdown", unlock, { capture: true, passive: true });
  document.addEventListener("keydown", unlock, { capture: true, passive: true });
  on("recalled", (message) => recalled(message));
  on("incoming", (message) => {
    incoming(message).catch(() => {});
  });
  on("conversations", batched(() => drawFavicon()));
  drawFavicon(true);
}

/** This device's push subscriptions of mine: [{...}] as GET /push/subscriptions lists them. */
export async function pushDevices() {
  const data = await api("/push/subscriptions");
  return data?.subscriptions || [];
}
