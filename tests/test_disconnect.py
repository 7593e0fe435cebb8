"""Sockets dropped by a service (a revoked device, a ban) go offline like any other disconnect:
the user's friends hear it and last-seen is written, even when the socket is on this process."""

from __future__ import annotations

from app.auth import services as auth_services
from app.extensions import db
from app.models import User
from tests.chat_helpers import connect


def test_revoking_a_connected_device_announces_the_user_offline(app, make_user, befriend, login):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    alice.received()  # bob coming online

    with app.app_context():
        assert auth_services.revoke_all_devices(bob_id) == 1

    assert not bob.socket.is_connected()
    offline = [event for event in alice.received("presence") if event["user_id"] == bob_id]
    assert [event["online"] for event in offline] == [False]
    with app.app_context():
        assert db.session.get(User, bob_id).last_seen_at is not None
