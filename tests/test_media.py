"""Uploads and media: real images made by Pillow and real videos made by PyAV (FFmpeg), refused
input that leaves nothing behind, media messages delivered live, and who may see what. Voice
recordings, posters and what PyAV reads: tests/test_media_av.py."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
import zlib
from datetime import timedelta
from functools import cache
from pathlib import Path

import av
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Message, Upload, utcnow
from config import BASE_DIR, Config, ConfigError
from tests.chat_helpers import connect
from tests.conftest import PASSWORD, server_env

# --- making real files ---------------------------------------------------------------------


def image_bytes(fmt: str = "JPEG", size=(1200, 800), color=(200, 30, 30), **options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, fmt, **options)
    return buffer.getvalue()


def noisy_jpeg(size=(400, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def jpeg_with_gps() -> bytes:
    """A phone photo: 1200×800 pixels, EXIF GPS position, orientation 6 (turn a quarter)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (30.0, 10.0, 48.0), 3: "E", 4: (120.0, 11.0, 24.0)})
    return image_bytes("JPEG", exif=exif, comment=b"taken at home")


def animated(fmt: str = "GIF") -> bytes:
    frames = [Image.new("RGB", (60, 40), (i * 60, 255 - i * 60, 90)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=120, loop=0)
    return buffer.getvalue()


@cache
def video_bytes(container: str) -> bytes:
    """A two-second 160×120 clip at 12 fps, encoded by FFmpeg (H.264, or VP8 for WebM)."""
    buffer = io.BytesIO()
    codec = "libvpx" if container == "webm" else "libx264"
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for index in range(24):
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), (index * 10, 120, 200)))
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def turned_a_quarter(data: bytes) -> bytes:
    """The same movie with its video track's matrix turned by 90°, as phones record portrait."""
    at = data.index(b"tkhd") + 4
    matrix = at + (52 if data[at] == 1 else 40)
    one = 1 << 16
    patched = struct.pack(">5i", 0, one, 0, -one, 0)
    return data[:matrix] + patched + data[matrix + 20 :]


def pdf_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), "white").save(buffer, "PDF")
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@cache
def pixel_bomb() -> bytes:
    """A valid 20000×20000 black-and-white PNG: 50 kB that would decode to 400 million pixels."""
    width = height = 20000
    packer = zlib.compressobj(9)
    rows = (b"\x00" + bytes(width // 8)) * 1000  # each row: a filter byte, then one bit per pixel
    pixels = b"".join(packer.compress(rows) for _ in range(height // 1000)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>"
)


# --- helpers -------------------------------------------------------------------------------


def fetch(client, url: str, **kwargs):
    """GET and read the whole answer, closing the file it streams from."""
    response = client.get(url, **kwargs)
    response.get_data()
    response.close()
    return response


def csrf_token(client) -> str:
    return fetch(client, "/api/v1/auth/csrf").get_json()["csrf_token"]


def upload(
    client,
    data: bytes,
    name: str = "file.bin",
    *,
    purpose: str | None = None,
    content_type=None,
    duration: str | None = None,
):
    """POST a multipart upload as a browser does (file names as raw UTF-8, quoted)."""
    boundary = "parley-test-boundary"
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
        f"Content-Type: {content_type or 'application/octet-stream'}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    for field, value in (("purpose", purpose), ("duration", duration)):
        if value is not None:
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'.encode()
            )
    return client.post(
        "/api/v1/uploads",
        data=body + f"--{boundary}--\r\n".encode(),
        headers={"X-CSRFToken": csrf_token(client)},
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def uploaded(client, data: bytes, name: str = "file.bin", **kwargs) -> dict:
    response = upload(client, data, name, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["upload"]


def stored_files(app) -> set[Path]:
    root = Path(app.config["UPLOAD_FOLDER"])
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def upload_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Upload))


def message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Message.id)))


@pytest.fixture
def pair(app, make_user, login, befriend):
    return friends_with_sockets(app, make_user, login, befriend)


def friends_with_sockets(app, make_user, login, befriend):
    """Alice and Bob, friends with a direct conversation, both with a socket; Carol, a stranger."""
    befriend(make_user("alice"), make_user("bob"))
    make_user("carol")
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    conversation = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id}).get_json()
    for device in (alice, bob):
        device.received()
    return alice, bob, login("carol"), conversation["conversation"]["id"]


# --- images --------------------------------------------------------------------------------


def test_a_photo_is_measured_stripped_of_exif_turned_upright_and_thumbnailed(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, jpeg_with_gps(), "IMG_0001.JPG")
    assert facts["kind"] == "image"
    assert (facts["mime"], facts["ext"]) == ("image/jpeg", "jpg")
    assert (facts["w"], facts["h"]) == (800, 1200)  # orientation 6 applied
    assert facts["url"] == f"/media/{facts['id']}" and facts["thumb"] == f"/media/{facts['id']}/thumb"

    served = fetch(alice.http, facts["url"])
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert len(served.data) == facts["size"]
    assert b"Exif" not in served.data and b"PhoneMaker" not in served.data
    assert b"taken at home" not in served.data
    with Image.open(io.BytesIO(served.data)) as image:
        assert image.size == (800, 1200)
        assert not image.getexif() and not image.getexif().get_ifd(0x8825)

    thumb = fetch(alice.http, facts["thumb"])
    assert thumb.headers["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert image.format == "WEBP" and image.size == (267, 400)


def test_xmp_metadata_is_not_taken_for_a_document_and_is_dropped(pair):
    alice, *_ = pair
    xmp = (
        b'<?xml version="1.0"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        b'exif:GPSLatitude="30,10.8N" exif:GPSLongitude="120,11.4E"/></rdf:RDF></x:xmpmeta>'
    )
    photo = image_bytes("JPEG", (64, 48), xmp=xmp)
    assert photo.find(b"<?xml") < 1024
    facts = uploaded(alice.http, photo, "edited.jpg")
    served = fetch(alice.http, facts["url"]).data
    assert b"xmpmeta" not in served and b"GPSLatitude" not in served


def test_the_type_comes_from_the_content_not_the_name_or_content_type(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, image_bytes("PNG", (30, 20)), "photo.jpg", content_type="text/html")
    assert (facts["mime"], facts["ext"], facts["w"], facts["h"]) == ("image/png", "png", 30, 20)
    assert fetch(alice.http, facts["url"]).headers["Content-Type"] == "image/png"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_keep_their_frames(pair, fmt):
    alice, *_ = pair
    facts = uploaded(alice.http, animated(fmt), f"wave.{fmt.lower()}")
    assert (facts["w"], facts["h"]) == (60, 40)
    with Image.open(io.BytesIO(fetch(alice.http, facts["url"]).data)) as image:
        assert image.format == fmt and image.n_frames == 4


def test_a_webp_photo_is_accepted(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, image_bytes("WEBP", (500, 300)), "x.webp")
    assert (facts["mime"], facts["w"], facts["h"]) == ("image/webp", 500, 300)


# --- videos --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "mime", "ext"),
    [("mp4", "video/mp4", "mp4"), ("mov", "video/quicktime", "mov"), ("webm", "video/webm", "webm")],
)
def test_videos_are_measured_and_served_as_sent(pair, container, mime, ext):
    alice, *_ = pair
    data = video_bytes(container)
    assert decoded_frames(data) == 24
    facts = uploaded(alice.http, data, f"clip.{container}")
    assert (facts["kind"], facts["mime"], facts["ext"]) == ("video", mime, ext)
    assert (facts["w"], facts["h"], facts["duration"], facts["size"]) == (160, 120, 2.0, len(data))
    assert facts["thumb"] == f"{facts['url']}/thumb"  # a poster (tests/test_media_av.py)
    served = fetch(alice.http, facts["url"])
    assert served.headers["Content-Type"] == mime
    assert served.data == data and decoded_frames(served.data) == 24


def test_a_portrait_video_reports_its_shown_size(pair):
    alice, *_ = pair
    data = turned_a_quarter(video_bytes("mp4"))
    assert decoded_frames(data) == 24
    facts = uploaded(alice.http, data, "portrait.mp4")
    assert (facts["w"], facts["h"]) == (120, 160)


def test_video_range_requests_return_the_asked_bytes(pair):
    alice, bob, _, conversation_id = pair
    data = video_bytes("mp4")
    facts = uploaded(alice.http, data, "clip.mp4")
    alice.send(conversation_id, body={"type": "video", "upload_id": facts["id"]})
    response = fetch(bob.http, facts["url"], headers={"Range": "bytes=100-1099"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.data == data[100:1100]
    tail = fetch(bob.http, facts["url"], headers={"Range": "bytes=-200"})
    assert tail.status_code == 206 and tail.data == data[-200:]


def test_uploads_and_ranges_through_gunicorn_under_gevent(live_server, http):
    """Under gevent, images are decoded by the media worker processes; the real server answers
    ranges too."""
    base = live_server.url
    registered = http.post(f"{base}/api/v1/auth/register", json={"username": "filmfan", "password": PASSWORD})
    assert registered.status_code == 201
    headers = {"X-CSRFToken": http.get(f"{base}/api/v1/auth/csrf").json()["csrf_token"]}
    photo = http.post(
        f"{base}/api/v1/uploads", files={"file": ("p.jpg", jpeg_with_gps(), "image/jpeg")}, headers=headers
    )
    assert photo.status_code == 201 and photo.json()["upload"]["h"] == 1200
    data = video_bytes("mp4")
    clip = http.post(f"{base}/api/v1/uploads", files={"file": ("c.mp4", data, "video/mp4")}, headers=headers)
    part = http.get(base + clip.json()["upload"]["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == data[:100]


# --- files ---------------------------------------------------------------------------------

DOCX = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}


@pytest.mark.parametrize(
    ("data", "name", "mime", "shown_as"),
    [
        (pdf_bytes(), "report.pdf", "application/pdf", "report.pdf"),
        (pdf_bytes(), "report", "application/pdf", "report.pdf"),
        (pdf_bytes(), "", "application/pdf", "file.pdf"),
        ("会议纪要：周五 10 点 😀\n".encode(), "notes.md", "text/plain; charset=utf-8", "notes.md"),
        ("中文记事本".encode("gb18030"), "记事.txt", "text/plain; charset=gb18030", "记事.txt"),
        (zip_bytes({"a.txt": b"hello"}), "bundle.zip", "application/zip", "bundle.zip"),
        (
            zip_bytes(DOCX),
            "plan.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "plan.docx",
        ),
        (pdf_bytes(), "invoice.jpg", "application/pdf", "invoice.jpg.pdf"),
    ],
)
def test_files_are_typed_by_content_and_always_downloaded(pair, data, name, mime, shown_as):
    alice, *_ = pair
    facts = uploaded(alice.http, data, name)
    assert (facts["kind"], facts["mime"], facts["name"], facts["size"]) == ("file", mime, shown_as, len(data))
    served = fetch(alice.http, facts["url"])
    assert served.status_code == 200 and served.data == data
    assert served.headers["Content-Type"] == mime
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert fetch(alice.http, f"{facts['url']}/thumb").status_code == 404


# --- bad input -----------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    data = noisy_jpeg()
    return data[: len(data) * 2 // 3]


def gif_with_script_comment() -> bytes:
    return image_bytes("GIF", (20, 20), comment=b"<script>alert(1)</script>")


SMALL_PNG = image_bytes("PNG", (4, 4))
MP4_WITHOUT_MOOV = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
BAD_UPLOADS = {
    "html named .jpg": (HTML, "cat.jpg", "unsupported_type", 415),
    "svg named .png": (SVG, "logo.png", "unsupported_type", 415),
    "svg": (SVG, "logo.svg", "unsupported_type", 415),
    "script named .js": (b"alert(1)\n", "app.js", "unsupported_type", 415),
    "polyglot gif with script comment": (gif_with_script_comment(), "a.gif", "unsafe_content", 415),
    "polyglot jpeg with html appended": (noisy_jpeg() + HTML, "a.jpg", "unsafe_content", 415),
    "polyglot pdf with html": (b"%PDF-1.4\n" + HTML, "a.pdf", "unsafe_content", 415),
    "truncated jpeg": (truncated_jpeg(), "cut.jpg", "invalid_image", 400),
    "corrupt png": (b"\x89PNG\r\n\x1a\n" + os.urandom(300), "bad.png", "invalid_image", 400),
    "pixel bomb 20000x20000": (pixel_bomb, "bomb.png", "image_too_large", 400),
    "empty file": (b"", "empty.txt", "empty_file", 400),
    "path in the name": (SMALL_PNG, "../../etc/passwd.png", "invalid_filename", 400),
    "windows path in the name": (SMALL_PNG, "C:\\Users\\me\\boot.png", "invalid_filename", 400),
    "reversed ending": (b"hello", "photo\u202egnp.exe", "invalid_filename", 400),
    "executable": (b"\x7fELF\x02\x01\x01\x00" + bytes(200), "tool", "unsupported_type", 415),
    "binary text": (b"abc\x00\x01\x02def", "data.txt", "unsupported_type", 415),
    "video without a movie box": (MP4_WITHOUT_MOOV, "v.mp4", "invalid_video", 400),
    "broken archive": (b"PK\x03\x04" + bytes(60), "a.zip", "invalid_file", 400),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_are_refused_and_leave_nothing_behind(app, pair, case):
    alice, *_ = pair
    data, name, code, status = BAD_UPLOADS[case]
    data = data() if callable(data) else data
    before = stored_files(app)
    response = upload(alice.http, data, name)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert upload_rows(app) == 0
    assert stored_files(app) == before


def test_oversize_files_are_refused_per_kind(app, pair, monkeypatch):
    alice, *_ = pair
    monkeypatch.setitem(app.config, "MAX_IMAGE_BYTES", 1000)
    monkeypatch.setitem(app.config, "MAX_FILE_BYTES", 50)
    before = stored_files(app)
    photo = noisy_jpeg()
    assert len(photo) > 1000
    for data, name in ((photo, "big.jpg"), (b"x" * 51, "big.txt")):
        response = upload(alice.http, data, name)
        assert response.status_code == 413
        assert response.get_json()["error"]["code"] == "file_too_large"
    assert uploaded(alice.http, b"x" * 50, "fits.txt")["size"] == 50
    assert upload_rows(app) == 1 and len(stored_files(app) - before) == 1


def test_images_over_the_pixel_limit_are_refused(app, pair, monkeypatch):
    alice, *_ = pair
    monkeypatch.setitem(app.config, "MAX_IMAGE_PIXELS", 10_000)
    response = upload(alice.http, image_bytes("PNG", (200, 51)), "wide.png")
    assert response.get_json()["error"]["code"] == "image_too_large"
    assert uploaded(alice.http, image_bytes("PNG", (200, 50)), "fits.png")["w"] == 200


def test_a_request_body_over_every_limit_is_refused_before_reading(app, pair):
    alice, *_ = pair
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    response = alice.http.post(
        "/api/v1/uploads",
        data=b"x" * too_big,
        headers={"X-CSRFToken": csrf_token(alice.http)},
        content_type="multipart/form-data; boundary=x",
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("form", "field"),
    [({}, "file"), ({"file": (io.BytesIO(b"hi"), "a.txt"), "purpose": "banner"}, "purpose")],
)
def test_a_malformed_upload_form_is_invalid_input(pair, form, field):
    alice, *_ = pair
    response = alice.http.post(
        "/api/v1/uploads",
        data=form,
        headers={"X-CSRFToken": csrf_token(alice.http)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert field in response.get_json()["error"]["fields"]


def test_uploads_need_a_session_and_a_csrf_token(app, pair, client):
    alice, *_ = pair
    form = {"file": (io.BytesIO(b"hello"), "a.txt")}
    no_token = alice.http.post("/api/v1/uploads", data=form, content_type="multipart/form-data")
    assert no_token.status_code == 400 and no_token.get_json()["error"]["code"] == "csrf_failed"
    anonymous = upload(client, b"hello", "a.txt")
    assert anonymous.status_code == 401
    assert upload_rows(app) == 0


def test_uploads_are_rate_limited_per_user(app, pair, monkeypatch):
    alice, bob, *_ = pair
    monkeypatch.setitem(app.config, "UPLOAD_RATE_LIMIT", "2 per minute")
    assert [upload(alice.http, b"hi", "a.txt").status_code for _ in range(3)] == [201, 201, 429]
    refused = upload(alice.http, b"hi", "a.txt")
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # a minute window, rounded up
    assert upload(bob.http, b"hi", "a.txt").status_code == 201


# --- messages ------------------------------------------------------------------------------


def test_every_kind_of_message_reaches_the_other_member(pair):
    alice, bob, _, conversation_id = pair
    photo = uploaded(alice.http, jpeg_with_gps(), "IMG_0001.JPG")
    clip = uploaded(alice.http, video_bytes("mp4"), "clip.mp4")
    paper = uploaded(alice.http, pdf_bytes(), "paper.pdf")
    bodies = [
        {"type": "txt", "msg": "哈哈哈 😀👍🏽"},
        {"type": "img", "upload_id": photo["id"]},
        {"type": "video", "upload_id": clip["id"]},
        {"type": "loc", "title": "中国 浙江省 杭州市 网商路 599号", "lng": 120.19, "lat": 30.18},
        {"type": "file", "upload_id": paper["id"]},
    ]
    for body in bodies:
        ack = alice.send(conversation_id, body=body)
        assert ack["ok"] is True, ack
    delivered = [message["body"] for message in bob.received("message:new")]
    assert delivered == [
        bodies[0],
        {
            "type": "img",
            "upload_id": photo["id"],
            "url": photo["url"],
            "ext": "jpg",
            "w": 800,
            "h": 1200,
            "size": photo["size"],
            "thumb": photo["thumb"],
        },
        {
            "type": "video",
            "upload_id": clip["id"],
            "url": clip["url"],
            "ext": "mp4",
            "w": 160,
            "h": 120,
            "size": clip["size"],
            "duration": 2.0,
            "mime": "video/mp4",
            "thumb": clip["thumb"],
        },
        bodies[3],
        {
            "type": "file",
            "upload_id": paper["id"],
            "url": paper["url"],
            "name": "paper.pdf",
            "size": paper["size"],
            "mime": "application/pdf",
            "ext": "pdf",
        },
    ]
    for url in (photo["url"], photo["thumb"], clip["url"], paper["url"]):
        assert fetch(bob.http, url).status_code == 200


def test_media_messages_can_be_sent_over_rest_too(pair):
    alice, bob, _, conversation_id = pair
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "dot.png")
    response = alice.http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": "rest-media-0001", "body": {"type": "img", "upload_id": photo["id"]}},
    )
    assert response.status_code == 201
    assert response.get_json()["message"]["body"]["url"] == photo["url"]
    assert bob.received("message:new")[0]["body"]["w"] == 10


def test_a_picture_or_video_can_be_sent_as_a_file(app, pair):
    alice, bob, _, conversation_id = pair
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "holiday.png")
    clip = uploaded(alice.http, video_bytes("webm"), "clip.webm")
    for upload, name in ((photo, "holiday.png"), (clip, "clip.webm")):
        ack = alice.send(conversation_id, body={"type": "file", "upload_id": upload["id"]})
        assert ack["ok"], ack
        body = ack["message"]["body"]
        expected = ("file", name, upload["url"], upload["size"])
        assert (body["type"], body["name"], body["url"], body["size"]) == expected
    assert [m["body"]["type"] for m in bob.received("message:new")] == ["file", "file"]


def test_client_figures_are_refused(app, pair):
    alice, _, _, conversation_id = pair
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "dot.png")
    ack = alice.send(conversation_id, body={"type": "img", "upload_id": photo["id"], "w": 9999})
    assert ack["error"]["code"] == "invalid_input"
    assert message_count(app) == 0


def test_refused_media_messages_store_nothing(app, pair, make_user, login):
    alice, bob, carol, conversation_id = pair
    bobs = uploaded(bob.http, image_bytes("PNG", (10, 10)), "b.png")
    clip = uploaded(alice.http, video_bytes("webm"), "c.webm")
    avatar = uploaded(alice.http, image_bytes("PNG", (10, 10)), "me.png", purpose="avatar")
    cases = [
        ({"type": "img", "upload_id": bobs["id"]}, "not_your_upload"),
        ({"type": "img", "upload_id": "0" * 32}, "upload_not_found"),
        ({"type": "img", "upload_id": clip["id"]}, "upload_wrong_kind"),
        ({"type": "file", "upload_id": avatar["id"]}, "upload_wrong_kind"),
        ({"type": "img", "upload_id": avatar["id"]}, "upload_wrong_kind"),
        ({"type": "img", "upload_id": "../../etc/passwd"}, "invalid_input"),
    ]
    for body, code in cases:
        ack = alice.send(conversation_id, body=body)
        assert ack["ok"] is False and ack["error"]["code"] == code, (body, ack)
    assert message_count(app) == 0
    assert bob.received("message:new") == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Upload.message_id.is_not(None))) == 0


def test_an_upload_is_sent_once(app, pair):
    alice, bob, _, conversation_id = pair
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "dot.png")
    assert alice.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})["ok"] is True
    again = alice.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})
    assert again["error"]["code"] == "upload_in_use"
    assert message_count(app) == 1


def test_a_send_refused_for_another_reason_leaves_the_upload_free(app, pair):
    alice, bob, _, conversation_id = pair
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "dot.png")
    assert alice.http.delete(f"/api/v1/friends/{bob.user_id}").status_code == 204
    refused = alice.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})
    assert refused["error"]["code"] == "not_friends"
    group = alice.http.post("/api/v1/groups", json={"name": "Solo"}).get_json()["group"]
    sent = alice.send(group["conversation_id"], body={"type": "img", "upload_id": photo["id"]})
    assert sent["ok"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lat": 90.5, "lng": 120.0}, "lat"),
        ({"lat": -90.01, "lng": 120.0}, "lat"),
        ({"lat": 30.0, "lng": 180.5}, "lng"),
        ({"lat": 30.0, "lng": -181}, "lng"),
        ({"lat": "30.1", "lng": 120.0}, "lat"),
        ({"lat": 30.0}, "lng"),
        ({"lat": 30.0, "lng": 120.0, "title": "   "}, "title"),
        ({"lat": 30.0, "lng": 120.0, "title": "x" * 201}, "title"),
    ],
)
def test_locations_are_validated(app, pair, body, field):
    alice, _, _, conversation_id = pair
    ack = alice.send(conversation_id, body={"type": "loc", "title": "Hangzhou", **body})
    assert ack["error"]["code"] == "invalid_input"
    assert any(name.endswith(field) for name in ack["error"]["fields"]), ack["error"]["fields"]
    assert message_count(app) == 0


def test_locations_at_the_edges_are_accepted(pair):
    alice, _, _, conversation_id = pair
    body = {"type": "loc", "title": "x" * 200, "lat": -90, "lng": 180}
    assert alice.send(conversation_id, body=body)["message"]["body"] == body


# --- who may see what ----------------------------------------------------------------------


def test_outsiders_get_403_for_every_media_url_of_a_conversation(pair, client):
    alice, bob, carol, conversation_id = pair
    urls = []
    for data, name, body_type in (
        (jpeg_with_gps(), "p.jpg", "img"),
        (video_bytes("webm"), "v.webm", "video"),
        (pdf_bytes(), "d.pdf", "file"),
    ):
        facts = uploaded(alice.http, data, name)
        assert fetch(bob.http, facts["url"]).status_code == 403  # not sent yet: only Alice sees it
        assert alice.send(conversation_id, body={"type": body_type, "upload_id": facts["id"]})["ok"]
        urls += [facts["url"], facts["thumb"]] if facts["thumb"] else [facts["url"]]
    for url in urls:
        assert fetch(alice.http, url).status_code == 200
        assert fetch(bob.http, url).status_code == 200
        refused = fetch(carol, url)
        assert refused.status_code == 403, url
        assert refused.data.find(b"alert") == -1
        assert fetch(client, url).status_code == 401
    assert fetch(carol, "/media/" + "f" * 32).status_code == 404
    assert fetch(carol, "/media/..%2F..%2Fconfig.py").status_code == 404


def test_group_members_see_media_their_history_covers(app, pair, make_user, login, befriend):
    alice, bob, _, _ = pair
    dave_id = make_user("dave")
    befriend(alice.user_id, dave_id)
    dave = login("dave")
    group = alice.http.post("/api/v1/groups", json={"name": "Trip", "member_ids": [bob.user_id]}).get_json()
    conversation_id = group["group"]["conversation_id"]
    before = uploaded(alice.http, image_bytes("PNG", (10, 10)), "before.png")
    alice.send(conversation_id, body={"type": "img", "upload_id": before["id"]})
    added = alice.http.post(f"/api/v1/groups/{group['group']['id']}/members", json={"user_ids": [dave_id]})
    assert added.status_code == 200
    after = uploaded(alice.http, image_bytes("PNG", (10, 10)), "after.png")
    alice.send(conversation_id, body={"type": "img", "upload_id": after["id"]})
    assert fetch(dave, before["url"]).status_code == 403  # sent before Dave joined
    assert fetch(dave, after["url"]).status_code == 200

    removed = alice.http.delete(f"/api/v1/groups/{group['group']['id']}/members/{bob.user_id}")
    assert removed.status_code == 204
    later = uploaded(alice.http, image_bytes("PNG", (10, 10)), "later.png")
    alice.send(conversation_id, body={"type": "img", "upload_id": later["id"]})
    assert fetch(bob.http, before["url"]).status_code == 200  # Bob keeps the history he had
    assert fetch(bob.http, later["url"]).status_code == 403


def test_a_recalled_messages_media_is_no_longer_served_to_others(app, pair, make_user):
    from app.moderation import services as moderation

    alice, bob, _, conversation_id = pair
    admin_id = make_user("admin", is_admin=True)
    photo = uploaded(alice.http, image_bytes("PNG", (10, 10)), "oops.png")
    message = alice.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})["message"]
    with app.app_context():
        moderation.recall_message(admin_id, message["id"], "posted by mistake")
    assert fetch(bob.http, photo["url"]).status_code == 403
    assert fetch(alice.http, photo["url"]).status_code == 200


# --- avatars -------------------------------------------------------------------------------


def test_avatars_are_square_public_and_usable_for_users_and_groups(pair, client):
    alice, bob, *_ = pair
    facts = uploaded(alice.http, jpeg_with_gps(), "me.jpg", purpose="avatar")
    assert (facts["kind"], facts["mime"], facts["w"], facts["h"]) == ("avatar", "image/webp", 512, 512)
    public = fetch(client, facts["url"])
    assert public.status_code == 200 and public.headers["Content-Type"] == "image/webp"
    assert public.headers["Cache-Control"].startswith("public")
    with Image.open(io.BytesIO(fetch(client, facts["thumb"]).data)) as thumb:
        assert thumb.size == (128, 128)
    profile = alice.http.patch("/api/v1/auth/me", json={"avatar_url": facts["thumb"]})
    assert profile.get_json()["user"]["avatar_url"] == facts["thumb"]
    group = alice.http.post("/api/v1/groups", json={"name": "Club"}).get_json()["group"]
    logo = uploaded(alice.http, image_bytes("PNG", (300, 100)), "logo.png", purpose="avatar")
    changed = alice.http.patch(f"/api/v1/groups/{group['id']}", json={"avatar_url": logo["url"]})
    assert changed.get_json()["group"]["avatar_url"] == logo["url"]
    assert (logo["w"], logo["h"]) == (100, 100)


def test_an_avatar_must_be_an_image(app, pair):
    alice, *_ = pair
    response = upload(alice.http, pdf_bytes(), "me.pdf", purpose="avatar")
    assert response.status_code == 415 and response.get_json()["error"]["code"] == "unsupported_type"
    assert upload_rows(app) == 0


def test_private_media_is_not_cached_publicly(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, image_bytes("PNG", (10, 10)), "dot.png")
    served = fetch(alice.http, facts["url"])
    assert served.headers["Cache-Control"].startswith("private")
    assert served.headers["Cross-Origin-Resource-Policy"] == "same-origin"


# --- cleaning up ---------------------------------------------------------------------------


def _age(app, upload_id: str, hours: int) -> None:
    with app.app_context():
        db.session.execute(
            update(Upload).where(Upload.id == upload_id).values(created_at=utcnow() - timedelta(hours=hours))
        )
        db.session.commit()


def test_cleanup_removes_old_unused_uploads_and_their_files(app, pair, runner):
    alice, _, _, conversation_id = pair
    old_unsent = uploaded(alice.http, image_bytes("PNG", (10, 10)), "old.png")
    new_unsent = uploaded(alice.http, image_bytes("PNG", (10, 10)), "new.png")
    old_sent = uploaded(alice.http, image_bytes("PNG", (10, 10)), "sent.png")
    alice.send(conversation_id, body={"type": "img", "upload_id": old_sent["id"]})
    avatar_in_use = uploaded(alice.http, image_bytes("PNG", (10, 10)), "me.png", purpose="avatar")
    alice.http.patch("/api/v1/auth/me", json={"avatar_url": avatar_in_use["thumb"]})
    avatar_unused = uploaded(alice.http, image_bytes("PNG", (10, 10)), "me2.png", purpose="avatar")
    for facts in (old_unsent, old_sent, avatar_in_use, avatar_unused):
        _age(app, facts["id"], 25)
    stale = Path(app.config["UPLOAD_FOLDER"]) / "tmp" / "crashed-upload"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "received").write_bytes(b"half")
    long_ago = time.time() - 2 * 86400
    os.utime(stale, (long_ago, long_ago))
    files_before = stored_files(app)

    result = runner.invoke(args=["cleanup-uploads"])
    assert result.exit_code == 0, result.output
    assert "Removed 2 unused uploads." in result.output
    with app.app_context():
        left = set(db.session.scalars(select(Upload.id)))
    assert left == {new_unsent["id"], old_sent["id"], avatar_in_use["id"]}
    gone = files_before - stored_files(app)
    assert {path.name for path in gone} == {
        old_unsent["id"],
        f"{old_unsent['id']}.thumb",
        avatar_unused["id"],
        f"{avatar_unused['id']}.thumb",
        "received",
    }
    assert fetch(alice.http, old_unsent["url"]).status_code == 404
    assert fetch(alice.http, old_sent["url"]).status_code == 200


# --- configuration -------------------------------------------------------------------------


def test_the_upload_folder_must_be_outside_the_static_folder(tmp_path):
    env = server_env("sqlite://", tmp_path, UPLOAD_FOLDER=str(BASE_DIR / "app" / "static" / "uploads"))
    with pytest.raises(ConfigError) as error:
        Config.from_env(env)
    assert error.value.name == "UPLOAD_FOLDER"


@pytest.mark.parametrize(("name", "value"), [("MAX_IMAGE_PIXELS", "lots"), ("UPLOAD_RATE_LIMIT", "often")])
def test_malformed_media_settings_stop_start_up(tmp_path, name, value):
    with pytest.raises(ConfigError) as error:
        Config.from_env(server_env("sqlite://", tmp_path, **{name: value}))
    assert error.value.name == name
