"""The suite's own hygiene (tests/conftest.py `_drop_socket_clients`): a Flask-SocketIO test
client a test leaves connected is disconnected and forgotten when the test ends.

Without it the stale client stays in its `user:<id>` room; the tables are emptied between
tests and SQLite hands the next test's users the same ids, so the old socket receives, and
queues for the rest of the run, everything later tests send to those users. The test plays
both tests in one: a nested step leaves a socket behind, the cleanup runs as the fixture runs
it, the tables are emptied and the users made again, and nothing may reach the old socket nor
hold it any more.
"""

from __future__ import annotations

import gc
import weakref

from flask_socketio.test_client import SocketIOTestClient

from app import realtime, speak_cache
from app.extensions import db, socketio
from tests.chat_helpers import connect
from tests.conftest import _clean, _drop_socket_clients


def test_a_socket_left_connected_is_dropped_and_reached_by_nothing_later(app, make_user, login, befriend):
    made_before = set(SocketIOTestClient.clients)

    def a_test_that_leaves_its_socket_connected() -> dict:
        alice_id = make_user("alice")
        alice = connect(app, login("alice"))
        assert alice.socket.is_connected()
        alice.received()  # the connect-time events: what arrives from now on is queued anew
        return {
            "user_id": alice_id,
            "eio_sid": alice.socket.eio_sid,
            "client": weakref.ref(alice.socket),
            # The list the client appends what it receives to (until someone calls get_received).
            "queue": alice.socket.queue,
        }

    left = a_test_that_leaves_its_socket_connected()
    assert left["eio_sid"] in SocketIOTestClient.clients  # still there: the step did not close it

    # The end of that test and the start of the next, as the autouse fixture does them.
    _drop_socket_clients(made_before)
    _clean(app)
    app.extensions["parley.presence"].clear()
    speak_cache.clear()

    # New users (on SQLite alice gets her old id back) and a message to alice.
    alice_id, bob_id = make_user("alice"), make_user("bob")
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert alice_id == left["user_id"]
    befriend(alice_id, bob_id)
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    conversation = bob.http.post("/api/v1/conversations", json={"user_id": alice_id}).get_json()
    assert bob.send(conversation["conversation"]["id"], "hi alice")["ok"]
    assert [event["body"]["msg"] for event in alice.received("message:new")] == ["hi alice"]
    # And straight to the old user's room (PostgreSQL never gives the old id again).
    realtime.emit_to_users("probe", {"n": 1}, [left["user_id"]])

    assert left["queue"] == []
    assert socketio.server.manager.sid_from_eio_sid(left["eio_sid"], "/") is None
    assert left["eio_sid"] not in socketio.server.environ
    assert left["eio_sid"] not in SocketIOTestClient.clients
    gc.collect()
    assert left["client"]() is None  # nothing keeps it, or what it had queued
