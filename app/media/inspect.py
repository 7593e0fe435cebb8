"""Deciding what an upload is from its bytes alone, and making it safe to store and serve.

The file's name and the client's Content-Type are never consulted: the type comes from the
leading magic bytes, then each kind is checked by what can really read it.

- Images (JPEG, PNG, GIF, WebP) are opened by Pillow restricted to that one format, their size
  is checked against `MAX_IMAGE_PIXELS` before any pixel is decoded (a decompression bomb is
  refused), an animation's frame count against `MAX_ANIMATION_FRAMES` and its frames × pixels
  against `MAX_ANIMATION_PIXELS` before any frame is decoded; then it is fully decoded (a
  truncated or corrupt file is refused) and written anew: EXIF (GPS included), XMP and comments
  are dropped, the EXIF orientation is applied, animation is kept. A WebP thumbnail with a
  long edge of 400 px is made; avatars become squares.
- Videos (MP4, MOV, WebM) are stored as sent. PyAV (FFmpeg's libraries, app/media/avprobe.py)
  opens them with the demuxer of the sniffed family, reads every packet (a container cut short
  or broken is refused), decodes frames up to a poster half a second in, turned upright by the
  display rotation and saved as a WebP with a long edge of 400 px; width and height are the
  shown (turned) size; the duration is the container's, else the end of its last packet.
  WebM's magic is any Matroska file's: one is taken as WebM only when its tracks are in WebM's
  codecs (VP8, VP9, AV1; Opus, Vorbis), else it is refused (an MKV with H.264).
- Audio: a voice recording (`purpose=voice`) must be an audio-only WebM, Ogg or MP4/M4A. It is
  decoded whole (at most VOICE_MAX_SECONDS, cheap): its length is measured, never taken from the
  client, and a file that does not decode or ends early is refused. Any other audio-only file
  in one of those containers is accepted as a file (a download), its packets read.
- Files: PDF, ZIP (and the office formats built on it: docx, xlsx, pptx, odt, ods, odp, epub)
  and plain text (UTF-8 or GB18030, without control characters). Everything else is refused.

A file that also carries HTML, SVG or script markup in its first kilobyte (where browsers
sniff) is refused, and so is an image with such markup anywhere: that is how image/HTML
polyglots are made.

This module does no database or Flask work: the server runs `inspect` in a media worker
process (app/media/worker.py), which the operating system limits in memory and CPU time.
"""

from __future__ import annotations

import codecs
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from app.errors import ApiError
from app.locales import N_, _l, word

log = logging.getLogger(__name__)

THUMB_EDGE = 400
AVATAR_EDGE = 512
AVATAR_THUMB_EDGE = 128
# An animation with more frames than this is refused (each frame costs time however small).
MAX_ANIMATION_FRAMES = 1000
HEAD_BYTES = 4096
SNIFF_BYTES = 1024
CHUNK = 1 << 20
# Seconds a voice recording may run over VOICE_MAX_SECONDS (encoders pad the last frame).
VOICE_TOLERANCE = 0.5

# Markup a browser would treat as a document. Binary files are searched for markers long
# enough never to appear by chance (images whole); text must not start an XML document either
# (XMP metadata inside images and PDFs may).
TAGS = rb"!doctype|html|head|body|script|iframe|svg|object|embed"
EMBEDDED_MARKUP = re.compile(rb"<(?:" + TAGS + rb")", re.IGNORECASE)
DOCUMENT_MARKUP = re.compile(rb"<(?:" + TAGS + rb"|\?xml)", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class FileType:
    kind: str  # image, video, audio or file
    mime: str
    ext: str
    # Other name endings that mean this type: a download keeps such a name as it is.
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.ext, *self.aliases)


JPEG = FileType("image", "image/jpeg", "jpg", ("jpeg", "jpe", "jfif"))
PNG = FileType("image", "image/png", "png")
GIF = FileType("image", "image/gif", "gif")
WEBP = FileType("image", "image/webp", "webp")
MP4 = FileType("video", "video/mp4", "mp4", ("m4v",))
MOV = FileType("video", "video/quicktime", "mov", ("qt",))
WEBM = FileType("video", "video/webm", "webm")
AUDIO_WEBM = FileType("audio", "audio/webm", "webm")
AUDIO_OGG = FileType("audio", "audio/ogg", "ogg", ("oga", "opus"))
AUDIO_MP4 = FileType("audio", "audio/mp4", "m4a", ("mp4",))
PDF = FileType("file", "application/pdf", "pdf")
ZIP = FileType("file", "application/zip", "zip")
OOXML = {
    "word/": FileType(
        "file", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"
    ),
    "xl/": FileType("file", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "ppt/": FileType(
        "file", "application/vnd.openxmlformats-officedocument.presentationml.presentation", "pptx"
    ),
}
ZIP_MIMETYPES = {
    t.mime: t
    for t in (
        FileType("file", "application/vnd.oasis.opendocument.text", "odt"),
        FileType("file", "application/vnd.oasis.opendocument.spreadsheet", "ods"),
        FileType("file", "application/vnd.oasis.opendocument.presentation", "odp"),
        FileType("file", "application/epub+zip", "epub"),
    )
}
TEXT_ALIASES = ("text", "md", "markdown", "csv", "tsv", "log", "json", "yaml", "yml", "ini", "conf")
TEXT_TYPES = tuple(
    FileType("file", f"text/plain; charset={charset}", "txt", TEXT_ALIASES)
    for charset in ("utf-8", "gb18030")
)
KNOWN_TYPES = {
    t.mime: t
    for t in (
        (JPEG, PNG, GIF, WEBP, MP4, MOV, WEBM, AUDIO_WEBM, AUDIO_OGG, AUDIO_MP4, PDF, ZIP)
        + tuple(OOXML.values())
        + tuple(ZIP_MIMETYPES.values())
        + TEXT_TYPES
    )
}
PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF", WEBP: "WEBP"}
MP4_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"M4V ", b"mmp4",
    b"MSNV", b"M4A ", b"M4B ",
}  # fmt: skip
QUICKTIME_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip"}
# The containers PyAV reads (app/media/avprobe.py), by the type their leading bytes announce:
# the family names the demuxer, and the type an audio-only file of the family is served as.
AV_FAMILIES = {MP4: "mp4", MOV: "mov", WEBM: "webm", AUDIO_OGG: "ogg"}
AUDIO_TYPES = {"mp4": AUDIO_MP4, "mov": AUDIO_MP4, "webm": AUDIO_WEBM, "ogg": AUDIO_OGG}
# The kinds an upload of each kind of type may be: an audio type is a voice recording (`audio`)
# or any other sound sent as a download (`file`); a WebP is also what avatars are stored as.
KINDS_OF_TYPE = {"image": {"image"}, "video": {"video"}, "audio": {"audio", "file"}, "file": {"file"}}


@dataclass(frozen=True)
class Limits:
    image_bytes: int
    video_bytes: int
    file_bytes: int
    image_pixels: int
    animation_pixels: int
    audio_bytes: int
    audio_seconds: int

    @classmethod
    def from_config(cls, config) -> Limits:
        return cls(
            config["MAX_IMAGE_BYTES"],
            config["MAX_VIDEO_BYTES"],
            config["MAX_FILE_BYTES"],
            config["MAX_IMAGE_PIXELS"],
            config["MAX_ANIMATION_PIXELS"],
            config["MAX_AUDIO_BYTES"],
            config["VOICE_MAX_SECONDS"],
        )

    def bytes_for(self, kind: str) -> int:
        return {"image": self.image_bytes, "video": self.video_bytes, "audio": self.audio_bytes}.get(
            kind, self.file_bytes
        )


@dataclass
class Media:
    """What an upload turned out to be, and the files to store (inside the work folder)."""

    kind: str
    type: FileType
    path: Path
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumb: Path | None = None

    def to_answer(self, workdir: Path) -> dict:
        """The facts as JSON for the parent process; files by their names inside `workdir`."""
        return {
            "kind": self.kind,
            "mime": self.type.mime,
            "path": self.path.relative_to(workdir).as_posix(),
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "thumb": self.thumb.relative_to(workdir).as_posix() if self.thumb else None,
        }

    @classmethod
    def from_answer(cls, answer: dict, workdir: Path) -> Media:
        """The facts a worker sent, believed only as far as they name a known type and files
        inside `workdir` (a worker handles hostile input; it never chooses a served type)."""
        file_type = KNOWN_TYPES.get(answer.get("mime"))
        kind = answer.get("kind")
        allowed = set() if file_type is None else KINDS_OF_TYPE[file_type.kind]
        if kind not in (allowed | {"avatar"} if file_type is WEBP else allowed):
            raise ValueError(f"a worker answered an unknown type: {answer.get('mime')!r}")

        def inside(name) -> Path | None:
            if name is None:
                return None
            path = workdir / name
            if not isinstance(name, str) or "/" in name or name in ("", ".", "..") or not path.is_file():
                raise ValueError(f"a worker answered a file outside its folder: {name!r}")
            return path

        def number(value, kinds):
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) or value < 0):
                raise ValueError(f"a worker answered a bad figure: {value!r}")
            return value

        return cls(
            kind,
            file_type,
            inside(answer.get("path")),
            number(answer.get("width"), int),
            number(answer.get("height"), int),
            number(answer.get("duration"), (int, float)),
            inside(answer.get("thumb")),
        )


def unsupported(message: str = N_("This type of file is not accepted.")) -> ApiError:
    return ApiError("unsupported_type", message, 415)


def unsafe() -> ApiError:
    return ApiError(
        "unsafe_content", "This file also carries HTML or script markup; it is not accepted.", 415
    )


def invalid_image() -> ApiError:
    return ApiError("invalid_image", "The image is damaged or incomplete.", 400)


def invalid_video() -> ApiError:
    return ApiError("invalid_video", "The video could not be read, or has no picture.", 400)


def invalid_audio() -> ApiError:
    return ApiError("invalid_audio", "The recording is damaged, incomplete or empty.", 400)


def not_audio(field: str = N_("audio only: WebM, Ogg or MP4")) -> ApiError:
    return ApiError(
        "not_audio",
        "A voice message must be an audio recording in WebM, Ogg or MP4, without video.",
        415,
        {"file": field},
    )


def too_large(kind: str, limit: int) -> ApiError:
    return ApiError(
        "file_too_large",
        _l("This %(kind)s is over the limit of %(limit)s bytes.", kind=word(kind), limit=limit),
        413,
        {"file": _l("≤ %(limit)s", limit=limit)},
    )


def inspect(source: Path, purpose: str, limits: Limits, workdir: Path) -> Media:
    """Decide what `source` is and prepare it for storage; raise `ApiError` to refuse it.

    `purpose` is "message", "avatar" or "voice". New files are written into `workdir`.
    """
    size = source.stat().st_size
    if size == 0:
        raise ApiError("empty_file", "The file is empty.", 400)
    with open(source, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    sniffed = sniff(head)
    if purpose == "voice":
        if size > limits.audio_bytes:
            raise too_large("audio", limits.audio_bytes)
        if sniffed not in (MP4, WEBM, AUDIO_OGG):
            raise not_audio()
        if EMBEDDED_MARKUP.search(head[:SNIFF_BYTES]):
            raise unsafe()
        return _voice(sniffed, source, limits)
    kind = sniffed.kind if sniffed else "file"
    if purpose == "avatar" and kind != "image":
        raise unsupported("An avatar must be a JPEG, PNG, GIF or WebP image.")
    if sniffed is AUDIO_OGG:  # an Ogg file is sound (an Ogg video is not accepted): a download
        kind = "file"
    if size > limits.bytes_for(kind):
        raise too_large(kind, limits.bytes_for(kind))
    if sniffed is None:
        return Media("file", _text_type(source, head), source)
    if EMBEDDED_MARKUP.search(head[:SNIFF_BYTES]):
        raise unsafe()
    if kind == "image":
        return _image(sniffed, source, limits, workdir, avatar=purpose == "avatar")
    if sniffed in AV_FAMILIES:
        return _audio_or_video(sniffed, source, size, limits, workdir)
    if sniffed is ZIP:
        return Media("file", _zip_type(source), source)
    return Media("file", sniffed, source)


def sniff(head: bytes) -> FileType | None:
    """The type the leading bytes announce, or None (perhaps text)."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return MOV
        return MP4 if brand in MP4_BRANDS else None
    if head[4:8] in QUICKTIME_FIRST_ATOMS and int.from_bytes(head[:4], "big") >= 8:
        return MOV
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM
    if head.startswith(b"OggS"):
        return AUDIO_OGG
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    return None


# --- text ----------------------------------------------------------------------------------


def _text_type(source: Path, head: bytes) -> FileType:
    """Plain text in UTF-8 or GB18030 with no control characters; markup is refused."""
    if DOCUMENT_MARKUP.search(head[:SNIFF_BYTES]):
        raise unsupported("HTML, SVG and XML files are not accepted.")
    for charset in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(charset)()
        try:
            with open(source, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    if CONTROL.search(decoder.decode(chunk)):
                        raise unsupported()
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return FileType("file", f"text/plain; charset={charset}", "txt", TEXT_ALIASES)
    raise unsupported()


# --- archives ------------------------------------------------------------------------------


def _zip_type(source: Path) -> FileType:
    """A ZIP archive, or the office document it really is."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = archive.namelist()
            if "[Content_Types].xml" in names:
                for prefix, office in OOXML.items():
                    if any(name.startswith(prefix) for name in names):
                        return office
            if names and names[0] == "mimetype" and archive.getinfo("mimetype").file_size <= 100:
                declared = archive.read("mimetype").decode("ascii", "replace").strip()
                return ZIP_MIMETYPES.get(declared, ZIP)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise ApiError("invalid_file", "The archive is damaged.", 400) from None
    return ZIP


# --- images --------------------------------------------------------------------------------


def _image(kind: FileType, source: Path, limits: Limits, workdir: Path, *, avatar: bool) -> Media:
    with open(source, "rb") as handle:
        tail = b""
        while chunk := handle.read(CHUNK):
            if EMBEDDED_MARKUP.search(tail + chunk):
                raise unsafe()
            tail = chunk[-16:]
    formats = [PILLOW_FORMATS[kind]]
    try:
        with Image.open(source, formats=formats) as image:
            _check_pixels(image.size, 1, limits)
            image.verify()
        with Image.open(source, formats=formats) as image:
            frames = getattr(image, "n_frames", 1) if kind is not JPEG else 1
            _check_pixels(image.size, frames, limits)
            image.load()
            if avatar:
                return _avatar(image, workdir)
            return _rewrite(kind, image, frames, workdir)
    except (ApiError, MemoryError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(limits) from None
    except Exception:
        # Pillow reports damaged files with many exception types; all mean the same here.
        log.info("image refused as damaged", exc_info=True)
        raise invalid_image() from None


def _too_many_pixels(limits: Limits) -> ApiError:
    return ApiError(
        "image_too_large",
        _l("The image has too many pixels (at most %(pixels)s).", pixels=limits.image_pixels),
        400,
        {"file": "too many pixels"},
    )


def _check_pixels(size: tuple[int, int], frames: int, limits: Limits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise invalid_image()
    if width * height > limits.image_pixels:
        raise _too_many_pixels(limits)
    if frames > MAX_ANIMATION_FRAMES or width * height * frames > limits.animation_pixels:
        raise ApiError(
            "animation_too_large",
            _l(
                "The animation is too large: at most %(frames)s frames and %(pixels)s pixels over all"
                " its frames.",
                frames=MAX_ANIMATION_FRAMES,
                pixels=limits.animation_pixels,
            ),
            400,
            {
                "file": _l(
                    "%(frames)s frames of %(width)s×%(height)s", frames=frames, width=width, height=height
                )
            },
        )


def _rewrite(kind: FileType, image: Image.Image, frames: int, workdir: Path) -> Media:
    """Write the image anew without metadata, upright; animations keep their frames."""
    fmt = PILLOW_FORMATS[kind]
    main = workdir / f"main.{kind.ext}"
    icc = image.info.get("icc_profile")
    options = {"icc_profile": icc} if icc else {}
    if frames > 1:
        # Frames are read from the source as they are written; only timing and transparency
        # of the source's own info survive (comments are blanked explicitly).
        image.save(main, fmt, save_all=True, comment=b"", **options)
        image.seek(0)
        upright = image.copy()
    else:
        upright = ImageOps.exif_transpose(image)
        upright.info = {key: image.info[key] for key in ("transparency", "background") if key in image.info}
        if fmt == "JPEG":
            if upright.mode not in ("L", "RGB", "CMYK"):
                upright = upright.convert("RGB")
            options["quality"] = 90
        elif fmt == "WEBP":
            options["quality"] = 90
        upright.save(main, fmt, **options)
    thumb = workdir / "thumb.webp"
    _thumbnail(upright, thumb, square=False)
    width, height = upright.size
    return Media("image", kind, main, width, height, thumb=thumb)


def _avatar(image: Image.Image, workdir: Path) -> Media:
    """A square crop from the centre, at most 512 px, as WebP, with a 128 px thumbnail."""
    upright = ImageOps.exif_transpose(image)
    edge = min(*upright.size, AVATAR_EDGE)
    square = ImageOps.fit(_displayable(upright), (edge, edge), Image.Resampling.LANCZOS)
    main = workdir / "main.webp"
    square.save(main, "WEBP", quality=90)
    thumb = workdir / "thumb.webp"
    _thumbnail(square, thumb, square=True)
    return Media("avatar", WEBP, main, edge, edge, thumb=thumb)


def _displayable(image: Image.Image) -> Image.Image:
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _thumbnail(image: Image.Image, target: Path, *, square: bool) -> None:
    frame = _displayable(image)
    if square:
        edge = min(AVATAR_THUMB_EDGE, frame.width)
        frame = ImageOps.fit(frame, (edge, edge), Image.Resampling.LANCZOS)
    else:
        frame.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
    frame.save(target, "WEBP", quality=80)


# --- audio and video -----------------------------------------------------------------------


def _voice(sniffed: FileType, source: Path, limits: Limits) -> Media:
    """A voice recording: audio only, decoded whole, measured, within VOICE_MAX_SECONDS."""
    from app.media import avprobe

    family = AV_FAMILIES[sniffed]
    try:
        tracks = avprobe.streams(source, family)
        if tracks.video:
            raise not_audio(N_("carries a video track"))
        if not tracks.audio_codecs <= avprobe.VOICE_CODECS[family]:  # every track, not the first
            raise not_audio(N_("Opus, Vorbis, AAC, MP3 or FLAC audio"))
        duration = avprobe.measure_audio(source, family, limits.audio_seconds + VOICE_TOLERANCE)
    except avprobe.Damaged as error:
        log.info("voice recording refused as damaged: %s", error)
        raise invalid_audio() from None
    except avprobe.TooLong:
        raise ApiError(
            "audio_too_long",
            _l("A voice message is at most %(seconds)s seconds long.", seconds=limits.audio_seconds),
            400,
            {"file": _l("≤ %(seconds)s s", seconds=limits.audio_seconds)},
        ) from None
    return Media("audio", AUDIO_TYPES[family], source, duration=duration)


def _audio_or_video(sniffed: FileType, source: Path, size: int, limits: Limits, workdir: Path) -> Media:
    """A video with its poster, or (no video track) a sound file sent as a download."""
    from app.media import avprobe

    family = AV_FAMILIES[sniffed]
    damaged = invalid_audio if sniffed is AUDIO_OGG else invalid_video
    try:
        tracks = avprobe.streams(source, family)
        if family == "webm" and not tracks.webm_codecs():
            raise unsupported()  # a Matroska file (MKV, MKA) in codecs WebM does not allow
        if not tracks.video:
            if not tracks.audio:
                raise damaged()
            if size > limits.file_bytes:
                raise too_large("file", limits.file_bytes)
            damaged = invalid_audio
            avprobe.check_packets(source, family)
            return Media("file", AUDIO_TYPES[family], source)
        if sniffed is AUDIO_OGG:
            raise unsupported()
        facts = avprobe.read_video(source, family)
    except avprobe.Damaged as error:
        log.info("audio or video refused as damaged: %s", error)
        raise damaged() from None
    thumb = workdir / "thumb.webp"
    _thumbnail(facts.poster, thumb, square=False)
    return Media("video", sniffed, source, facts.width, facts.height, facts.duration, thumb)
