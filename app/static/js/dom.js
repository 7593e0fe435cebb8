// DOM helpers. Everything a user typed reaches the page through textContent or attributes set
// here, never through innerHTML.
import { t, locale } from "./i18n.js";
import { openLayer } from "./layers.js";

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const ICONS = {
  chats: "M4 5h16v11H8l-4 4z",
  contacts: "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 9c0-4 3-6 7-6s7 2 7 6M17 4a4 4 0 0 1 0 7m2 3c2 1 3 3 3 6",
  me: "M12 12a5 5 0 1 0 0-10 5 5 0 0 0 0 10zm-8 10c0-5 4-8 8-8s8 3 8 8",
  back: "M15 4l-8 8 8 8",
  more: "M5 12h.01M12 12h.01M19 12h.01",
  plus: "M12 5v14M5 12h14",
  smile: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM8 14s1.5 2 4 2 4-2 4-2M9 9h.01M15 9h.01",
  send: "M4 12l16-8-6 16-3-7z",
  image: "M4 5h16v14H4zM4 16l5-5 4 4 3-3 4 4M15 9h.01",
  video: "M3 6h12v12H3zM15 10l6-3v10l-6-3",
  file: "M6 2h8l5 5v15H6zM14 2v5h5",
  location: "M12 22s7-7 7-12a7 7 0 0 0-14 0c0 5 7 12 7 12zm0-9a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  search: "M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM21 21l-5-5",
  group: "M8 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm8 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM2 20c0-3 3-5 6-5s6 2 6 5m0-5c1-.6 1.5-1 2-1 3 0 6 2 6 5",
  addUser: "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 9c0-4 3-6 7-6 2 0 3 .5 4 1M19 14v6M16 17h6",
  bell: "M6 16V11a6 6 0 0 1 12 0v5l2 2H4zM10 21h4",
  mute: "M6 16V11a6 6 0 0 1 9-5M18 11v5l2 2H8M10 21h4M3 3l18 18",
  devices: "M3 5h14v10H3zM7 19h6M19 9h2v10h-4",
  settings: "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19 12l2-1-1-3-2 .5-1.5-1.5.5-2-3-1-1 2h-2l-1-2-3 1 .5 2L6 9.5 4 9l-1 3 2 1v2l-2 1 1 3 2-.5L7.5 20 7 22l3 1 1-2h2l1 2 3-1-.5-2 1.5-1.5 2 .5 1-3-2-1z",
  key: "M15 7a4 4 0 1 1-3.9 5H3v3h3v3h3v-3h2.1A4 4 0 0 1 15 7z",
  logout: "M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10",
  close: "M6 6l12 12M18 6L6 18",
  check: "M5 12l5 5 9-10",
  alert: "M12 8v5M12 16h.01M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z",
  pin: "M9 3h6l-1 6 4 3H6l4-3zM12 12v9",
  mic: "M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M9 21h6",
};

export function icon(name, cls = "icon") {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** Only same-site paths and http(s) URLs become src or href. */
export function safeUrl(value) {
  if (typeof value !== "string" || !value) return null;
  if (value.startsWith("/") && !value.startsWith("//")) return value;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

// White initials stay readable (WCAG AA) on each.
const PALETTE = ["#06773a", "#1170d0", "#c2410c", "#7232dd", "#c81e3a", "#00777a", "#8a6d00", "#576b95"];

export function avatar(name, url, { online = null, size = "" } = {}) {
  const wrap = h("span", { class: `avatar ${size}` });
  const initials = () => {
    const text = (name || "?").trim();
    let hash = 0;
    for (const ch of text) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    wrap.style.background = PALETTE[hash % PALETTE.length];
    return h("span", { class: "initial", text: Array.from(text)[0]?.toUpperCase() || "?" });
  };
  const src = safeUrl(url);
  if (src) {
    // A picture that does not load (gone, refused, not an image) shows the initials instead.
    const img = h("img", { src, alt: "", loading: "lazy", referrerpolicy: "no-referrer" });
    img.addEventListener("error", () => img.replaceWith(initials()), { once: true });
    wrap.append(img);
  } else {
    wrap.append(initials());
  }
  if (online !== null) wrap.append(h("span", { class: `dot ${online ? "on" : "off"}`, title: online ? t("online") : t("offline") }));
  return wrap;
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

export function clock(iso) {
  return new Date(iso).toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit" });
}

/** "10:42", "Yesterday", "Tue" or a date, as chat lists show times. */
export function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (sameDay(d, now)) return clock(iso);
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, yesterday)) return t("yesterday");
  if (now - d < 6 * 86400000) return d.toLocaleDateString(locale(), { weekday: "short" });
  return d.toLocaleDateString(locale(), { year: "2-digit", month: "numeric", day: "numeric" });
}

/** "5 minutes ago" / "5分钟前" (for a time in the past); longDate() is the full date for a title. */
export function relativeTime(iso, now = Date.now()) {
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return t("time.just_now");
  const format = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
  for (const [unit, size] of [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]]) {
    if (seconds >= size) return format.format(-Math.floor(seconds / size), unit);
  }
  return format.format(-1, "minute");
}

export function longDate(iso) {
  return new Date(iso).toLocaleString(locale(), { dateStyle: "long", timeStyle: "short" });
}

export function dayLabel(iso) {
  const d = new Date(iso);
  const now = new Date();
  if (sameDay(d, now)) return t("today");
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(d, yesterday)) return t("yesterday");
  const opts = { month: "long", day: "numeric", weekday: "short" };
  if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString(locale(), opts);
}

export function fileSize(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 && unit ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

let toastTimer = null;

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 3000);
}

/** A modal sheet; resolves with the value passed to close(), or null when dismissed. */
export function sheet(title, build) {
  return new Promise((resolve) => {
    const backdrop = h("div", { class: "sheet-backdrop" });
    // Esc closes the sheet (or what opened on top of it) and gives the focus back to its opener.
    const done = openLayer(backdrop, { close: () => close() });
    const close = (value = null) => {
      backdrop.remove();
      done();
      resolve(value);
    };
    const body = h("div", { class: "sheet-body" });
    const panel = h(
      "div",
      { class: "sheet", role: "dialog", "aria-modal": "true" },
      h("header", { class: "sheet-head" }, h("h2", { text: title }), h("button", { class: "icon-btn", "aria-label": t("close"), onclick: () => close() }, icon("close"))),
      body,
    );
    backdrop.addEventListener("click", (event) => {
      if (event.target === backdrop) close();
    });
    backdrop.append(panel);
    document.body.append(backdrop);
    build(body, close);
    body.querySelector("input, textarea, select")?.focus();
  });
}

/** Ask for one line of text (a remark, a request message, a reason). */
export function prompt(title, { value = "", placeholder = "", max = 200, okLabel = t("ok") } = {}) {
  return sheet(title, (body, close) => {
    const input = h("input", { class: "input", value, placeholder, maxlength: max });
    const form = h("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); close(input.value); } }, input, h("button", { class: "btn primary", type: "submit", text: okLabel }));
    body.append(form);
  });
}

export function confirmSheet(title, message, okLabel, danger = false) {
  return sheet(title, (body, close) => {
    body.append(
      h("p", { class: "muted", text: message }),
      h("div", { class: "row-btns" }, h("button", { class: "btn", text: t("cancel"), onclick: () => close(false) }), h("button", { class: `btn ${danger ? "danger" : "primary"}`, text: okLabel, onclick: () => close(true) })),
    );
  }).then((value) => value === true);
}

/** Run fn once after the current burst of synchronous updates. */
export function batched(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      fn();
    });
  };
}
