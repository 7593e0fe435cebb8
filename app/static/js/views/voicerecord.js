// The composer's microphone button, as in WeChat. On a phone (a touch or pen press) hold it to
// talk: an overlay shows the time and the level; release sends, slide up by more than 60 px and
// release cancels. On a desktop (a mouse click, or Space/Enter on the button) a click starts and
// a recording bar takes the composer's place: cancel (✕ or Esc), send (✓ or Enter). Either way a
// recording under a second is not sent, and one that reaches the longest allowed
// (`limits.voiceMaxSeconds`) stops and sends itself, its last ten seconds counted down (unless
// the finger is on "Release to cancel": then it is dropped). A recording that ends by itself (the
// microphone unplugged) is sent if long enough; one whose page is hidden is cancelled, as in
// WeChat. Starting to record stops the voice message playing, and none plays while recording.
import { h, icon, toast } from "../dom.js";
import { t } from "../i18n.js";
import { openLayer } from "../layers.js";
import { RecorderError, startRecording } from "../recorder.js";
import { limits } from "../store.js";
import { recordingVoice } from "./voice.js";

const MIN_SECONDS = 1;
const CANCEL_DISTANCE = 60;
const COUNTDOWN = 10;
// A click that follows a touch press is part of that press, not a desktop click.
const TOUCH_CLICK_MS = 1000;

function clockText(seconds, max) {
  const left = Math.ceil(max - seconds);
  if (left <= COUNTDOWN) return t("voice.left", { n: Math.max(0, left) });
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function startError(error) {
  const code = error instanceof RecorderError ? error.code : "failed";
  if (code === "cancelled") return;
  if (code === "unsupported" && !window.isSecureContext) toast(t("voice.insecure"));
  else toast(t(`voice.${code}`));
}

/** The meter and the time, shared by the overlay and the bar. */
function readout() {
  const fill = h("span", { class: "voice-meter-fill" });
  const meter = h("span", { class: "voice-meter", "aria-hidden": "true" }, fill);
  const time = h("span", { class: "voice-time", role: "timer", text: clockText(0, limits.voiceMaxSeconds) });
  return {
    meter,
    time,
    draw(seconds, level) {
      fill.style.transform = `scaleX(${Math.max(0.04, level)})`;
      time.textContent = clockText(seconds, limits.voiceMaxSeconds);
    },
  };
}

/**
 * The microphone button of one chat's composer. `canSend()` says whether the chat takes messages
 * now; `sendVoice(file, seconds)` uploads and sends a finished recording. A recording stops
 * unsent when the button leaves the page (the chat closed) or is disabled (a mute began).
 */
export function voiceButton({ canSend, sendVoice }) {
  const button = h("button", { type: "button", class: "icon-btn voice-record", "aria-label": t("voice.record"), title: t("voice.record") }, icon("mic"));
  // null, or the recording under way: {mode: "hold" | "click", recorder, ...}.
  let session = null;
  let touchEndedAt = -Infinity;

  function tick(seconds, level) {
    if (!session) return;
    if (!button.isConnected || button.disabled) {
      discard();
      return;
    }
    session.readout.draw(seconds, level);
  }

  async function begin(mode, extra = {}) {
    if (session || button.disabled) return;
    if (!canSend()) {
      toast(t("composer.cannot_send"));
      return;
    }
    const current = { mode, recorder: null, readout: readout(), armed: false, pressed: true, ...extra };
    session = current;
    // As in WeChat: recording stops the voice message playing; none plays until it ends.
    recordingVoice(current, true);
    try {
      current.recorder = await startRecording({
        maxSeconds: limits.voiceMaxSeconds,
        onTick: tick,
        // At the limit a finger on "Release to cancel" means cancel.
        onLimit: () => (session === current && current.armed ? discard() : finish()),
        onEnded: ({ error }) => {
          if (session !== current) return;
          toast(t("voice.stopped"));
          if (error || current.armed) discard();
          else finish({ quiet: true });
        },
        shouldRecord: () => session === current && current.pressed && button.isConnected && !button.disabled,
      });
    } catch (error) {
      if (session === current) session = null;
      recordingVoice(current, false);
      startError(error);
      return;
    }
    // Given up meanwhile: the chat closed, or a press let go while the recorder was starting.
    if (session !== current || !current.pressed) {
      if (session === current) session = null;
      recordingVoice(current, false);
      current.recorder.cancel();
      return;
    }
    if (mode === "hold") showOverlay(current);
    else showBar(current);
  }

  /** Close what shows the recording; the recorder itself is stopped by the caller. */
  function close(current) {
    if (session === current) session = null;
    recordingVoice(current, false);
    // The button was hidden behind the bar: the focus in the bar (or lost) goes back to it.
    const active = document.activeElement;
    const refocus = !!current.footer && (!active || active === document.body || !!current.view?.contains(active));
    current.footer?.classList.remove("recording");
    current.view?.remove();
    current.done?.();
    if (refocus && button.isConnected) button.focus({ preventScroll: true });
    if (current.onKey) document.removeEventListener("keydown", current.onKey, true);
  }

  function discard() {
    const current = session;
    if (!current) return;
    close(current);
    current.recorder?.cancel();
  }

  async function finish({ quiet = false } = {}) {
    const current = session;
    if (!current?.recorder) return;
    close(current);
    const { file, seconds } = await current.recorder.stop();
    if (seconds < MIN_SECONDS || !file.size) {
      if (!quiet) toast(t("voice.too_short"));
      return;
    }
    if (!canSend()) {
      toast(t("composer.cannot_send"));
      return;
    }
    sendVoice(file, seconds);
  }

  // Phone: hold to talk.
  function showOverlay(current) {
    const hint = h("span", { class: "voice-hint", text: t("voice.slide_cancel") });
    const panel = h("div", { class: "voice-overlay-panel" }, h("span", { class: "voice-overlay-icon" }, icon("mic")), current.readout.meter, current.readout.time, hint);
    current.hint = hint;
    current.panel = panel;
    current.view = h("div", { class: "voice-overlay", role: "status", "aria-label": t("voice.recording") }, panel);
    document.body.append(current.view);
    drawArmed(current);
  }

  function drawArmed(current) {
    if (!current.panel) return;
    current.panel.classList.toggle("cancel", current.armed);
    current.hint.textContent = current.armed ? t("voice.release_cancel") : t("voice.slide_cancel");
  }

  button.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "touch" && event.pointerType !== "pen") return;
    if (event.button > 0) return;
    event.preventDefault();
    try {
      button.setPointerCapture(event.pointerId);
    } catch {
      // A pointer the browser no longer tracks: the moves still reach the button while over it.
    }
    begin("hold", { pointerId: event.pointerId, startY: event.clientY });
  });
  button.addEventListener("pointermove", (event) => {
    const current = session;
    if (current?.mode !== "hold" || event.pointerId !== current.pointerId) return;
    const armed = current.startY - event.clientY > CANCEL_DISTANCE;
    if (armed !== current.armed) {
      current.armed = armed;
      drawArmed(current);
    }
  });
  const release = (event) => {
    const current = session;
    if (event.pointerType === "touch" || event.pointerType === "pen") touchEndedAt = performance.now();
    if (current?.mode !== "hold" || event.pointerId !== current.pointerId) return;
    current.pressed = false;
    if (!current.recorder) return; // still asking for the microphone: shouldRecord() says no
    if (event.type === "pointercancel" || current.armed) discard();
    else finish();
  };
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  // A long press is not a right click (no menu, no text selection).
  button.addEventListener("contextmenu", (event) => event.preventDefault());

  // Desktop: click to start, then the bar.
  button.addEventListener("click", (event) => {
    const touch = event.pointerType === "touch" || event.pointerType === "pen" || performance.now() - touchEndedAt < TOUCH_CLICK_MS;
    if (touch) return;
    begin("click");
  });

  function showBar(current) {
    const footer = button.parentElement;
    const send = h("button", { type: "button", class: "btn primary voice-send", "aria-label": t("voice.send"), title: t("voice.send"), onclick: () => finish() }, icon("check"));
    const cancel = h("button", { type: "button", class: "icon-btn voice-cancel", "aria-label": t("voice.cancel"), title: t("voice.cancel"), onclick: () => discard() }, icon("close"));
    current.view = h("div", { class: "voice-bar", role: "group", "aria-label": t("voice.recording") }, cancel, h("span", { class: "voice-dot", "aria-hidden": "true" }), current.readout.meter, current.readout.time, send);
    current.footer = footer;
    footer.classList.add("recording");
    footer.append(current.view);
    send.focus();
    // Esc cancels (one key handler for everything that floats: ../layers.js).
    current.done = openLayer(current.view, { close: () => discard(), opener: button });
    // Enter sends when the focus is in the bar (not on the ✕, which cancels) or nowhere.
    current.onKey = (event) => {
      if (event.key !== "Enter" || event.isComposing || event.target instanceof HTMLButtonElement) return;
      const active = document.activeElement;
      if (active && active !== document.body && !current.view.contains(active)) return;
      event.preventDefault();
      event.stopPropagation();
      finish();
    };
    document.addEventListener("keydown", current.onKey, true);
  }

  // The page hidden (another app, the phone locked): the recording is cancelled, as in WeChat.
  const onHidden = () => {
    if (document.visibilityState !== "hidden") return;
    // A chat closed since: its button's listener goes (at the first hide after it).
    if (!button.isConnected && !session) {
      document.removeEventListener("visibilitychange", onHidden);
      return;
    }
    if (!session) return;
    const hadRecorder = !!session.recorder;
    discard();
    if (hadRecorder) toast(t("voice.stopped"));
  };
  document.addEventListener("visibilitychange", onHidden);

  return { el: button, cancel: discard };
}
