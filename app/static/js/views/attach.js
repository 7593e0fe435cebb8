// The chat's attachments: the attach panel (photo, video, file, location) and the upload that
// sends a picked, pasted or dropped file, with its progress bar and cancel button.
import { upload } from "../api.js";
import { h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { on, state } from "../store.js";
import { send } from "../sync.js";
import { locationSheet } from "./chatsheets.js";
import { holdLocalMedia } from "./localmedia.js";

/**
 * The chat's `startUpload(file, type, {purpose, duration})`: upload one file and send it (type
 * null: as the kind the server found; a recorded voice message goes with purpose "voice", type
 * "audio" and the recording's measured `duration`); resolves when done. The sender's own photo,
 * video or voice message shows the picked file while the chat is open (`isOpen`), whose cleanup
 * releases it. A recording whose upload fails for a passing reason (offline, the server busy or
 * failing) is kept: its item says so, with "Send again" and "Discard", and goes again by itself
 * after the next connect when the failure was the network.
 */
export function uploader({ conversationId, uploads, takeReply, isOpen, toNewest }) {
  return startUpload;
  function startUpload(file, type, { purpose = null, duration = null } = {}) {
    const bar = h("progress", { max: 1, value: 0 });
    const job = upload(file, (fraction) => {
      bar.value = fraction;
    }, { purpose, duration });
    const item = h("div", { class: "upload-item" }, h("span", { class: "upload-name", text: file.name }), bar, h("button", { type: "button", class: "btn small", text: t("cancel"), onclick: () => job.abort() }));
    uploads.append(item);
    return job.promise
      .then((stored) => {
        // A pasted or dropped file is sent as what the server found it to be.
        const kind = type || { image: "img", video: "video" }[stored.kind] || "file";
        // The bubble shows the picked file (and its measured size) until the server's copy is there.
        const preview = { w: stored.w, h: stored.h, name: stored.name, size: stored.size };
        // A voice message's bubble shows its length at once (the server's measure).
        if (kind === "audio") Object.assign(preview, { duration: stored.duration ?? duration, mime: stored.mime });
        const clientMsgId = send(conversationId, { type: kind, upload_id: stored.id }, { ...takeReply(), preview });
        if ((kind === "img" || kind === "video" || kind === "audio") && isOpen()) holdLocalMedia(clientMsgId, file, conversationId);
        toNewest();
      })
      .then(() => item.remove())
      .catch((error) => {
        item.remove();
        if (error.code === "cancelled") return;
        if (purpose === "voice" && passing(error)) keepRecording(file, type, { purpose, duration }, error);
        else toast(error.message || t("error.upload"));
      });
  }

  /** A recording not uploaded: kept in the list until sent again or discarded. */
  function keepRecording(file, type, options, error) {
    let off = () => {};
    const again = () => {
      off();
      item.remove();
      startUpload(file, type, options);
    };
    const item = h(
      "div",
      { class: "upload-item upload-failed", role: "status" },
      h("span", { class: "upload-name", text: t("voice.upload_failed") }),
      h("button", { type: "button", class: "btn small primary", text: t("voice.retry"), onclick: again }),
      h("button", { type: "button", class: "btn small", text: t("voice.discard"), onclick: () => { off(); item.remove(); } }),
    );
    uploads.append(item);
    if (error.code === "network") {
      off = on("connection", () => {
        if (!state.connected) return;
        if (item.isConnected) again();
        else off();
      });
    }
  }
}

/** A failure worth trying again: offline, too many requests, the server busy or failing. */
function passing(error) {
  const status = Number(error?.status);
  return error?.code === "network" || status === 0 || status === 429 || status >= 500 || error?.code === "server_busy" || error?.code === "too_many_uploads";
}

/** The attach panel of the chat's drawer. */
export function attachPanel({ conversationId, drawer, startUpload, toNewest }) {
  const picker = (accept, type) => {
    const file = h("input", { type: "file", accept, hidden: true, onchange: () => {
      if (file.files[0]) startUpload(file.files[0], type);
      drawer.hidden = true;
    } });
    return file;
  };
  const tiles = [
    ["image", "chat.image", "image/*", "img"],
    ["video", "chat.video", "video/*", "video"],
    ["file", "chat.file", "", "file"],
  ].map(([name, label, accept, type]) => {
    const fileInput = picker(accept, type);
    return h("button", { type: "button", class: "tile", dataset: { kind: type }, onclick: () => fileInput.click() }, h("span", { class: "tile-icon" }, icon(name)), h("span", { text: t(label) }), fileInput);
  });
  tiles.push(h("button", { type: "button", class: "tile", dataset: { kind: "loc" }, onclick: () => { drawer.hidden = true; locationSheet(conversationId, toNewest); } }, h("span", { class: "tile-icon" }, icon("location")), h("span", { text: t("chat.location") })));
  return h("div", { class: "attach" }, tiles);
}
