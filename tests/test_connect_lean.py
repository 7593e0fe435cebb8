"""The socket connect and disconnect run in an application context only: the connect decodes the
session cookie once and loads the device (with its user and the ban check) in one statement,
built once like every statement of the presence announcement; no Flask request context, no
Flask-Login user loader, no statement built per connect."""

from __future__ import annotations

import pytest
from flask import has_request_context
from sqlalchemy.sql.selectable import Select
from werkzeug.test import EnvironBuilder

from app.auth import services as auth_services
from app.chat import events
from app.extensions import db, socketio
from app.models import User
from app.moderation import services as moderation
from tests.chat_helpers import connect


@pytest.fixture
def alice_and_bob(app, make_user, befriend, login):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    return login("alice"), login("bob"), alice_id, bob_id


def test_connect_and_disconnect_push_no_request_context(app, alice_and_bob, monkeypatch):
    alice_http, bob_http, alice_id, bob_id = alice_and_bob
    alice = connect(app, alice_http)
    seen = []
    original = events.announce_presence

    def spy(user_id, *, online, **kwargs):
        seen.append((user_id, online, has_request_context(), db.session is not None))
        return original(user_id, online=online, **kwargs)

    monkeypatch.setattr(events, "announce_presence", spy)
    bob = connect(app, bob_http)
    bob.socket.disconnect()
    assert seen == [(bob_id, True, False, True), (bob_id, False, False, True)]
    assert [event["online"] for event in alice.received("presence") if event["user_id"] == bob_id] == [
        True,
        False,
    ]
    with app.app_context():
        assert db.session.get(User, bob_id).last_seen_at is not None


def test_connect_decodes_the_cookie_once_and_runs_no_user_loader(app, alice_and_bob, spies):
    alice_http = alice_and_bob[0]
    alice_http.get("/api/v1/auth/me")  # the test client's cookie jar is filled
    spies.update(session=0, user=0)
    socket = socketio.test_client(app, flask_test_client=alice_http)
    assert socket.is_connected()
    socket.disconnect()
    assert spies == {"session": 1, "user": 0}


def test_connect_and_disconnect_build_no_statement(app, alice_and_bob, monkeypatch, count_queries):
    alice_http, bob_http, _, bob_id = alice_and_bob
    connect(app, alice_http).socket.disconnect()  # anything built lazily is built now
    built = []
    original = Select.__init__

    def counting_init(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    bob_http.get("/api/v1/auth/me")  # the test client's cookie jar is filled
    monkeypatch.setattr(Select, "__init__", counting_init)
    with count_queries() as statements:
        bob = socketio.test_client(app, flask_test_client=bob_http)
    assert bob.is_connected()
    bob.disconnect()
    assert built == []
    # The device with its user and the ban check, then who hears bob come online.
    assert len(statements) == 2


@pytest.mark.parametrize(
    "cookie",
    [
        None,  # no session cookie at all
        "parley_session=forged",  # not signed by the server
    ],
)
def test_a_socket_without_a_valid_session_is_refused(app, cookie):
    headers = {"Cookie": cookie} if cookie else None
    socket = socketio.test_client(app, headers=headers)
    assert not socket.is_connected()
    assert app.extensions["parley.presence"].online_count() == 0


def test_a_revoked_or_banned_device_cannot_connect_with_its_cookie(app, alice_and_bob, make_user):
    alice_http, bob_http, alice_id, bob_id = alice_and_bob
    admin_id = make_user("admin", is_admin=True)
    with app.app_context():
        assert auth_services.revoke_all_devices(alice_id) == 1
        moderation.ban_user(admin_id, bob_id, "spam")
    assert not socketio.test_client(app, flask_test_client=bob_http).is_connected()
    socket = socketio.test_client(app, flask_test_client=alice_http)
    assert not socket.is_connected()


def test_disconnect_forgets_the_sockets_identity_and_typing_throttle(app, alice_and_bob):
    alice_http, bob_http, alice_id, _ = alice_and_bob
    conversation = alice_http.post("/api/v1/conversations", json={"user_id": alice_and_bob[3]})
    conversation_id = conversation.get_json()["conversation"]["id"]
    before = set(events._identity)
    alice = connect(app, alice_http)
    [sid] = set(events._identity) - before
    assert events._identity[sid][0] == alice_id
    assert alice.emit("typing", {"conversation_id": conversation_id})["throttled"] is False
    assert any(key[0] == sid for key in events._typing_sent)
    alice.socket.disconnect()
    assert sid not in events._identity
    assert not any(key[0] == sid for key in events._typing_sent)


def test_a_connection_keeps_no_request_object_in_its_environ(app, alice_and_bob):
    # The environ lives as long as the socket: a request cached in it would be memory held by
    # every idle connection.
    alice_http, _, alice_id, _ = alice_and_bob
    cookie = alice_http.get_cookie(app.config["SESSION_COOKIE_NAME"])
    headers = {"Cookie": f"{cookie.key}={cookie.value}"}
    environ = EnvironBuilder(path="/socket.io/", headers=headers).get_environ()
    with app.app_context():
        device = events._signed_in_device(app, environ)
        assert device is not None and device.user_id == alice_id
    assert "werkzeug.request" not in environ
