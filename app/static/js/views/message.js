// One message as DOM: bubbles by body type, system lines, media rendered defensively; the quote,
// "edited", "Forwarded", reactions, chat-history cards, and the triggers of the message menu.
import { avatar, clock, fileSize, h, icon, safeUrl, sheet } from "../dom.js";
import { t } from "../i18n.js";
import { displayName, state } from "../store.js";
import { react, reeditable, showEditHistory, showReactors } from "./actions.js";
import { followLocalPhoto, localUrl } from "./localmedia.js";
import { isMenuKey } from "../keys.js";
import { openLayer } from "../layers.js";
import { notePoint } from "./menu.js";
import { voiceBubble, voiceLine } from "./voice.js";

const LONG_PRESS_MS = 500;
const SHOWN_REACTIONS = 6;
const MERGED_LINES = 3;

/**
 * Where an upload's file and thumbnail are, whichever shape the body carries them in. A body
 * without a URL (a send not stored yet) has none: nothing guesses one.
 */
function media(body) {
  const upload = body.upload && typeof body.upload === "object" ? body.upload : body;
  const full = safeUrl(upload.url || upload.download_url || body.url);
  const thumb = safeUrl(upload.thumb || upload.thumb_url || body.thumb || body.thumb_url) || full;
  return {
    full,
    thumb,
    name: upload.name || upload.filename || body.name || t("msg.file"),
    size: upload.size ?? body.size,
    width: upload.w ?? body.w,
    height: upload.h ?? body.h,
  };
}

/**
 * Reserve a photo's or video's box from its known size before anything loads (CSS aspect-ratio and
 * the bubble's limits, in app.css `.sized`), so the history does not move when it arrives.
 */
function reserve(el, width, height) {
  const w = Number(width);
  const hgt = Number(height);
  if (!(w > 0 && hgt > 0)) return el;
  el.classList.add("sized");
  el.style.setProperty("--ratio", String(w / hgt));
  el.style.setProperty("--natural", `${w}px`);
  return el;
}

// A video of unknown size gets a 16:9 box, so it does not resize when its metadata arrives.
const VIDEO_RATIO = [16, 9];

/** A file name that keeps its ending in view: "quarterly-rep…-2026.pdf" only when it does not fit. */
function fileName(name) {
  const text = String(name);
  const dot = text.lastIndexOf(".");
  const keep = Math.min(16, Math.max(8, dot > 0 ? text.length - dot + 5 : 8));
  const cut = text.length > keep + 4 ? text.length - keep : text.length;
  return h(
    "strong",
    { class: "file-name", title: text },
    h("span", { class: "file-name-head", text: text.slice(0, cut) }),
    cut < text.length ? h("span", { class: "file-name-tail", text: text.slice(cut) }) : null,
  );
}

export function openLightbox(src) {
  const box = h("div", { class: "lightbox", role: "dialog", "aria-label": t("msg.image"), onclick: () => close() }, h("img", { src, alt: "" }));
  // Esc closes it too (../layers.js), and the focus goes back to the photo that opened it.
  const done = openLayer(box, { close: () => box.remove() });
  const close = () => {
    box.remove();
    done();
  };
  document.body.append(box);
}

export function osmLink(lat, lng) {
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=16/${lat}/${lng}`;
}

const LINK = /\bhttps?:\/\/[^\s<>"'`]+/giu;
const TRAILING = /[.,;:!?'"»。，；：！？、）】}\]]+$/u;
const MENTION = /@[^\s@]+/gu;

function plain(text, mentions) {
  if (!mentions || !text) return [text];
  const out = [];
  let last = 0;
  for (const match of text.matchAll(MENTION)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(h("span", { class: "mention", text: match[0] }));
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out;
}

/** Text with its http(s) links as anchors; every piece is a text node, never parsed markup. */
export function richText(value, { mentions = false } = {}) {
  const text = String(value ?? "");
  const out = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let url = match[0].replace(TRAILING, "");
    if (url.endsWith(")") && !url.includes("(")) url = url.slice(0, -1);
    const href = safeUrl(url);
    if (!href || !/^https?:\/\/[^/?#]/i.test(url)) continue;
    out.push(...plain(text.slice(last, match.index), mentions));
    out.push(h("a", { class: "link", href, target: "_blank", rel: "noopener noreferrer", text: url }));
    last = match.index + url.length;
  }
  out.push(...plain(text.slice(last), mentions));
  return out.filter((piece) => piece !== "");
}

/** A message body in one line: its text, or a localized label for media. */
function bodyText(body) {
  switch (body?.type) {
    case "txt":
      return body.msg ?? "";
    case "img":
      return `[${t("msg.image")}]`;
    case "video":
      return `[${t("msg.video")}]`;
    case "audio":
      return voiceLine(body.duration);
    case "file":
      return `[${t("msg.file")}] ${media(body).name}`;
    case "loc":
      return `[${t("msg.location")}] ${body.title || ""}`;
    case "merged":
      return `[${t("msg.merged")}] ${body.title || ""}`;
    default:
      return `[${t("msg.unsupported")}]`;
  }
}

/** A quote's line: the snapshot's text, or the label of its type (the snapshot has no media). */
function quoteText(reply) {
  if (reply.recalled) return t("msg.quote_recalled");
  if (reply.purged) return t("msg.quote_purged");
  switch (reply.type) {
    case "txt":
      return reply.text || "";
    case "file":
      return `[${t("msg.file")}] ${reply.text || ""}`;
    case "loc":
      return `[${t("msg.location")}] ${reply.text || ""}`;
    case "audio":
      // The snapshot may carry the length; the server's text is not in the reader's language.
      return Number(reply.duration) > 0 ? voiceLine(reply.duration) : `[${t("msg.voice")}]`;
    default:
      return bodyText({ type: reply.type, title: reply.text }).trim();
  }
}

/** A read-only sheet of the messages a chat-history card carries. */
export function openMerged(body) {
  const items = Array.isArray(body?.items) ? body.items : [];
  return sheet(body?.title || t("msg.merged"), (panel) => {
    const list = h("div", { class: "msg-list merged-list" });
    for (const item of items) {
      const message = { ...item, id: null, seq: null, conversation_id: null, edit_count: 0, reactions: [], recalled: false, reply: null };
      list.append(messageRow(message, { mine: false, showName: true, readOnly: true }));
    }
    panel.append(list);
  });
}

function mergedCard(body) {
  const items = Array.isArray(body.items) ? body.items : [];
  return h(
    "button",
    { type: "button", class: "bubble card merged", onclick: () => openMerged(body) },
    h("strong", { class: "merged-title", text: body.title || t("msg.merged") }),
    h("span", { class: "merged-lines" }, items.slice(0, MERGED_LINES).map((item) => h("span", { class: "merged-line", text: `${item.sender ? displayName(item.sender) : ""}: ${bodyText(item.body)}` }))),
    h("small", { class: "muted merged-foot", text: `${t("msg.merged")} · ${t("msg.merged_more", { n: items.length })}` }),
  );
}

function content(message, opts = {}) {
  const body = message.body;
  switch (body?.type) {
    case "txt":
      return h("div", { class: "bubble text" }, richText(body.msg, { mentions: !!(message.mentions?.length || message.mention_all) }));
    case "img": {
      const file = media(body);
      // My own photo shows the picked file until the server's copy is loaded (./localmedia.js).
      const local = localUrl(message);
      const src = local || file.thumb;
      if (!src) return h("div", { class: "bubble text muted", text: `[${t("msg.image")}]` });
      const img = reserve(h("img", { class: "thumb", src, alt: t("msg.image"), loading: local ? null : "lazy" }), file.width, file.height);
      if (local) followLocalPhoto(message, img, file.thumb);
      const open = () => openLightbox(localUrl(message) || file.full || file.thumb);
      return h("button", { type: "button", class: "bubble media", "aria-label": t("msg.open_image"), onclick: open }, img);
    }
    case "video": {
      const file = media(body);
      const local = localUrl(message);
      const src = local || file.full;
      if (!src) return h("div", { class: "bubble text muted", text: `[${t("msg.video")}]` });
      const known = file.width > 0 && file.height > 0;
      const video = h("video", { class: "video", src, controls: true, preload: "metadata", playsinline: true, poster: !local && file.thumb !== file.full ? file.thumb : null });
      reserve(video, known ? file.width : VIDEO_RATIO[0], known ? file.height : VIDEO_RATIO[1]);
      return h("div", { class: "bubble media" }, video);
    }
    case "audio":
      return voiceBubble(message, { mine: !!opts.mine, readOnly: !!opts.readOnly });
    case "file": {
      const file = media(body);
      return h(
        "div",
        { class: "bubble card file" },
        h("span", { class: "card-icon" }, icon("file")),
        h(
          "span",
          { class: "card-text" },
          fileName(file.name),
          h("span", { class: "card-sub" }, h("small", { class: "muted file-size", text: fileSize(file.size) }), file.full ? h("a", { class: "file-download", href: file.full, download: file.name, text: t("msg.download") }) : null),
        ),
      );
    }
    case "loc": {
      const lat = Number(body.lat);
      const lng = Number(body.lng);
      const valid = Number.isFinite(lat) && Number.isFinite(lng);
      return h(
        "div",
        { class: "bubble card loc" },
        h("span", { class: "card-icon" }, icon("location")),
        h("span", { class: "card-text" }, h("strong", { text: body.title || t("msg.location") }), h("small", { class: "muted coords", text: valid ? `${lat.toFixed(5)}, ${lng.toFixed(5)}` : "" })),
        valid ? h("a", { class: "btn small", href: osmLink(lat, lng), target: "_blank", rel: "noopener noreferrer", text: t("msg.map") }) : null,
      );
    }
    case "merged":
      return mergedCard(body);
    default:
      return h("div", { class: "bubble text muted", text: `[${t("msg.unsupported")}]` });
  }
}

export function systemText(message) {
  const body = message.body || {};
  if (body.text) return body.text;
  return t(`sys.${body.event}`) === `sys.${body.event}` ? t("sys.generic") : t(`sys.${body.event}`);
}

/**
 * "{name} recalled a message" / "You recalled a message" when its sender took it back; a group
 * owner's or admin's recall, and an administrator's removal, say so.
 */
export function recalledText(message, meId) {
  const body = message.body || {};
  const sender = message.sender;
  if (body.by === "admin") return t("msg.recalled_admin");
  if (body.by === "group_admin" || (body.by_id != null && sender && body.by_id !== sender.id)) {
    return body.by_id === meId && sender ? t("msg.recalled_by_me", { name: displayName(sender) }) : t("msg.recalled_group_admin");
  }
  if (sender) return sender.id === meId ? t("msg.recalled_me") : t("msg.recalled_by", { name: displayName(sender) });
  return t("msg.recalled");
}

/** A system notice from the company's backend (up to 2000 characters): a card with its time,
 * its text as plain text with its line breaks. */
function noticeCard(message) {
  return h(
    "div",
    { class: "notice-card", dataset: { seq: message.seq } },
    h("div", { class: "notice-head" }, h("span", { class: "notice-label", text: t("chat.notice_label") }), h("time", { datetime: message.created_at, text: clock(message.created_at) })),
    h("p", { class: "notice-text", text: message.body.text || "" }),
  );
}

/** A one-line preview for the conversation list. */
export function preview(message, isGroup, meId) {
  if (!message) return "";
  if (message.recalled) return recalledText(message, meId);
  if (message.type === "system") return systemText(message);
  let text = bodyText(message.body || {});
  if (isGroup && message.sender && message.sender.id !== meId) text = `${displayName(message.sender)}: ${text}`;
  return text;
}

function recalledRow(message, { onReedit }, meId) {
  const line = h("span", { text: recalledText(message, meId) });
  const row = h("div", { class: "sys recalled", dataset: { seq: message.seq ?? "" } }, line);
  const kept = onReedit && message.sender?.id === meId && message.body?.by !== "admin" ? reeditable(message) : null;
  if (kept) {
    const button = h("button", { type: "button", class: "reedit", text: t("msg.reedit"), onclick: () => onReedit(kept.text) });
    line.append(" ", button);
    setTimeout(() => button.remove(), kept.left);
  }
  return row;
}

function quoteBlock(reply, onQuote) {
  const name = reply.sender && !reply.recalled ? displayName(reply.sender) : "";
  return h(
    "button",
    { type: "button", class: `quote${reply.recalled ? " recalled" : ""}`, dataset: { seq: reply.seq ?? "" }, onclick: onQuote && reply.seq != null ? () => onQuote(reply.seq) : null },
    name ? h("span", { class: "quote-name", text: `${name}: ` }) : null,
    h("span", { class: "quote-text", text: quoteText(reply) }),
  );
}

function reactionsRow(message, meId, onReact, readOnly) {
  const list = (message.reactions || []).filter((item) => item.count > 0);
  if (!list.length) return null;
  const chips = list.slice(0, SHOWN_REACTIONS).map((item) => {
    const mine = !!item.user_ids?.includes(meId);
    return h(
      "button",
      {
        type: "button",
        class: `reaction${mine ? " mine" : ""}`,
        dataset: { emoji: item.emoji },
        "aria-pressed": String(mine),
        disabled: readOnly,
        onclick: () => onReact(message, item.emoji, !mine),
        oncontextmenu: (event) => {
          event.preventDefault();
          event.stopPropagation();
          showReactors(message, item.emoji);
        },
      },
      h("span", { class: "reaction-emoji", text: item.emoji }),
      h("span", { class: "reaction-count", text: String(item.count) }),
    );
  });
  const total = list.reduce((sum, item) => sum + item.count, 0);
  const hidden = list.length - SHOWN_REACTIONS;
  const more = hidden > 0 || total > SHOWN_REACTIONS;
  return h(
    "div",
    { class: "reactions" },
    chips,
    more ? h("button", { type: "button", class: "reactions-more", "aria-label": t("act.who_reacted"), title: t("act.who_reacted"), text: hidden > 0 ? `+${hidden}` : "…", onclick: () => showReactors(message) }) : null,
  );
}

/** Right-click, a long press (touch) and the hover toolbar open the menu through opts.onMenu. */
function wireMenu(row, anchor, message, onMenu) {
  let timer = null;
  let start = null;
  let pressedAt = 0;
  const cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  // From the keyboard: Enter, the Menu key or Shift+F10 on the focused message (../keys.js).
  row.addEventListener("keydown", (event) => {
    if (event.target !== row || !(event.key === "Enter" || isMenuKey(event))) return;
    event.preventDefault();
    notePoint(null, null);
    onMenu(message, anchor, event);
  });
  row.addEventListener("contextmenu", (event) => {
    if (event.target.closest("a, video, .reaction")) return;
    event.preventDefault();
    if (Date.now() - pressedAt < 1000) return;
    notePoint(event.clientX, event.clientY);
    onMenu(message, anchor, event);
  });
  row.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "touch") return;
    start = { x: event.clientX, y: event.clientY };
    cancel();
    timer = setTimeout(() => {
      timer = null;
      pressedAt = Date.now();
      notePoint(null, null);
      onMenu(message, anchor, event);
    }, LONG_PRESS_MS);
  });
  row.addEventListener("pointermove", (event) => {
    if (timer && start && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) cancel();
  });
  row.addEventListener("pointerup", cancel);
  row.addEventListener("pointercancel", cancel);
  // The tap that ends a long press does not also open the photo or the card under it.
  row.addEventListener("click", (event) => {
    if (Date.now() - pressedAt < 1000) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);
}

function toolbar(message, meId, onMenu, onReact) {
  const liked = !!message.reactions?.some((item) => item.emoji === "👍" && item.user_ids?.includes(meId));
  const more = h("button", { type: "button", class: "tool tool-more", "aria-label": t("act.menu"), title: t("act.menu"), text: "⋯" });
  more.addEventListener("click", () => {
    const rect = more.getBoundingClientRect();
    notePoint(rect.left, rect.bottom + 4);
    onMenu(message, more, null);
  });
  return h(
    "span",
    { class: "msg-tools" },
    h("button", { type: "button", class: `tool tool-react${liked ? " mine" : ""}`, "aria-label": "👍", title: t("act.react"), text: "👍", onclick: () => onReact(message, "👍", !liked) }),
    more,
  );
}

/**
 * A message row. `pending` is a send not yet stored (state sending/failed, with onRetry);
 * `status` is "sent" or "read" under the newest of my stored messages in a direct chat.
 * Optional: meId, grouped (a run of one sender: no avatar, name or time), selecting/selected and
 * onSelect(message) (select-many mode), onMenu(message, anchorEl, event), onReact(message, emoji,
 * add), onQuote(seq), onReedit(text), readOnly (inside a chat-history sheet).
 */
export function messageRow(message, opts = {}) {
  const { mine, showName, status, pending, onRetry, grouped, selecting, selected, onSelect, onMenu, onQuote, readOnly } = opts;
  const meId = opts.meId ?? state.me?.id;
  const onReact = opts.onReact || react;
  // A recalled notice is a recalled message (in the reader's language), not a system line: its
  // body then carries only the server's English "Removed by an administrator".
  if (message.recalled) return recalledRow(message, opts, meId);
  if (message.type === "system" && message.body?.event === "notice") return noticeCard(message);
  if (message.type === "system") return h("div", { class: "sys" }, h("span", { text: systemText(message) }));
  const sender = message.sender || {};
  const name = displayName(sender);
  const meta = h("div", { class: "meta" }, grouped ? null : h("time", { datetime: message.created_at, text: clock(message.created_at) }));
  if (message.edit_count > 0) {
    meta.append(h("button", { type: "button", class: "edited-mark", text: t("msg.edited"), disabled: readOnly || message.seq == null, onclick: () => showEditHistory(message) }));
  }
  if (pending?.state === "sending") meta.append(h("span", { class: "state sending", text: t("msg.sending") }));
  if (status) meta.append(h("span", { class: `state ${status}`, text: t(`msg.${status}`) }));
  const stored = !pending && !readOnly && message.seq != null;
  const bubbleLine = h("div", { class: "bubble-line" }, content(message, { mine, readOnly }));
  if (stored && onMenu && !selecting) bubbleLine.append(toolbar(message, meId, onMenu, onReact));
  if (pending?.state === "failed") {
    bubbleLine.prepend(h("button", { type: "button", class: "retry", title: t("msg.retry"), "aria-label": t("msg.retry"), onclick: onRetry }, icon("alert")));
    const reason = pending.error?.code === "network" ? t("msg.failed") : pending.error?.message || t("msg.failed");
    meta.append(h("span", { class: "state failed", text: reason }));
  }
  const mentionsMe = !mine && (message.mention_all || message.mentions?.includes(meId));
  const classes = ["msg", mine ? "mine" : "theirs", pending?.state, grouped && "grouped", selecting && "selecting", selected && "selected", mentionsMe && "mentions-me"];
  const row = h(
    "div",
    { class: classes.filter(Boolean).join(" "), dataset: { seq: message.seq ?? "", cmid: message.client_msg_id || "" } },
    selecting && stored ? h("input", { type: "checkbox", class: "select-box", checked: !!selected, "aria-label": t("act.select") }) : null,
    grouped ? h("span", { class: "avatar-spacer" }) : avatar(name, sender.avatar_url),
    h(
      "div",
      { class: "msg-col" },
      showName && !grouped ? h("div", { class: "sender", text: name }) : null,
      message.forwarded && message.body?.type !== "merged" ? h("div", { class: "fwd-tag muted small", text: t("msg.forwarded") }) : null,
      message.reply ? quoteBlock(message.reply, readOnly ? null : onQuote) : null,
      bubbleLine,
      reactionsRow(message, meId, onReact, readOnly || !stored),
      meta,
    ),
  );
  if (selecting && stored) {
    // In select-many mode a tap anywhere on the row picks it; nothing inside opens.
    row.addEventListener("click", (event) => {
      event.preventDefault();
      event.stopPropagation();
      onSelect?.(message);
    }, true);
  } else if (stored && onMenu) {
    wireMenu(row, bubbleLine, message, onMenu);
  }
  return row;
}
