"""Audio and video read by PyAV in the media worker: voice recordings (`purpose=voice`) measured by
the server and refused when they are not audio, too long, cut short or misdescribed; sound files
sent as downloads; video posters turned upright; damaged videos refused. Files are made by
tests/media_samples.py with FFmpeg's own encoders."""

from __future__ import annotations

import io
from functools import cache

import pytest
from PIL import Image

from app.media.inspect import Media
from tests import media_samples as samples
from tests.test_media import (
    fetch,
    friends_with_sockets,
    image_bytes,
    pdf_bytes,
    stored_files,
    upload,
    upload_rows,
    uploaded,
)

ORANGE, BLUE = (200, 60, 30), (20, 40, 60)


@pytest.fixture
def pair(app, make_user, login, befriend):
    """Alice and Bob, friends with sockets, and Carol, as in tests/test_media.py."""
    return friends_with_sockets(app, make_user, login, befriend)


@cache
def voice(seconds: float = 2.0, container: str = "webm", live: bool = False) -> bytes:
    return samples.audio(seconds, container, live=live)


@cache
def clip(container: str = "mp4", size=(64, 48), rotate: int = 0, with_audio: bool = False) -> bytes:
    return samples.video(1.0, container, size, fps=10, rotate=rotate, with_audio=with_audio)


def refused(app, response, status: int, code: str, before: set) -> dict:
    """The refusal, and nothing stored: no row, no file."""
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert upload_rows(app) == 0
    assert stored_files(app) == before
    return error


def poster(client, facts: dict) -> Image.Image:
    served = fetch(client, facts["thumb"])
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/webp"
    image = Image.open(io.BytesIO(served.data))
    assert image.format == "WEBP"
    return image.convert("RGB")


def near(colour: tuple, expected: tuple, slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


# --- voice recordings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "live", "mime", "ext"),
    [
        ("webm", False, "audio/webm", "webm"),
        ("webm", True, "audio/webm", "webm"),  # as Chromium records: no duration in the file
        ("ogg", False, "audio/ogg", "ogg"),
        ("mp4", False, "audio/mp4", "m4a"),
        ("m4a", False, "audio/mp4", "m4a"),
    ],
)
def test_voice_recordings_are_measured_by_the_server(pair, container, live, mime, ext):
    alice, *_ = pair
    data = voice(2.0, container, live)
    facts = uploaded(alice.http, data, f"blob.{container}", purpose="voice", content_type="text/html")
    assert (facts["kind"], facts["mime"], facts["ext"], facts["size"]) == ("audio", mime, ext, len(data))
    assert abs(facts["duration"] - 2.0) <= 0.1, facts["duration"]
    assert (facts["w"], facts["h"], facts["thumb"]) == (None, None, None)
    served = fetch(alice.http, facts["url"])
    assert served.status_code == 200 and served.data == data
    assert served.headers["Content-Type"] == mime
    assert not served.headers.get("Content-Disposition", "").startswith("attachment")
    assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_a_client_duration_close_to_the_files_is_accepted(pair):
    alice, *_ = pair
    for claimed in ("2", "2.9", "1.05", " 2.0 "):
        facts = uploaded(alice.http, voice(), "v.webm", purpose="voice", duration=claimed)
        assert abs(facts["duration"] - 2.0) <= 0.1  # the server's measure, not the client's


@pytest.mark.parametrize("claimed", ["3.1", "0.5", "60", "0"])
def test_a_client_duration_that_disagrees_is_refused(app, pair, claimed):
    alice, *_ = pair
    before = stored_files(app)
    response = upload(alice.http, voice(), "v.webm", purpose="voice", duration=claimed)
    error = refused(app, response, 400, "duration_mismatch", before)
    assert error["fields"] == {"duration": "the recording lasts 2.0 s"}


@pytest.mark.parametrize(
    ("purpose", "claimed"),
    [("voice", "abc"), ("voice", "-1"), ("voice", "1e3"), ("voice", "nan"), ("voice", ""), ("voice", "2,5"),
     ("message", "2"), (None, "2")],
)  # fmt: skip
def test_a_malformed_or_misplaced_duration_is_invalid_input(app, pair, purpose, claimed):
    alice, *_ = pair
    before = stored_files(app)
    response = upload(alice.http, voice(), "v.webm", purpose=purpose, duration=claimed)
    error = refused(app, response, 400, "invalid_input", before)
    assert list(error["fields"]) == ["duration"]


NOT_AUDIO = {
    "video with sound": (lambda: clip("mp4", with_audio=True), "carries a video track"),
    "webm video": (lambda: clip("webm"), "carries a video track"),
    "jpeg": (lambda: image_bytes("JPEG", (20, 20)), "audio only: WebM, Ogg or MP4"),
    "pdf": (pdf_bytes, "audio only: WebM, Ogg or MP4"),
    "text": (lambda: b"hello, this is me speaking", "audio only: WebM, Ogg or MP4"),
    "quicktime": (lambda: clip("mov"), "audio only: WebM, Ogg or MP4"),
}


@pytest.mark.parametrize("case", list(NOT_AUDIO))
def test_what_is_not_an_audio_recording_is_not_a_voice_message(app, pair, case):
    alice, *_ = pair
    make, field = NOT_AUDIO[case]
    before = stored_files(app)
    error = refused(app, upload(alice.http, make(), "voice.webm", purpose="voice"), 415, "not_audio", before)
    assert error["fields"] == {"file": field}


@pytest.mark.parametrize(
    ("container", "live", "keep"),
    [("webm", False, 0.5), ("webm", False, 0.9), ("webm", True, 0.5), ("ogg", False, 0.5),
     ("ogg", False, 0.9), ("mp4", False, 0.5), ("m4a", False, 0.9)],
)  # fmt: skip
def test_a_cut_recording_is_refused(app, pair, container, live, keep):
    alice, *_ = pair
    before = stored_files(app)
    data = samples.truncated(voice(2.0, container, live), keep)
    refused(app, upload(alice.http, data, "cut", purpose="voice"), 400, "invalid_audio", before)


def test_an_empty_or_too_short_recording_is_refused(app, pair):
    alice, *_ = pair
    before = stored_files(app)
    refused(app, upload(alice.http, b"", "v.webm", purpose="voice"), 400, "empty_file", before)
    blip = samples.audio(0.04, "ogg")
    refused(app, upload(alice.http, blip, "v.ogg", purpose="voice"), 400, "invalid_audio", before)
    header_only = voice()[:200]
    refused(app, upload(alice.http, header_only, "v.webm", purpose="voice"), 400, "invalid_audio", before)


def test_a_recording_over_the_length_limit_is_refused(app, pair, monkeypatch):
    alice, *_ = pair
    monkeypatch.setitem(app.config, "VOICE_MAX_SECONDS", 1)
    before = stored_files(app)
    for container in ("webm", "ogg", "mp4"):
        long = samples.audio(1.6, container)
        error = refused(app, upload(alice.http, long, "v", purpose="voice"), 400, "audio_too_long", before)
        assert error["fields"] == {"file": "≤ 1 s"}
    live = voice(2.0, "webm", live=True)  # no declared length: found long while decoding
    refused(app, upload(alice.http, live, "v", purpose="voice"), 400, "audio_too_long", before)
    padded = uploaded(alice.http, samples.audio(1.4, "webm"), "v.webm", purpose="voice")
    assert abs(padded["duration"] - 1.4) <= 0.1  # within the half second encoders may pad


def test_a_recording_over_the_size_limit_is_refused(app, pair, monkeypatch):
    alice, *_ = pair
    data = voice()
    monkeypatch.setitem(app.config, "MAX_AUDIO_BYTES", len(data) - 1)
    before = stored_files(app)
    refused(app, upload(alice.http, data, "v.webm", purpose="voice"), 413, "file_too_large", before)
    monkeypatch.setitem(app.config, "MAX_AUDIO_BYTES", len(data))
    assert uploaded(alice.http, data, "v.webm", purpose="voice")["size"] == len(data)


def test_a_voice_message_is_sent_played_in_ranges_and_private(pair, client):
    alice, bob, carol, conversation_id = pair
    data = voice(2.0, "ogg")
    facts = uploaded(alice.http, data, "voice.ogg", purpose="voice")
    assert fetch(bob.http, facts["url"]).status_code == 403  # not sent yet
    ack = alice.send(conversation_id, body={"type": "audio", "upload_id": facts["id"]})
    assert ack["ok"] is True, ack
    body = ack["message"]["body"]
    assert (body["type"], body["url"], body["mime"], body["duration"]) == (
        "audio",
        facts["url"],
        "audio/ogg",
        facts["duration"],
    )
    part = fetch(bob.http, facts["url"], headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.data == data[10:110]
    assert part.headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    assert part.headers["Content-Type"] == "audio/ogg"
    assert fetch(carol, facts["url"]).status_code == 403
    assert fetch(client, facts["url"]).status_code == 401
    assert fetch(bob.http, f"{facts['url']}/thumb").status_code == 404


# --- sound files and the kinds the worker may answer -----------------------------------------


@pytest.mark.parametrize(
    ("container", "name", "mime", "shown_as"),
    [("mp4", "song.mp4", "audio/mp4", "song.mp4"), ("m4a", "talk", "audio/mp4", "talk.m4a"),
     ("ogg", "tune.ogg", "audio/ogg", "tune.ogg"), ("webm", "memo.webm", "audio/webm", "memo.webm")],
)  # fmt: skip
def test_sound_sent_as_a_message_upload_is_a_file_to_download(app, pair, container, name, mime, shown_as):
    alice, bob, _, conversation_id = pair
    data = voice(2.0, container)
    facts = uploaded(alice.http, data, name)
    assert (facts["kind"], facts["mime"], facts["name"], facts["duration"]) == ("file", mime, shown_as, None)
    served = fetch(alice.http, facts["url"])
    assert served.data == data and served.headers["Content-Disposition"].startswith("attachment;")
    refused_as_voice = alice.send(conversation_id, body={"type": "audio", "upload_id": facts["id"]})
    assert refused_as_voice["error"]["code"] == "upload_wrong_kind"
    assert alice.send(conversation_id, body={"type": "file", "upload_id": facts["id"]})["ok"] is True


def test_a_voice_recording_may_also_go_as_a_file(pair):
    alice, bob, _, conversation_id = pair
    facts = uploaded(alice.http, voice(), "memo.webm", purpose="voice")
    ack = alice.send(conversation_id, body={"type": "file", "upload_id": facts["id"]})
    assert ack["ok"] is True and ack["message"]["body"]["mime"] == "audio/webm"


@pytest.mark.parametrize("container", ["webm", "ogg"])
def test_a_cut_sound_file_is_refused(app, pair, container):
    alice, *_ = pair
    before = stored_files(app)
    cut = samples.truncated(voice(2.0, container, live=container == "webm"), 0.5)
    refused(app, upload(alice.http, cut, f"memo.{container}"), 400, "invalid_audio", before)


# --- Matroska: the EBML magic is any Matroska file's; WebM is the one in WebM's codecs ---------


def test_a_matroska_file_in_codecs_webm_does_not_allow_is_refused(app, pair):
    alice, *_ = pair
    before = stored_files(app)
    mkv = samples.video(1.0, "mkv", (64, 48), fps=10, with_audio=True)  # H.264 and Opus
    refused(app, upload(alice.http, mkv, "film.webm"), 415, "unsupported_type", before)
    aac = samples.audio(1.0, "mka", codec="aac")
    refused(app, upload(alice.http, aac, "song.webm"), 415, "unsupported_type", before)
    error = refused(app, upload(alice.http, aac, "v.webm", purpose="voice"), 415, "not_audio", before)
    assert error["fields"] == {"file": "Opus, Vorbis, AAC, MP3 or FLAC audio"}
    error = refused(app, upload(alice.http, mkv, "v.webm", purpose="voice"), 415, "not_audio", before)
    assert error["fields"] == {"file": "carries a video track"}


def test_opus_in_matroska_is_taken_as_webm(pair):
    """FFmpeg does not tell a Matroska file's DocType: Opus in Matroska's own DocType passes by
    its codec, as audio/webm (which browsers play)."""
    alice, *_ = pair
    data = samples.audio(2.0, "mka")
    assert data[:4] == b"\x1a\x45\xdf\xa3" and b"matroska" in data[:64]
    facts = uploaded(alice.http, data, "memo.mka", purpose="voice")
    assert (facts["kind"], facts["mime"], facts["ext"]) == ("audio", "audio/webm", "webm")
    assert abs(facts["duration"] - 2.0) <= 0.1
    assert uploaded(alice.http, data, "memo.mka")["kind"] == "file"


def test_a_worker_answer_is_believed_only_for_kinds_its_type_may_have(tmp_path):
    (tmp_path / "main").write_bytes(b"x")
    base = {"path": "main", "width": None, "height": None, "duration": 2.0}
    for mime in ("audio/webm", "audio/ogg", "audio/mp4"):
        for kind in ("audio", "file"):
            assert Media.from_answer({**base, "kind": kind, "mime": mime}, tmp_path).kind == kind
        for kind in ("video", "image", "avatar"):
            with pytest.raises(ValueError):
                Media.from_answer({**base, "kind": kind, "mime": mime}, tmp_path)
    for mime, kind in (("video/webm", "audio"), ("video/mp4", "file"), ("application/pdf", "audio")):
        with pytest.raises(ValueError):
            Media.from_answer({**base, "kind": kind, "mime": mime}, tmp_path)


# --- video posters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "mime"), [("mp4", "video/mp4"), ("mov", "video/quicktime"), ("webm", "video/webm")]
)
def test_every_video_gets_a_poster_from_half_a_second_in(pair, container, mime):
    alice, bob, _, conversation_id = pair
    facts = uploaded(alice.http, clip(container, with_audio=True), f"clip.{container}")
    assert (facts["kind"], facts["mime"], facts["w"], facts["h"]) == ("video", mime, 64, 48)
    assert facts["duration"] == pytest.approx(1.0, abs=0.1)
    image = poster(alice.http, facts)
    assert image.size == (64, 48)  # a small video is not enlarged
    # Half a second in, the orange bar covers the left half (the first frame has none).
    assert near(image.getpixel((8, 24)), ORANGE) and near(image.getpixel((56, 24)), BLUE)
    ack = alice.send(conversation_id, body={"type": "video", "upload_id": facts["id"]})
    assert ack["message"]["body"]["thumb"] == facts["thumb"]
    assert fetch(bob.http, facts["thumb"]).status_code == 200


def test_a_poster_has_a_long_edge_of_400_pixels(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, clip("mp4", size=(640, 480)), "big.mp4")
    assert (facts["w"], facts["h"]) == (640, 480)
    assert poster(alice.http, facts).size == (400, 300)


@pytest.mark.parametrize(
    ("rotate", "shown", "orange_at", "blue_at"),
    [
        (90, (48, 64), (24, 8), (24, 56)),  # turned clockwise: the left edge is on top
        (180, (64, 48), (56, 24), (8, 24)),
        (270, (48, 64), (24, 56), (24, 8)),
    ],
)
def test_a_turned_video_reports_its_shown_size_and_has_an_upright_poster(
    pair, rotate, shown, orange_at, blue_at
):
    alice, *_ = pair
    facts = uploaded(alice.http, clip("mp4", rotate=rotate), "portrait.mp4")
    assert (facts["w"], facts["h"]) == shown
    image = poster(alice.http, facts)
    assert image.size == shown
    assert near(image.getpixel(orange_at), ORANGE) and near(image.getpixel(blue_at), BLUE)


def test_a_video_shorter_than_half_a_second_gets_its_first_frame(pair):
    alice, *_ = pair
    facts = uploaded(alice.http, samples.video(0.3, "webm", (64, 48), fps=10), "short.webm")
    image = poster(alice.http, facts)
    assert near(image.getpixel((40, 24)), BLUE)  # the first frame's bar is one pixel wide


@pytest.mark.parametrize(("container", "keep"), [("mp4", 0.5), ("mov", 0.9), ("webm", 0.5), ("webm", 0.8)])
def test_a_cut_video_is_refused(app, pair, container, keep):
    alice, *_ = pair
    before = stored_files(app)
    data = samples.truncated(clip(container, with_audio=True), keep)
    refused(app, upload(alice.http, data, f"cut.{container}"), 400, "invalid_video", before)


def test_an_ogg_video_is_not_accepted(app, pair):
    """Ogg is taken for sound only: a video in it is refused, not served as audio."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as box:
        stream = box.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_image(Image.new("RGB", (32, 32), (index * 40, 0, 0)))
            for packet in stream.encode(frame):
                box.mux(packet)
        for packet in stream.encode(None):
            box.mux(packet)
    alice, *_ = pair
    before = stored_files(app)
    refused(app, upload(alice.http, buffer.getvalue(), "v.ogv"), 415, "unsupported_type", before)
    response = upload(alice.http, buffer.getvalue(), "v.ogg", purpose="voice")
    refused(app, response, 415, "not_audio", before)
