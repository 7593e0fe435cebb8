"""Socket events run without Flask's request context: identity was fixed at connect, so an event
neither decodes the session cookie nor runs Flask-Login's user loader; only the connect does."""

from __future__ import annotations

import pytest
from flask import has_request_context
from sqlalchemy import func, select

from app.auth import session as auth_session
from app.chat import events
from app.extensions import db, login_manager
from app.models import Message
from tests.chat_helpers import connect


@pytest.fixture
def alice_and_bob(app, make_user, login, befriend):
    befriend(make_user("alice"), make_user("bob"))
    alice_http, bob_http = login("alice"), login("bob")
    answer = alice_http.post(
        "/api/v1/conversations", json={"user_id": bob_http.get("/api/v1/auth/me").get_json()["user"]["id"]}
    )
    return alice_http, bob_http, answer.get_json()["conversation"]["id"]


def test_events_decode_no_session_and_load_no_user_only_the_connect_does(app, alice_and_bob, spies):
    alice_http, bob_http, conversation_id = alice_and_bob
    alice = connect(app, alice_http)
    bob = connect(app, bob_http)
    after_connect = dict(spies)
    assert after_connect["session"] >= 2 and after_connect["user"] >= 2  # the connects did
    for number in range(5):
        assert alice.send(conversation_id, f"hello {number}")["ok"] is True
        assert bob.emit("typing", {"conversation_id": conversation_id})["ok"] is True
        assert bob.emit("conversation:read", {"conversation_id": conversation_id, "seq": number + 1})["ok"]
    assert alice.emit("message:send", {"conversation_id": "nope"})["error"]["code"] == "invalid_input"
    assert spies == after_connect
    assert len(bob.received("message:new")) == 5


def test_a_handler_runs_in_an_application_context_and_knows_its_socket(app, alice_and_bob, monkeypatch):
    alice_http, _, conversation_id = alice_and_bob
    alice = connect(app, alice_http)
    seen = []
    original = events.notify_typing

    def spy(user_id, conversation):
        seen.append((user_id, events.current_sid(), has_request_context(), db.session is not None))
        return original(user_id, conversation)

    monkeypatch.setattr(events, "notify_typing", spy)
    assert alice.emit("typing", {"conversation_id": conversation_id}) == {"ok": True, "throttled": False}
    # The throttle is per socket: a second device of the same user is not throttled by the first.
    second = connect(app, alice_http)
    assert second.emit("typing", {"conversation_id": conversation_id})["throttled"] is False
    assert alice.emit("typing", {"conversation_id": conversation_id})["throttled"] is True
    [(user_id, sid, in_request, has_session), (_, second_sid, _, _)] = seen
    assert user_id == alice.user_id and not in_request and has_session
    assert sid in events._identity and second_sid in events._identity and sid != second_sid


def test_a_failing_handler_answers_internal_error_and_rolls_back(app, alice_and_bob, monkeypatch):
    alice_http, _, conversation_id = alice_and_bob
    alice = connect(app, alice_http)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(events.pipeline, "send", broken)
    ack = alice.send(conversation_id, "hello")
    assert ack["ok"] is False and ack["error"]["code"] == "internal_error"
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 0


def test_more_than_one_argument_is_refused_with_invalid_input(app, alice_and_bob):
    alice_http, _, conversation_id = alice_and_bob
    alice = connect(app, alice_http)
    ack = alice.socket.emit("typing", {"conversation_id": conversation_id}, "extra", callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_input"
    assert alice.socket.is_connected()


def test_a_socket_this_process_no_longer_knows_is_unauthenticated(app, alice_and_bob):
    alice_http, _, conversation_id = alice_and_bob
    before = set(events._identity)
    alice = connect(app, alice_http)
    [sid] = set(events._identity) - before
    identity = events._identity.pop(sid)
    try:
        ack = alice.send(conversation_id, "hello")
    finally:
        events._identity[sid] = identity
    assert ack["ok"] is False and ack["error"]["code"] == "unauthenticated"
    with app.app_context():
        assert db.session.scalar(select(func.count(Message.id))) == 0


def test_the_user_loader_is_the_one_parley_registers(app):
    # The spy above counts the loader Flask-Login really calls.
    assert login_manager._user_callback is auth_session.load_user


def test_the_profile_counts_an_event_that_skips_flask_socketio():
    from bench.profile import fold
    from bench.servers import ROOT

    site = "/venv/lib/python3.11/site-packages"
    raw = (
        f"run ({site}/gevent/hub.py:1);_handle_event_internal ({site}/socketio/server.py:612);"
        f"wrapped ({ROOT}/app/chat/events.py:130);send_message ({ROOT}/app/chat/send.py:340) 3\n"
        f"run ({site}/gevent/hub.py:1);encode ({site}/socketio/packet.py:64);"
        f"dumps ({ROOT}/app/jsonpack.py:32) 1\n"
    )
    total, parts = fold(raw)
    shares = dict(parts)
    assert total == 4
    assert shares["socket event, all of it"] == 75.0 and shares["  Parley's handler (events.wrapped)"] == 75.0
    assert shares["  Flask request context push/pop"] == 0.0
    assert shares["JSON encode/decode"] == 25.0
