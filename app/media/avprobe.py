"""Audio and video read by PyAV (FFmpeg's libraries): the streams a file carries, its duration,
its size as shown, a poster frame, and whether it really decodes.

Only the media worker (app/media/worker.py) calls this module, on untrusted files, so FFmpeg is
held short:

- a container is opened from a file object (no URL, so no protocol: nothing is fetched) with its
  demuxer named after what `inspect.sniff` found in the leading bytes (`mov` for MP4/MOV/M4A,
  `matroska` for WebM, `ogg` for Ogg): FFmpeg never guesses the format itself;
- every decoder runs on one thread (no thread pool, whose stacks would eat the worker's
  RLIMIT_AS, and no work outside RLIMIT_CPU's accounting of this process);
- FFmpeg's messages at error level or worse are watched while a file is read: a demuxer that
  reports "File ended prematurely" or a "partial file" is reading a damaged file, even when it
  then stops quietly as if at the end.

The module raises its own exceptions (`Damaged`, `TooLong`); `inspect.py` turns them into the
answers a client sees.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import av.logging
from av.codec.context import ThreadType
from av.stream import Disposition
from PIL import Image

# The FFmpeg demuxer for each family of containers `inspect.sniff` recognises.
DEMUXERS = {"mp4": "mov", "mov": "mov", "webm": "matroska", "ogg": "ogg"}
# Audio codecs a voice message may carry, by family (what browsers record and play).
VOICE_CODECS = {
    "webm": {"opus", "vorbis"},
    "ogg": {"opus", "vorbis", "flac"},
    "mp4": {"aac", "opus", "mp3", "flac"},
}
# The codecs WebM allows (FFmpeg's canonical names). The EBML magic announces any Matroska file
# and FFmpeg's demuxer does not tell its DocType ("webm" or "matroska"), so a file of the family
# is WebM when its tracks are: an MKV with H.264 is not, a Matroska file with Opus sound is
# (and browsers play it as audio/webm).
WEBM_CODECS = {"video": {"vp8", "vp9", "av1"}, "audio": {"opus", "vorbis"}}
# The poster is the first frame at or after this many seconds (else the video's first frame).
POSTER_AT = 0.5
# A recording shorter than this holds no message.
MIN_SECONDS = 0.1
# How far the decoded audio may fall short of the length the container declares.
SHORTFALL = 0.15
# The largest Ogg page: a 27-byte header, 255 lacing values, 255 segments of 255 bytes.
OGG_MAX_PAGE = 27 + 255 + 255 * 255
OGG_END_OF_STREAM = 0x04


class Damaged(Exception):
    """The file does not open, does not hold together or does not decode."""


class TooLong(Exception):
    """The audio lasts longer than allowed."""


@dataclass(frozen=True)
class Streams:
    video: bool
    audio: bool
    # FFmpeg's canonical codec names of the video tracks (not cover art) and the audio tracks.
    video_codecs: frozenset[str]
    audio_codecs: frozenset[str]

    def webm_codecs(self) -> bool:
        """Whether every video and audio track is in a codec WebM allows."""
        return self.video_codecs <= WEBM_CODECS["video"] and self.audio_codecs <= WEBM_CODECS["audio"]


@dataclass
class VideoFacts:
    width: int
    height: int
    duration: float | None
    poster: Image.Image


@contextmanager
def _opened(source: Path, family: str):
    """The container, read through a file object by the demuxer of its sniffed family, and the
    list FFmpeg's error messages land in while it is read. Any FFmpeg failure while it is open
    (in the caller's `with` block too) is `Damaged`."""
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # else the same complaint about a second file is dropped
    with av.logging.Capture() as messages, open(source, "rb") as handle:
        try:
            with av.open(handle, "r", format=DEMUXERS[family], metadata_errors="ignore") as box:
                yield box, messages
        except MemoryError:
            raise  # over the worker's memory budget (av.MemoryError is one too): not a damaged file
        except (av.FFmpegError, UnicodeDecodeError, ValueError, OverflowError, IndexError) as error:
            raise Damaged(str(error)) from None


def _errors(messages: list) -> list:
    return [entry for entry in messages if entry[0] is not None and entry[0] <= av.logging.ERROR]


def _video_streams(box) -> list:
    """Video tracks, not the cover art an audio file may carry as a one-picture stream."""
    return [s for s in box.streams.video if not s.disposition & Disposition.attached_pic]


def _one_thread(stream) -> None:
    context = stream.codec_context
    context.thread_count = 1
    context.thread_type = ThreadType.NONE


def streams(source: Path, family: str) -> Streams:
    """Which kinds of track the file carries (nothing decoded)."""
    with _opened(source, family) as (box, _):
        videos = frozenset(_codec(s) for s in _video_streams(box))
        sounds = frozenset(_codec(s) for s in box.streams.audio)
        return Streams(bool(videos), bool(sounds), videos, sounds)


def _codec(stream) -> str:
    codec = stream.codec_context.codec
    return codec.canonical_name if codec is not None else "unknown"


def _declared(box) -> float | None:
    return box.duration / 1_000_000 if box.duration and box.duration > 0 else None


def measure_audio(source: Path, family: str, max_seconds: float) -> float:
    """The length of the first audio track in seconds, from decoding all of it.

    `Damaged` when it does not decode, FFmpeg reports an error, nothing decodes, it is shorter
    than MIN_SECONDS, or it ends well before the length its container declares (a cut file);
    `TooLong` as soon as it is known to last more than `max_seconds`."""
    with _opened(source, family) as (box, messages):
        if not box.streams.audio:
            raise Damaged("no audio track")
        stream = box.streams.audio[0]
        declared = _declared(box)
        if declared is not None and declared > max_seconds:
            raise TooLong
        _one_thread(stream)
        samples = 0
        rate = None
        for packet in box.demux(stream):
            for frame in packet.decode():
                rate = frame.sample_rate
                samples += frame.samples
                if samples / rate > max_seconds:
                    raise TooLong
        if _errors(messages) or not rate:
            raise Damaged("FFmpeg reported an error, or nothing decoded")
        seconds = samples / rate
        if seconds < MIN_SECONDS:
            raise Damaged("too short")
        if declared is not None and seconds < declared - SHORTFALL:
            raise Damaged("ends before its declared length")
    if family == "ogg" and not _ogg_complete(source):
        raise Damaged("the last Ogg page is cut or not the end of the stream")
    return round(seconds, 3)


def check_packets(source: Path, family: str) -> None:
    """Read every packet (nothing decoded): `Damaged` when the container does not hold together
    (for Ogg, also when its last page is cut or is not the end of the stream)."""
    with _opened(source, family) as (box, messages):
        if not box.streams:
            raise Damaged("no tracks")
        for _ in box.demux():
            pass
        if _errors(messages):
            raise Damaged("FFmpeg reported an error")
    if family == "ogg" and not _ogg_complete(source):
        raise Damaged("the last Ogg page is cut or not the end of the stream")


def read_video(source: Path, family: str) -> VideoFacts:
    """Size as shown, duration and an upright poster of the first video track.

    Frames are decoded only up to the poster (POSTER_AT seconds in); every packet of every track
    is read, so a container cut short or broken further on is `Damaged` too. A full decode of a
    long video would cost more CPU than an upload may: a picture damaged after the poster is not
    noticed."""
    with _opened(source, family) as (box, messages):
        videos = _video_streams(box)
        if not videos:
            raise Damaged("no video track")
        stream = videos[0]
        _one_thread(stream)
        first = poster = None
        end = 0.0
        # demux() ends each track with an empty packet that drains its decoder.
        for packet in box.demux():
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if poster is not None or packet.stream.index != stream.index:
                continue
            for frame in packet.decode():
                if first is None:
                    first = frame
                if frame.time is not None and frame.time >= POSTER_AT:
                    poster = frame
                    break
        demuxer = set(box.format.name.split(","))
        demuxer_errors = [entry for entry in _errors(messages) if demuxer & set((entry[1] or "").split(","))]
        if demuxer_errors:
            raise Damaged(demuxer_errors[0][2])
        chosen = poster or first
        if chosen is None:
            raise Damaged("no picture decodes")
        picture = _upright(chosen.to_image(), chosen.rotation)
        duration = _declared(box) or (end if end > 0 else None)
    width, height = picture.size
    return VideoFacts(width, height, round(duration, 3) if duration else None, picture)


def _upright(picture: Image.Image, rotation: float | int | None) -> Image.Image:
    """The frame as it is shown: `rotation` is the display matrix's turn in degrees,
    counter-clockwise (FFmpeg's sign); a phone's portrait video says -90."""
    turn = round((rotation or 0) / 90) % 4
    transposes = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
    return picture.transpose(transposes[turn]) if turn else picture


def _ogg_complete(source: Path) -> bool:
    """Whether an Ogg file ends with its end-of-stream page, whole. FFmpeg's Ogg demuxer drops
    a cut last page silently; a recording interrupted mid-write ends inside a page, or on a page
    that is not the last. (Only the page at the file's end is looked at: its header's flags,
    and the lengths that say where it ends.)"""
    size = source.stat().st_size
    with open(source, "rb") as handle:
        handle.seek(max(0, size - OGG_MAX_PAGE))
        tail = handle.read()
    at = tail.rfind(b"OggS")
    while at >= 0:
        header = tail[at : at + 27]
        if len(header) == 27:
            lacing = tail[at + 27 : at + 27 + header[26]]
            if len(lacing) == header[26] and at + 27 + len(lacing) + sum(lacing) == len(tail):
                return bool(header[5] & OGG_END_OF_STREAM)
        at = tail.rfind(b"OggS", 0, at)
    return False
