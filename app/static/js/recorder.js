// Recording a voice message: the microphone through MediaRecorder in the first format the browser
// supports (Opus in WebM or Ogg on Chromium and Firefox, AAC in MP4 on Safari), the elapsed time,
// a level meter (an AnalyserNode) and a maximum length. The microphone is asked for only when a
// recording starts (the first time, the browser asks the user), and every track is stopped when
// it ends, so the browser's recording indicator goes away.

const FORMATS = [
  { mime: "audio/webm;codecs=opus", ext: "webm" },
  { mime: "audio/ogg;codecs=opus", ext: "ogg" },
  { mime: "audio/mp4", ext: "m4a" },
];
const TICK_MS = 100;
// Stop this much before the limit: the file the encoder closes comes out a little longer.
const LIMIT_MARGIN = 0.3;

/** Why a recording could not start: `code` is "unsupported", "denied", "no_microphone" or "failed". */
export class RecorderError extends Error {
  constructor(code, cause = null) {
    super(code);
    this.code = code;
    this.cause = cause;
  }
}

/** The format this browser records in ({mime, ext}), or null when it cannot record here. */
export function recordingFormat() {
  if (!window.isSecureContext || !window.MediaRecorder || !navigator.mediaDevices?.getUserMedia) return null;
  return FORMATS.find((format) => MediaRecorder.isTypeSupported(format.mime)) || null;
}

async function microphone() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    const name = error?.name;
    if (name === "NotAllowedError" || name === "SecurityError") throw new RecorderError("denied", error);
    if (name === "NotFoundError" || name === "OverconstrainedError") throw new RecorderError("no_microphone", error);
    throw new RecorderError("failed", error);
  }
}

/** The loudness of the microphone, 0..1, read from an AnalyserNode; a no-op where audio graphs fail. */
function levelMeter(stream) {
  try {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(stream).connect(analyser);
    context.resume().catch(() => {});
    const samples = new Uint8Array(analyser.fftSize);
    return {
      level() {
        analyser.getByteTimeDomainData(samples);
        let sum = 0;
        for (const sample of samples) sum += ((sample - 128) / 128) ** 2;
        // Speech sits around an RMS of 0.05..0.3: stretch it so the meter moves.
        return Math.min(1, Math.sqrt(sum / samples.length) * 4);
      },
      close: () => context.close().catch(() => {}),
    };
  } catch {
    return { level: () => 0, close() {} };
  }
}

/**
 * Start recording. `onTick(seconds, level)` runs every 100 ms while recording; `onLimit()` once,
 * a little before `maxSeconds` (checked on every tick too: a background tab delays timers, and
 * the server refuses a file past the limit). `onEnded({error})` once if the recording ends by
 * itself (the recorder failed, the microphone was unplugged or its track ended) before stop() or
 * cancel(). Resolves, once the microphone is open and recording, with {seconds(), stop(),
 * cancel()}: stop() resolves with {file, seconds} (the file named voice.<ext>; seconds as
 * measured here, the real time it recorded, never capped), cancel() drops the recording. Rejects
 * with a RecorderError. `shouldRecord()` is asked once the microphone answers (a press released
 * while the browser was asking): false closes it again and rejects with code "cancelled".
 */
export async function startRecording({ maxSeconds, onTick = () => {}, onLimit = () => {}, onEnded = () => {}, shouldRecord = () => true }) {
  const format = recordingFormat();
  if (!format) throw new RecorderError("unsupported");
  const stream = await microphone();
  const release = () => stream.getTracks().forEach((track) => track.stop());
  if (!shouldRecord()) {
    release();
    throw new RecorderError("cancelled");
  }
  let recorder;
  try {
    recorder = new MediaRecorder(stream, { mimeType: format.mime });
  } catch (error) {
    release();
    throw new RecorderError("unsupported", error);
  }
  const meter = levelMeter(stream);
  const chunks = [];
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data?.size) chunks.push(event.data);
  });
  const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
  await new Promise((resolve, reject) => {
    recorder.addEventListener("start", resolve, { once: true });
    recorder.addEventListener("error", reject, { once: true });
    try {
      recorder.start();
    } catch (error) {
      reject(error);
    }
  }).catch((error) => {
    meter.close();
    release();
    throw new RecorderError("failed", error);
  });
  const startedAt = performance.now();
  let endedAt = null;
  const seconds = () => ((endedAt ?? performance.now()) - startedAt) / 1000;
  const stopAt = Math.max(0, maxSeconds - LIMIT_MARGIN);
  let limitReached = false;
  const reachLimit = () => {
    if (limitReached || finished) return;
    limitReached = true;
    onLimit();
  };
  const timer = setInterval(() => {
    if (seconds() >= stopAt) reachLimit();
    else onTick(seconds(), meter.level());
  }, TICK_MS);
  const limit = setTimeout(reachLimit, stopAt * 1000);

  // Once, however many times it is asked (the limit and a release at the same moment).
  let finished = null;
  function finish() {
    finished ||= (async () => {
      endedAt ??= performance.now();
      clearInterval(timer);
      clearTimeout(limit);
      if (recorder.state !== "inactive") recorder.stop();
      // A recorder that failed may never say it stopped: the microphone is released all the same.
      await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 2000))]);
      meter.close();
      release();
      return seconds();
    })();
    return finished;
  }

  // Ended by itself (not by stop() or cancel()): its end is now; the caller sends or drops it.
  let endedItself = false;
  const ended = (error) => {
    if (finished || endedItself) return;
    endedItself = true;
    endedAt = performance.now();
    clearInterval(timer);
    clearTimeout(limit);
    onEnded({ error });
  };
  recorder.addEventListener("error", () => ended(true));
  recorder.addEventListener("stop", () => ended(false));
  for (const track of stream.getTracks()) track.addEventListener("ended", () => ended(false));

  return {
    seconds,
    async stop() {
      const length = await finish();
      const type = recorder.mimeType || format.mime;
      const file = new File(chunks, `voice.${format.ext}`, { type: type.split(";")[0] });
      // Tenths, rounded down: 0.97 s is not a second.
      return { file, seconds: Math.floor(length * 10) / 10 };
    },
    cancel() {
      finish().catch(() => {});
    },
  };
}
