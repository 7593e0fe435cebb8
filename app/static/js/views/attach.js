// The chat's attachments: the attach panel (photo, video, file, location) and the upload that
// sends a picked, pasted or dropped file, with its progress bar and cancel button.
import { upload } from "../api.js";
import { h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { send } from "../sync.js";
import { locationSheet } from "./chatsheets.js";
import { holdLocalMedia } from "./localmedia.js";

/**
 * The chat's `startUpload(file, type)`: upload one file and send it (type null: as the kind the
 * server found); resolves when done. The sender's own photo or video shows the picked file while
 * the chat is open (`isOpen`), whose cleanup releases it.
 */
export function uploader({ conversationId, uploads, takeReply, isOpen, toNewest }) {
  return function startUpload(file, type) {
    const bar = h("progress", { max: 1, value: 0 });
    const job = upload(file, (fraction) => {
      bar.value = fraction;
    });
    const item = h("div", { class: "upload-item" }, h("span", { class: "upload-name", text: file.name }), bar, h("button", { type: "button", class: "btn small", text: t("cancel"), onclick: () => job.abort() }));
    uploads.append(item);
    return job.promise
      .then((stored) => {
        // A pasted or dropped file is sent as what the server found it to be.
        const kind = type || { image: "img", video: "video" }[stored.kind] || "file";
        // The bubble shows the picked file (and its measured size) until the server's copy is there.
        const preview = { w: stored.w, h: stored.h, name: stored.name, size: stored.size };
        const clientMsgId = send(conversationId, { type: kind, upload_id: stored.id }, { ...takeReply(), preview });
        if ((kind === "img" || kind === "video") && isOpen()) holdLocalMedia(clientMsgId, file, conversationId);
        toNewest();
      })
      .catch((error) => {
        if (error.code !== "cancelled") toast(error.message || t("error.upload"));
      })
      .finally(() => item.remove());
  };
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
