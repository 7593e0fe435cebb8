// One message as DOM: bubbles by body type, system lines, media rendered defensively.
import { avatar, clock, fileSize, h, icon, safeUrl } from "../dom.js";
import { t } from "../i18n.js";
import { displayName } from "../store.js";

/** Where an upload's file and thumbnail are, whichever shape the body carries them in. */
function media(body) {
  const upload = body.upload && typeof body.upload === "object" ? body.upload : body;
  const fallback = body.upload_id != null ? `/api/v1/uploads/${encodeURIComponent(body.upload_id)}` : null;
  const full = safeUrl(upload.url || upload.download_url || body.url || fallback);
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

export function openLightbox(src) {
  const box = h("div", { class: "lightbox", role: "dialog", "aria-label": t("msg.image"), onclick: () => box.remove() }, h("img", { src, alt: "" }));
  document.body.append(box);
}

export function osmLink(lat, lng) {
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=16/${lat}/${lng}`;
}

function content(body) {
  switch (body?.type) {
    case "txt":
      return h("div", { class: "bubble text", text: body.msg });
    case "img": {
      const file = media(body);
      if (!file.thumb) return h("div", { class: "bubble text muted", text: `[${t("msg.image")}]` });
      const img = h("img", { class: "thumb", src: file.thumb, alt: t("msg.image"), loading: "lazy" });
      if (file.width && file.height) img.style.aspectRatio = `${file.width} / ${file.height}`;
      return h("button", { type: "button", class: "bubble media", "aria-label": t("msg.open_image"), onclick: () => openLightbox(file.full || file.thumb) }, img);
    }
    case "video": {
      const file = media(body);
      if (!file.full) return h("div", { class: "bubble text muted", text: `[${t("msg.video")}]` });
      return h("div", { class: "bubble media" }, h("video", { class: "video", src: file.full, controls: true, preload: "metadata", playsinline: true, poster: file.thumb !== file.full ? file.thumb : null }));
    }
    case "file": {
      const file = media(body);
      return h(
        "div",
        { class: "bubble card file" },
        h("span", { class: "card-icon" }, icon("file")),
        h("span", { class: "card-text" }, h("strong", { text: file.name }), h("small", { class: "muted", text: fileSize(file.size) })),
        file.full ? h("a", { class: "btn small", href: file.full, download: file.name, text: t("msg.download") }) : null,
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
    default:
      return h("div", { class: "bubble text muted", text: `[${t("msg.unsupported")}]` });
  }
}

export function systemText(message) {
  const body = message.body || {};
  if (body.text) return body.text;
  return t(`sys.${body.event}`) === `sys.${body.event}` ? t("sys.generic") : t(`sys.${body.event}`);
}

/** "Removed by an administrator", or "{name} recalled a message" when its sender took it back. */
export function recalledText(message, meId) {
  const by = message.body?.by;
  if (by === "admin") return t("msg.recalled_admin");
  if (by === "sender" && message.sender) {
    return message.sender.id === meId ? t("msg.recalled_me") : t("msg.recalled_by", { name: displayName(message.sender) });
  }
  return t("msg.recalled");
}

/** A one-line preview for the conversation list. */
export function preview(message, isGroup, meId) {
  if (!message) return "";
  if (message.recalled) return recalledText(message, meId);
  const body = message.body || {};
  let text;
  if (message.type === "system") return systemText(message);
  if (body.type === "txt") text = body.msg;
  else if (body.type === "img") text = `[${t("msg.image")}]`;
  else if (body.type === "video") text = `[${t("msg.video")}]`;
  else if (body.type === "file") text = `[${t("msg.file")}] ${media(body).name}`;
  else if (body.type === "loc") text = `[${t("msg.location")}] ${body.title || ""}`;
  else text = `[${t("msg.unsupported")}]`;
  if (isGroup && message.sender && message.sender.id !== meId) text = `${displayName(message.sender)}: ${text}`;
  return text;
}

/**
 * A message row. `pending` is a send not yet stored (state sending/failed, with onRetry);
 * `status` is "sent" or "read" under the newest of my stored messages in a direct chat.
 */
export function messageRow(message, { mine, showName, status, pending, onRetry }) {
  if (message.type === "system") return h("div", { class: "sys" }, h("span", { text: systemText(message) }));
  if (message.recalled) {
    return h("div", { class: "sys recalled", dataset: { seq: message.seq ?? "" } }, h("span", { text: recalledText(message, mine ? message.sender?.id : null) }));
  }
  const sender = message.sender || {};
  const name = displayName(sender);
  const meta = h("div", { class: "meta" }, h("time", { datetime: message.created_at, text: clock(message.created_at) }));
  if (pending?.state === "sending") meta.append(h("span", { class: "state sending", text: t("msg.sending") }));
  if (status) meta.append(h("span", { class: `state ${status}`, text: t(`msg.${status}`) }));
  const bubbleLine = h("div", { class: "bubble-line" }, content(message.body));
  if (pending?.state === "failed") {
    bubbleLine.prepend(h("button", { type: "button", class: "retry", title: t("msg.retry"), "aria-label": t("msg.retry"), onclick: onRetry }, icon("alert")));
    const reason = pending.error?.code === "network" ? t("msg.failed") : pending.error?.message || t("msg.failed");
    meta.append(h("span", { class: "state failed", text: reason }));
  }
  return h(
    "div",
    { class: `msg ${mine ? "mine" : "theirs"}${pending ? ` ${pending.state}` : ""}`, dataset: { seq: message.seq ?? "", cmid: message.client_msg_id || "" } },
    avatar(name, sender.avatar_url),
    h("div", { class: "msg-col" }, showName ? h("div", { class: "sender", text: name }) : null, bubbleLine, meta),
  );
}
