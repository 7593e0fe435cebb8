// Choosing a new avatar: pick an image, crop it to a square in the browser, upload it as an
// avatar (`purpose=avatar`). The crop frame is the image in a square window: drag (or the arrow
// keys) to move it, zoom with the slider, the wheel, a pinch or + and −; then a canvas draws the
// square at 512×512 and the upload path sends it. The server crops and re-encodes it again.
import { upload } from "./api.js";
import { h, sheet, toast } from "./dom.js";
import { t } from "./i18n.js";

export const AVATAR_EDGE = 512;
const MAX_ZOOM = 4;
const KEY_STEP = 10;

/** Open a file picker for an image; resolves with the File, or null if none was chosen. */
export function pickImage() {
  return new Promise((resolve) => {
    const input = h("input", { type: "file", accept: "image/jpeg,image/png,image/gif,image/webp", hidden: true });
    input.addEventListener("change", () => {
      resolve(input.files?.[0] || null);
      input.remove();
    }, { once: true });
    input.addEventListener("cancel", () => {
      resolve(null);
      input.remove();
    }, { once: true });
    document.body.append(input);
    input.click();
  });
}

/**
 * Pick, crop and upload a new avatar. Resolves with the upload ({id, url, thumb…}) or null when
 * the user gave up; rejects with the server's ApiError when the upload is refused.
 * `file`: crop this one instead of asking.
 */
export async function chooseAvatar({ file = null, onProgress = () => {} } = {}) {
  const chosen = file || (await pickImage());
  if (!chosen) return null;
  const blob = await cropSheet(chosen);
  if (!blob) return null;
  const type = blob.type || "image/jpeg";
  const named = new File([blob], type === "image/webp" ? "avatar.webp" : "avatar.jpg", { type });
  return upload(named, onProgress, { purpose: "avatar" }).promise;
}

/** The crop sheet for an image file; resolves with a square Blob, or null if cancelled. */
export function cropSheet(file) {
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.src = url;
  return image
    .decode()
    .then(
      () => sheet(t("profile.crop_title"), (body, close) => buildCropper(body, image, close)),
      () => {
        toast(t("profile.not_image"));
        return null;
      },
    )
    .finally(() => URL.revokeObjectURL(url));
}

function buildCropper(body, image, close) {
  const width = image.naturalWidth;
  const height = image.naturalHeight;
  // The view: the point of the image at the frame's centre, and the zoom over "just covers".
  let cx = width / 2;
  let cy = height / 2;
  let zoom = 1;
  const picture = h("img", { class: "crop-image", src: image.src, alt: "", draggable: "false" });
  const frame = h("div", { class: "crop-frame", tabindex: "0", role: "group", "aria-label": t("profile.crop_area"), "aria-describedby": "crop-hint" }, picture);
  const slider = h("input", { class: "crop-zoom", type: "range", min: "1", max: String(MAX_ZOOM), step: "0.01", value: "1", "aria-label": t("profile.zoom") });

  const edge = () => frame.clientWidth || 280;
  const scale = () => (edge() / Math.min(width, height)) * zoom;

  function layout() {
    const s = scale();
    const half = edge() / 2 / s;
    // The image always covers the frame.
    cx = Math.min(Math.max(cx, half), width - half);
    cy = Math.min(Math.max(cy, half), height - half);
    const x = edge() / 2 - cx * s;
    const y = edge() / 2 - cy * s;
    picture.style.width = `${width * s}px`;
    picture.style.height = `${height * s}px`;
    picture.style.transform = `translate(${x}px, ${y}px)`;
    slider.value = String(zoom);
  }
  const moveBy = (dx, dy) => {
    const s = scale();
    cx -= dx / s;
    cy -= dy / s;
    layout();
  };
  const zoomTo = (value) => {
    zoom = Math.min(Math.max(value, 1), MAX_ZOOM);
    layout();
  };

  // Pointers: one drags, two pinch.
  const pointers = new Map();
  let pinch = null;
  frame.addEventListener("pointerdown", (event) => {
    frame.setPointerCapture(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    pinch = null;
  });
  frame.addEventListener("pointermove", (event) => {
    const last = pointers.get(event.pointerId);
    if (!last) return;
    const now = { x: event.clientX, y: event.clientY };
    pointers.set(event.pointerId, now);
    if (pointers.size === 1) {
      moveBy(now.x - last.x, now.y - last.y);
      return;
    }
    const [a, b] = [...pointers.values()];
    const distance = Math.hypot(a.x - b.x, a.y - b.y);
    if (pinch) zoomTo(zoom * (distance / pinch));
    pinch = distance;
  });
  const lift = (event) => {
    pointers.delete(event.pointerId);
    pinch = null;
  };
  frame.addEventListener("pointerup", lift);
  frame.addEventListener("pointercancel", lift);
  frame.addEventListener("wheel", (event) => {
    event.preventDefault();
    zoomTo(zoom * Math.exp(-event.deltaY * 0.002));
  }, { passive: false });
  frame.addEventListener("keydown", (event) => {
    const moves = { ArrowLeft: [-KEY_STEP, 0], ArrowRight: [KEY_STEP, 0], ArrowUp: [0, -KEY_STEP], ArrowDown: [0, KEY_STEP] };
    if (moves[event.key]) moveBy(...moves[event.key]);
    else if (event.key === "+" || event.key === "=") zoomTo(zoom * 1.1);
    else if (event.key === "-" || event.key === "_") zoomTo(zoom / 1.1);
    else if (event.key === "Enter") done();
    else return;
    event.preventDefault();
  });
  slider.addEventListener("input", () => zoomTo(Number(slider.value)));

  async function done() {
    const s = scale();
    const side = edge() / s;
    const canvas = h("canvas", { width: AVATAR_EDGE, height: AVATAR_EDGE });
    const context = canvas.getContext("2d");
    context.imageSmoothingQuality = "high";
    context.drawImage(image, cx - side / 2, cy - side / 2, side, side, 0, 0, AVATAR_EDGE, AVATAR_EDGE);
    close(await toBlob(canvas));
  }

  body.append(
    h(
      "div",
      { class: "cropper stack" },
      frame,
      h("p", { id: "crop-hint", class: "muted crop-hint", text: t("profile.crop_hint") }),
      h("label", { class: "field" }, h("span", { text: t("profile.zoom") }), slider),
      h("div", { class: "row-btns" }, h("button", { type: "button", class: "btn", text: t("cancel"), onclick: () => close(null) }), h("button", { type: "button", class: "btn primary crop-done", text: t("profile.use_photo"), onclick: done })),
    ),
  );
  layout();
  // The frame's size is known once the sheet is laid out (and after the window is resized).
  requestAnimationFrame(layout);
  // Let go of the frame once the sheet is closed.
  new ResizeObserver((entries, observer) => (frame.isConnected ? layout() : observer.disconnect())).observe(frame);
}

/** WebP where the browser writes it, else JPEG. */
function toBlob(canvas) {
  return new Promise((resolve) => {
    canvas.toBlob((blob) => {
      if (blob && blob.type === "image/webp") resolve(blob);
      else canvas.toBlob((jpeg) => resolve(jpeg), "image/jpeg", 0.9);
    }, "image/webp", 0.9);
  });
}
