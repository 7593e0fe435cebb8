"""Small audio and video files made by PyAV for the tests: real encoders, real containers.

Each function returns the file's bytes. Durations are exact to the frame/packet; sizes are a
few KB to a few dozen KB, so a test can make what it needs.
"""

from __future__ import annotations

import io
import math
from array import array
from fractions import Fraction

import av
from PIL import Image

AUDIO_RATE = 48_000


def _tone(seconds: float, rate: int, frequency: float = 440.0):
    """Frames of a sine tone (planar float, mono), 20 ms each."""
    per_frame = rate // 50
    total = int(seconds * rate)
    done = 0
    while done < total:
        count = min(per_frame, total - done)
        step = 2 * math.pi * frequency / rate
        samples = array("f", (0.3 * math.sin(step * (done + i)) for i in range(count)))
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = rate
        frame.pts = done
        frame.time_base = Fraction(1, rate)
        yield frame
        done += count


def _encode_audio(container, stream, seconds: float) -> None:
    for frame in _tone(seconds, stream.codec_context.sample_rate):
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def audio(
    seconds: float = 2.0, container: str = "webm", codec: str | None = None, live: bool = False
) -> bytes:
    """An audio-only file: "webm" (Opus, as Chromium's MediaRecorder writes), "ogg" (Opus),
    "mp4" / "m4a" (AAC, as Safari writes), "mka" (Opus in Matroska). `live` (WebM) writes it as
    a recorder streams it: no duration, no cues, element sizes unknown — its length is known only
    from its packets."""
    fmt, default_codec, rate = {
        "webm": ("webm", "libopus", 48_000),
        "ogg": ("ogg", "libopus", 48_000),
        "mp4": ("mp4", "aac", 44_100),
        "m4a": ("ipod", "aac", 44_100),
        "mka": ("matroska", "libopus", 48_000),  # Matroska's own DocType, not "webm"
    }[container]
    out = io.BytesIO()
    with av.open(out, "w", format=fmt, options={"live": "1"} if live else {}) as box:
        stream = box.add_stream(codec or default_codec, rate=rate)
        stream.layout = "mono"
        _encode_audio(box, stream, seconds)
    return out.getvalue()


def video(
    seconds: float = 1.0,
    container: str = "mp4",
    size: tuple[int, int] = (64, 48),
    fps: int = 10,
    rotate: int = 0,
    with_audio: bool = False,
) -> bytes:
    """A video: "mp4" (H.264), "webm" (VP8), "mov" (H.264), "mkv" (H.264 in Matroska). `rotate`
    (90, 180, 270: clockwise, as a phone's `rotate` tag says) writes the track's display matrix
    the way phones do (MP4 and MOV only; Matroska has no such matrix); `with_audio` adds a tone
    track. Each frame has an orange bar on its left growing to the right with time: a poster's
    orientation and moment can be told."""
    fmt, codec = {
        "mp4": ("mp4", "libx264"),
        "webm": ("webm", "libvpx"),
        "mov": ("mov", "libx264"),
        "mkv": ("matroska", "libx264"),
    }[container]
    width, height = size
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as box:
        stream = box.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotate:
            if container in ("webm", "mkv"):
                raise ValueError("Matroska carries no display matrix")
            stream.set_display_rotation(-rotate)  # PyAV counts counter-clockwise
        sound = None
        if with_audio:
            sound = box.add_stream("libopus" if container in ("webm", "mkv") else "aac", rate=48_000)
            sound.layout = "mono"
        for index in range(int(seconds * fps)):
            picture = Image.new("RGB", (width, height), (20, 40, 60))
            bar = max(1, (index * width) // max(1, int(seconds * fps)))
            picture.paste((200, 60, 30), (0, 0, bar, height))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode(None):
            box.mux(packet)
        if sound is not None:
            _encode_audio(box, sound, seconds)
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` of a file, as an interrupted upload or recording leaves it."""
    return data[: max(1, int(len(data) * keep))]
