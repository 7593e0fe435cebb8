"""The edges of the API: body sizes, deep JSON, ids and text out of range, and the rate-limit
switch honoured on every path."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from app.extensions import db, limiter
from app.models import Message, Upload, User
from tests.chat_helpers import connect
from tests.conftest import PASSWORD
from tests.test_pages import csrf_from


@pytest.fixture
def pair(app, make_user, login, befriend):
    """Alice and Bob, friends with a direct conversation, each with a socket."""
    befriend(make_user("alice"), make_user("bob"))
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    response = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id})
    conversation_id = response.get_json()["conversation"]["id"]
    return alice, bob, conversation_id


def error_of(response) -> dict:
    return response.get_json()["error"]


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def upload(http, data: bytes, name: str = "a.txt"):
    token = http.get("/api/v1/auth/csrf").get_json()["csrf_token"]
    return http.post(
        "/api/v1/uploads",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers={"X-CSRFToken": token},
    )


# --- body sizes ------------------------------------------------------------------------------


def test_a_json_body_over_the_cap_is_refused_before_it_is_read(app, make_user, monkeypatch):
    make_user("alice")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "2 per minute")
    client = app.test_client()
    body = json.dumps({"username": "alice", "password": "x" * (app.config["MAX_JSON_BYTES"] + 1)})
    for _ in range(3):
        response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
        assert response.status_code == 413
        assert error_of(response)["code"] == "payload_too_large"
    # Refused bodies were never sign-in attempts: the per-address limit is untouched.
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
    )


def test_a_chunked_body_is_cut_at_the_cap(app):
    size = app.config["MAX_JSON_BYTES"] * 4
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/login",
        input_stream=io.BytesIO(b'{"username": "' + b"a" * size + b'"}'),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_a_form_body_over_the_cap_is_refused(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "a", "password": "p" * (70 * 1024)})
    assert response.status_code == 413
    assert b"larger than" in response.data


def test_every_route_but_uploads_is_capped(pair, app):
    alice, _, conversation_id = pair
    big = {"client_msg_id": "edge-msg-0001", "body": {"type": "txt", "msg": "x" * (70 * 1024)}}
    response = alice.http.post(f"/api/v1/conversations/{conversation_id}/messages", json=big)
    assert response.status_code == 413
    assert count(app, Message) == 0
    # A message at the text limit, escaped the longest way JSON allows, still fits.
    text = "😀" * 5000
    body = json.dumps({"client_msg_id": "edge-msg-0002", "body": {"type": "txt", "msg": text}})
    assert len(body) > 50_000
    response = alice.http.post(
        f"/api/v1/conversations/{conversation_id}/messages", data=body, content_type="application/json"
    )
    assert response.status_code == 201, response.get_json()
    # Uploads keep their own, larger limit.
    assert upload(alice.http, b"z" * (200 * 1024)).status_code == 201


@pytest.mark.parametrize("body", ["[" * 50_000, '{"a":' * 12_000, "[" * 5_000 + "]" * 5_000])
def test_deeply_nested_json_is_invalid_json(pair, app, body):
    alice, _, conversation_id = pair
    for path in ("/api/v1/auth/login", f"/api/v1/conversations/{conversation_id}/messages", "/api/v1/groups"):
        response = alice.http.post(path, data=body, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert error_of(response)["code"] in {"invalid_json", "invalid_input"}
    response = alice.http.post("/api/v1/groups", data="[" * 50_000, content_type="application/json")
    assert error_of(response)["code"] == "invalid_json"


# --- the rate-limit switch ---------------------------------------------------------------------


def test_with_rate_limits_switched_off_sends_and_uploads_are_never_refused(pair, app, monkeypatch):
    alice, bob, conversation_id = pair
    # As in a process started with RATELIMIT_ENABLED=false: Flask-Limiter never built a counter.
    monkeypatch.setitem(app.config, "RATELIMIT_ENABLED", False)
    monkeypatch.setattr(limiter, "enabled", False)
    monkeypatch.setattr(limiter, "_limiter", None)
    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "1 per minute")
    monkeypatch.setitem(app.config, "UPLOAD_RATE_LIMIT", "1 per minute")
    acks = [alice.send(conversation_id, f"m{i}") for i in range(5)]
    assert [ack["ok"] for ack in acks] == [True] * 5, acks
    for i in range(3):
        response = alice.http.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"client_msg_id": f"edge-rest-{i:04d}", "body": {"type": "txt", "msg": "hi"}},
        )
        assert response.status_code == 201, response.get_json()
    assert [upload(alice.http, b"hi").status_code for _ in range(3)] == [201] * 3
    assert count(app, Message) == 8
    assert count(app, Upload) == 3
    assert len(bob.received("message:new")) == 8


# --- ids, text and nulls -------------------------------------------------------------------------

HUGE = ["2147483648", "9223372036854775808", str(2**70), "1" + "0" * 30, "9" * 5000]


@pytest.mark.parametrize("value", HUGE)
def test_ids_beyond_the_database_range_in_a_path_are_not_found(pair, value):
    alice, _, conversation_id = pair
    for path in (
        f"/api/v1/conversations/{value}",
        f"/api/v1/groups/{value}",
        f"/api/v1/conversations/{conversation_id}/messages/{value}0000/readers",
    ):
        response = alice.http.get(path)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"
    assert alice.http.delete(f"/api/v1/friends/{value}").status_code == 404


@pytest.mark.parametrize("value", HUGE + ["-1", "１２", "²"])
def test_ids_beyond_the_database_range_in_a_query_are_invalid(pair, value):
    alice, _, conversation_id = pair
    for path in (f"/api/v1/friends?after={value}", f"/api/v1/presence?user_ids={value}"):
        response = alice.http.get(path)
        assert response.status_code == 400, path
        assert error_of(response)["code"] == "invalid_input"
    if value != "2147483648":  # a cursor is 64-bit
        response = alice.http.get(f"/api/v1/sync?cursor={value}")
        assert response.status_code == 400
        assert error_of(response)["code"] == "invalid_cursor"


@pytest.mark.parametrize("value", [2**31, 2**63, 2**70, 10**30, 0, -1])
def test_ids_beyond_the_database_range_in_bodies_and_events_are_invalid(pair, app, value):
    alice, _, conversation_id = pair
    for path, body in (
        ("/api/v1/conversations", {"user_id": value}),
        ("/api/v1/friend-requests", {"user_id": value}),
        ("/api/v1/groups", {"name": "g", "member_ids": [value]}),
    ):
        response = alice.http.post(path, json=body)
        assert response.status_code == 400, (path, response.get_json())
        assert error_of(response)["code"] == "invalid_input"
    for name, data in (
        (
            "message:send",
            {"conversation_id": value, "client_msg_id": "edge-ev-0001", "body": {"type": "txt", "msg": "x"}},
        ),
        ("conversation:read", {"conversation_id": value, "seq": 1}),
        ("typing", {"conversation_id": value}),
    ):
        ack = alice.emit(name, data)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_input", (name, ack)
    ack = alice.emit("conversation:read", {"conversation_id": conversation_id, "seq": 2**63})
    assert ack["error"]["code"] == "invalid_input"
    assert count(app, Message) == 0


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "\ud800", "x\udfff"])
def test_unstorable_text_is_refused_wherever_it_comes_in(pair, app, text):
    alice, _, conversation_id = pair
    for method, path, body in (
        ("patch", "/api/v1/auth/me", {"nickname": text}),
        ("patch", "/api/v1/auth/me", {"signature": text}),
        ("post", "/api/v1/auth/register", {"username": text, "password": PASSWORD}),
        ("post", "/api/v1/groups", {"name": text}),
    ):
        response = getattr(alice.http, method)(path, json=body)
        assert response.status_code == 400, (path, response.get_json())
        assert error_of(response)["code"] == "invalid_input"
    ack = alice.send(conversation_id, text)
    assert ack["error"]["code"] == "invalid_input"
    if "\x00" in text:
        for path in ("/api/v1/users/search?q=a%00b", "/api/v1/groups/search?q=%00"):
            response = alice.http.get(path)
            assert response.status_code == 400
            assert error_of(response)["code"] == "invalid_input"
    with app.app_context():
        assert db.session.scalar(select(User.nickname).where(User.id == alice.user_id)) == "alice"
    assert count(app, Message) == 0


def test_a_nul_in_a_form_is_refused(app, make_user):
    make_user("alice")
    client = app.test_client()
    token = csrf_from(client.get("/login"))
    response = client.post(
        "/login", data={"csrf_token": token, "username": "alice\x00", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert b"NUL" in response.data
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_null_signature_is_invalid_and_changes_nothing(pair, app):
    alice, *_ = pair
    assert alice.http.patch("/api/v1/auth/me", json={"signature": "hello"}).status_code == 200
    response = alice.http.patch("/api/v1/auth/me", json={"signature": None})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_input"
    assert "signature" in error_of(response)["fields"]
    assert alice.http.get("/api/v1/auth/me").get_json()["user"]["signature"] == "hello"
