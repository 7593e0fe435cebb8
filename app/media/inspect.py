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
- Videos (MP4, MOV, WebM) are stored as sent. Width, height and duration are read from the
  container headers by the small parsers below: the `moov` box for MP4/MOV (`mvhd` duration,
  the `tkhd` size of the track whose handler is `vide`, turned by its rotation matrix), the
  EBML `Info` and `Tracks` elements for WebM (a WebM written by a browser's MediaRecorder
  often has no duration: it is then null). Nothing decodes frames, so there is no thumbnail.
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
import math
import re
import struct
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
MAX_BOXES = 10_000

# Markup a browser would treat as a document. Binary files are searched for markers long
# enough never to appear by chance (images whole); text must not start an XML document either
# (XMP metadata inside images and PDFs may).
TAGS = rb"!doctype|html|head|body|script|iframe|svg|object|embed"
EMBEDDED_MARKUP = re.compile(rb"<(?:" + TAGS + rb")", re.IGNORECASE)
DOCUMENT_MARKUP = re.compile(rb"<(?:" + TAGS + rb"|\?xml)", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class FileType:
    kind: str  # image, video or file
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
        (JPEG, PNG, GIF, WEBP, MP4, MOV, WEBM, PDF, ZIP)
        + tuple(OOXML.values())
        + tuple(ZIP_MIMETYPES.values())
        + TEXT_TYPES
    )
}
PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF", WEBP: "WEBP"}
MP4_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"M4V ", b"mmp4",
    b"MSNV",
}  # fmt: skip
QUICKTIME_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip"}


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
        if file_type is None or kind not in ({"image", "avatar"} if file_type is WEBP else {file_type.kind}):
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


def inspect(source: Path, purpose: str, limits: Limits, workdir: Path) -> Media:
    """Decide what `source` is and prepare it for storage; raise `ApiError` to refuse it.

    `purpose` is "message" or "avatar". New files are written into `workdir`.
    """
    size = source.stat().st_size
    if size == 0:
        raise ApiError("empty_file", "The file is empty.", 400)
    with open(source, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    sniffed = sniff(head)
    kind = sniffed.kind if sniffed else "file"
    if purpose == "avatar" and kind != "image":
        raise unsupported("An avatar must be a JPEG, PNG, GIF or WebP image.")
    limit = limits.bytes_for(kind)
    if size > limit:
        raise ApiError(
            "file_too_large",
            _l("This %(kind)s is over the limit of %(limit)s bytes.", kind=word(kind), limit=limit),
            413,
            {"file": _l("≤ %(limit)s", limit=limit)},
        )
    if sniffed is None:
        return Media("file", _text_type(source, head), source)
    if EMBEDDED_MARKUP.search(head[:SNIFF_BYTES]):
        raise unsafe()
    if kind == "image":
        return _image(sniffed, source, limits, workdir, avatar=purpose == "avatar")
    if kind == "video":
        return _video(sniffed, source, size)
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
    if head[4:8] in QUICKTIME_FIRST_ATOMS and len(head) >= 8 and struct.unpack(">I", head[:4])[0] >= 8:
        return MOV
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM
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


# --- videos --------------------------------------------------------------------------------


class _Broken(Exception):
    """The container's structure does not hold together."""


def _video(kind: FileType, source: Path, size: int) -> Media:
    try:
        with open(source, "rb") as handle:
            if kind is WEBM:
                width, height, duration = _probe_webm(handle, size)
            else:
                width, height, duration = _probe_mp4(handle, size)
    except (_Broken, struct.error, IndexError):
        raise invalid_video() from None
    return Media("video", kind, source, width, height, duration)


def _read(handle, start: int, end: int, limit: int) -> bytes:
    handle.seek(start)
    return handle.read(min(end - start, limit))


def _boxes(handle, start: int, end: int):
    """(type, payload start, end) of each ISO-BMFF box between start and end."""
    position = start
    for _ in range(MAX_BOXES):
        if position + 8 > end:
            return
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            raise _Broken
        size, name = struct.unpack(">I4s", header)
        offset = 8
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
            offset = 16
        elif size == 0:
            size = end - position
        if size < offset or position + size > end:
            raise _Broken
        yield name, position + offset, position + size
        position += size
    raise _Broken


def _probe_mp4(handle, size: int) -> tuple[int, int, float | None]:
    """Width and height of the first video track, and the movie's duration, from `moov`."""
    moov = next(((start, end) for name, start, end in _boxes(handle, 0, size) if name == b"moov"), None)
    if moov is None:
        raise _Broken
    duration = None
    dimensions = None
    for name, start, end in _boxes(handle, *moov):
        if name == b"mvhd":
            duration = _mvhd_duration(_read(handle, start, end, 32))
        elif name == b"trak" and dimensions is None:
            dimensions = _video_track_size(handle, start, end)
    if dimensions is None:
        raise _Broken
    return *dimensions, duration


def _mvhd_duration(data: bytes) -> float | None:
    if data[0] == 1:
        timescale, duration = struct.unpack(">IQ", data[20:32])
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        timescale, duration = struct.unpack(">II", data[12:20])
        unknown = 0xFFFFFFFF
    if timescale == 0 or duration in (0, unknown):
        return None
    return round(duration / timescale, 3)


def _video_track_size(handle, start: int, end: int) -> tuple[int, int] | None:
    header = handler = None
    for name, box_start, box_end in _boxes(handle, start, end):
        if name == b"tkhd":
            header = _read(handle, box_start, box_end, 96)
        elif name == b"mdia":
            for inner, inner_start, inner_end in _boxes(handle, box_start, box_end):
                if inner == b"hdlr":
                    handler = _read(handle, inner_start, inner_end, 12)[8:12]
    if handler != b"vide" or header is None:
        return None
    matrix = 52 if header[0] == 1 else 40
    a, b, _, c, d = struct.unpack(">5i", header[matrix : matrix + 20])
    width, height = (value >> 16 for value in struct.unpack(">II", header[matrix + 36 : matrix + 44]))
    if width == 0 or height == 0:
        return None
    if a == 0 and d == 0 and b != 0 and c != 0:  # turned by a quarter: shown the other way round
        width, height = height, width
    return width, height


EBML_HEADER, EBML_DOCTYPE = 0x1A45DFA3, 0x4282
SEGMENT, INFO, TRACKS, CLUSTER = 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
TIMECODE_SCALE, DURATION = 0x2AD7B1, 0x4489
TRACK_ENTRY, TRACK_TYPE, VIDEO, PIXEL_WIDTH, PIXEL_HEIGHT = 0xAE, 0x83, 0xE0, 0xB0, 0xBA


def _vint(handle, *, marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer: (value, length, all value bits set)."""
    first = handle.read(1)
    if not first or first[0] == 0:
        raise _Broken
    length = 9 - first[0].bit_length()
    rest = handle.read(length - 1)
    if len(rest) < length - 1:
        raise _Broken
    value = first[0] if marker else first[0] & ((1 << (8 - length)) - 1)
    for byte in rest:
        value = (value << 8) | byte
    return value, length, not marker and value == (1 << (7 * length)) - 1


def _elements(handle, start: int, end: int):
    """(id, data start, data end) of each EBML element between start and end. An element of
    unknown size (a live stream's) runs to `end` and is the last one."""
    position = start
    for _ in range(MAX_BOXES):
        if position >= end:
            return
        handle.seek(position)
        element, id_length, _ = _vint(handle, marker=True)
        size, size_length, unknown = _vint(handle, marker=False)
        data = position + id_length + size_length
        stop = end if unknown else data + size
        if data > end or stop > end:
            raise _Broken
        yield element, data, stop
        if unknown:
            return
        position = stop
    raise _Broken


def _uint(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _probe_webm(handle, size: int) -> tuple[int, int, float | None]:
    """Width and height of the first video track and the duration, from `Info` and `Tracks`."""
    top = _elements(handle, 0, size)
    element, start, end = next(top, (None, 0, 0))
    if element != EBML_HEADER:
        raise _Broken
    doctype = next(
        (_read(handle, s, e, 16) for i, s, e in _elements(handle, start, end) if i == EBML_DOCTYPE), None
    )
    if doctype != b"webm":
        raise _Broken
    segment = next(((s, e) for i, s, e in top if i == SEGMENT), None)
    if segment is None:
        raise _Broken
    scale, ticks, dimensions = 1_000_000, None, None
    for element, start, end in _elements(handle, *segment):
        if element == INFO:
            for child, child_start, child_end in _elements(handle, start, end):
                if child == TIMECODE_SCALE:
                    scale = _uint(_read(handle, child_start, child_end, 8))
                elif child == DURATION:
                    raw = _read(handle, child_start, child_end, 8)
                    ticks = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
        elif element == TRACKS:
            for child, child_start, child_end in _elements(handle, start, end):
                if child == TRACK_ENTRY and dimensions is None:
                    dimensions = _webm_video_size(handle, child_start, child_end)
        elif element == CLUSTER:
            break
    if dimensions is None:
        raise _Broken
    seconds = ticks * scale / 1e9 if ticks is not None else 0.0
    duration = round(seconds, 3) if math.isfinite(seconds) and seconds > 0 else None
    return *dimensions, duration


def _webm_video_size(handle, start: int, end: int) -> tuple[int, int] | None:
    is_video, width, height = False, 0, 0
    for element, element_start, element_end in _elements(handle, start, end):
        if element == TRACK_TYPE:
            is_video = _uint(_read(handle, element_start, element_end, 8)) == 1
        elif element == VIDEO:
            for child, child_start, child_end in _elements(handle, element_start, element_end):
                if child == PIXEL_WIDTH:
                    width = _uint(_read(handle, child_start, child_end, 8))
                elif child == PIXEL_HEIGHT:
                    height = _uint(_read(handle, child_start, child_end, 8))
    return (width, height) if is_video and width and height else None
