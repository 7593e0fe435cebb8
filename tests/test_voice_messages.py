"""Voice messages on the wire: an `audio` upload (purpose=voice) sent as `{"type": "audio",
"upload_id"}` by socket or REST, stored and delivered with what the server measured, served to the
members like video; the refusals of a wrong, foreign or used upload, which store nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Message, Upload
from tests.chat_helpers import new_client_msg_id
from tests.media_samples import audio, video
from tests.test_media import fetch, image_bytes, uploaded

AUDIO_FIELDS = {"type", "upload_id", "url", "ext", "size", "duration", "mime"}


def voice_upload(device, seconds: float = 2.0, container: str = "webm") -> dict:
    """A real recording uploaded as a voice message (`purpose=voice`)."""
    names = {"webm": "voice.webm", "ogg": "voice.ogg", "mp4": "voice.mp4", "m4a": "voice.m4a"}
    return uploaded(device.http, audio(seconds, container), names[container], purpose="voice")


def send_voice(device, conversation_id: int, upload: dict | None = None, seconds: float = 2.0) -> dict:
    """Send a voice message over the socket; the ack's message."""
    upload = upload or voice_upload(device, seconds)
    ack = device.send(conversation_id, body={"type": "audio", "upload_id": upload["id"]})
    assert ack["ok"], ack
    return ack["message"]


def code_of(response_or_ack) -> str | None:
    body = response_or_ack if isinstance(response_or_ack, dict) else response_or_ack.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


def counts(app) -> tuple[int, int]:
    """Messages stored, and uploads bound to a message or conversation."""
    with app.app_context():
        messages = db.session.scalar(select(func.count()).select_from(Message))
        bound = db.session.scalar(
            select(func.count()).select_from(Upload).where(Upload.conversation_id.is_not(None))
        )
        return messages, bound


@pytest.mark.parametrize(
    ("container", "ext", "mime"), [("webm", "webm", "audio/webm"), ("m4a", "m4a", "audio/mp4")]
)
def test_a_voice_message_reaches_the_other_member_with_what_the_server_measured(pair, container, ext, mime):
    alice_phone, alice_laptop, bob, conversation_id = pair
    upload = voice_upload(alice_phone, 3.0, container)
    assert upload["kind"] == "audio"
    message = send_voice(alice_phone, conversation_id, upload)
    assert message["type"] == "audio"
    body = message["body"]
    assert set(body) == AUDIO_FIELDS
    assert body["type"] == "audio" and body["upload_id"] == upload["id"]
    assert body["url"] == f"/media/{upload['id']}"
    assert (body["ext"], body["mime"]) == (ext, mime)
    assert body["size"] == upload["size"] > 0
    assert body["duration"] == pytest.approx(3.0, abs=0.2)
    delivered = bob.received("message:new")
    assert [item["body"] for item in delivered] == [body]
    # A live message carries no played flag: a client treats another's new voice message as unplayed.
    assert "played" not in delivered[0]
    assert [item["body"] for item in alice_laptop.received("message:new")] == [body]


def test_the_rest_send_takes_a_voice_message_too(pair):
    alice_phone, _, bob, conversation_id = pair
    upload = voice_upload(alice_phone, 1.0, "ogg")
    response = alice_phone.http.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": {"type": "audio", "upload_id": upload["id"]}},
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()["message"]["body"]
    assert (body["type"], body["ext"], body["mime"]) == ("audio", "ogg", "audio/ogg")
    assert [item["body"] for item in bob.received("message:new")] == [body]


def test_the_members_get_the_recording_with_ranges_and_a_stranger_does_not(pair, make_user, login):
    alice_phone, _, bob, conversation_id = pair
    data = audio(2.0, "webm")
    upload = uploaded(alice_phone.http, data, "voice.webm", purpose="voice")
    body = send_voice(alice_phone, conversation_id, upload)["body"]
    whole = fetch(bob.http, body["url"])
    assert whole.status_code == 200
    assert whole.data == data
    assert whole.mimetype == "audio/webm"
    part = fetch(bob.http, body["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.data == data[:100]
    make_user("mallory")
    assert fetch(login("mallory"), body["url"]).status_code == 403


def test_a_voice_upload_may_go_as_a_file(pair):
    alice_phone, _, bob, conversation_id = pair
    upload = voice_upload(alice_phone, 1.0)
    ack = alice_phone.send(conversation_id, body={"type": "file", "upload_id": upload["id"]})
    assert ack["ok"], ack
    body = ack["message"]["body"]
    assert ack["message"]["type"] == "file"
    assert (body["type"], body["mime"], body["ext"]) == ("file", "audio/webm", "webm")
    assert body["name"]
    assert [item["type"] for item in bob.received("message:new")] == ["file"]


def test_an_audio_message_needs_an_audio_upload(pair, app):
    alice_phone, _, bob, conversation_id = pair
    picture = uploaded(alice_phone.http, image_bytes("PNG", (8, 8)), "a.png")
    clip = uploaded(alice_phone.http, video(0.5, "mp4"), "clip.mp4")
    document = uploaded(alice_phone.http, b"just some notes\n", "notes.txt")
    before = counts(app)
    for upload in (picture, clip, document):
        ack = alice_phone.send(conversation_id, body={"type": "audio", "upload_id": upload["id"]})
        assert code_of(ack) == "upload_wrong_kind", (upload["kind"], ack)
        assert ack["error"]["fields"] == {"upload_id": f"is of kind {upload['kind']}"}
    # Nor does a voice upload go as a picture or a video.
    upload = voice_upload(alice_phone, 1.0)
    for kind in ("img", "video"):
        ack = alice_phone.send(conversation_id, body={"type": kind, "upload_id": upload["id"]})
        assert code_of(ack) == "upload_wrong_kind"
    assert counts(app) == before
    assert bob.received("message:new") == []


def test_someone_elses_recording_cannot_be_sent(pair, app):
    alice_phone, _, bob, conversation_id = pair
    upload = voice_upload(alice_phone, 1.0)
    before = counts(app)
    ack = bob.send(conversation_id, body={"type": "audio", "upload_id": upload["id"]})
    assert code_of(ack) == "not_your_upload"
    assert counts(app) == before
    # Still Alice's to send.
    assert send_voice(alice_phone, conversation_id, upload)["body"]["upload_id"] == upload["id"]


def test_a_recording_is_sent_once(pair, app):
    alice_phone, _, bob, conversation_id = pair
    upload = voice_upload(alice_phone, 1.0)
    send_voice(alice_phone, conversation_id, upload)
    bob.received()
    before = counts(app)
    ack = alice_phone.send(conversation_id, body={"type": "audio", "upload_id": upload["id"]})
    assert code_of(ack) == "upload_in_use"
    assert counts(app) == before
    assert bob.received("message:new") == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "audio"},
        {"type": "audio", "upload_id": "0" * 32, "duration": 3},
        {"type": "audio", "upload_id": "0" * 32, "url": "/media/x"},
        {"type": "audio", "upload_id": 7},
    ],
)
def test_an_audio_body_is_only_its_upload_id(pair, app, body):
    alice_phone, _, _, conversation_id = pair
    before = counts(app)
    ack = alice_phone.send(conversation_id, body=body)
    assert code_of(ack) == "invalid_input"
    assert counts(app) == before


def test_an_unknown_upload_is_not_found(pair, app):
    alice_phone, _, _, conversation_id = pair
    ack = alice_phone.send(conversation_id, body={"type": "audio", "upload_id": "ab" * 16})
    assert code_of(ack) == "upload_not_found"
