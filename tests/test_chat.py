"""Messaging through the services, REST routes and socket events (in-process socket client)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db, socketio
from app.groups.services import create_group
from app.models import Group, GroupMember, Message, Sanction, utcnow
from tests.chat_helpers import connect, new_client_msg_id


def message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Message.id)))


def test_a_socket_without_a_session_is_refused(app, client):
    socket = socketio.test_client(app, flask_test_client=client)
    assert not socket.is_connected()


def test_a_message_reaches_every_device_of_every_member(pair):
    alice_phone, alice_laptop, bob, conversation_id = pair
    ack = alice_phone.send(conversation_id, "哈哈哈 😀")
    assert ack["ok"] is True
    message = ack["message"]
    assert message["seq"] == 1
    assert message["body"] == {"type": "txt", "msg": "哈哈哈 😀"}
    assert message["sender"]["id"] == alice_phone.user_id
    assert ack["duplicate"] is False
    for device in (alice_phone, alice_laptop, bob):
        assert device.received("message:new") == [message]


def test_seqs_count_up_per_conversation(pair):
    alice_phone, _, bob, conversation_id = pair
    seqs = [alice_phone.send(conversation_id, f"m{i}")["message"]["seq"] for i in range(3)]
    seqs.append(bob.send(conversation_id, "reply")["message"]["seq"])
    assert seqs == [1, 2, 3, 4]


def test_resending_a_client_msg_id_returns_the_original_and_delivers_nothing(pair, app):
    alice_phone, alice_laptop, bob, conversation_id = pair
    first = alice_phone.send(conversation_id, "once", client_msg_id="retry-0001")
    bob.received()
    alice_laptop.received()
    again = alice_laptop.send(conversation_id, "once", client_msg_id="retry-0001")
    assert again["ok"] is True
    assert again["duplicate"] is True
    assert again["message"]["id"] == first["message"]["id"]
    assert bob.received("message:new") == []
    assert alice_laptop.received("message:new") == []
    assert message_count(app) == 1


def test_a_client_msg_id_cannot_be_reused_for_another_conversation(pair, app, make_user, befriend):
    alice_phone, _, _, conversation_id = pair
    carol_id = make_user("carol")
    befriend(alice_phone.user_id, carol_id)
    other = alice_phone.http.post("/api/v1/conversations", json={"user_id": carol_id}).get_json()
    alice_phone.send(conversation_id, "x", client_msg_id="reused-0001")
    ack = alice_phone.send(other["conversation"]["id"], "x", client_msg_id="reused-0001")
    assert ack["ok"] is False
    assert ack["error"]["code"] == "duplicate_client_msg_id"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": "hi"}}, "conversation_id"),
        ({"conversation_id": "1", "client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": "hi"}}, None),
        ({"conversation_id": 1, "body": {"type": "txt", "msg": "hi"}}, "client_msg_id"),
        ({"conversation_id": 1, "client_msg_id": "short", "body": {"type": "txt", "msg": "hi"}}, None),
        ({"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": ""}}, None),
        ({"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": "   "}}, None),
        (
            {"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": "x" * 5001}},
            None,
        ),
        ({"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": {"type": "html", "msg": "<b>"}}, None),
        ({"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": {"type": "txt", "msg": 5}}, None),
        ({"conversation_id": 1, "client_msg_id": "abcdefgh-1", "body": "hi"}, "body"),
        (
            {
                "conversation_id": 1,
                "client_msg_id": "abcdefgh-1",
                "body": {"type": "txt", "msg": "x"},
                "from": 9,
            },
            "from",
        ),
        ("not an object", "body"),
    ],
)
def test_malformed_sends_are_refused_and_store_nothing(pair, app, payload, field):
    alice_phone, alice_laptop, bob, conversation_id = pair
    if isinstance(payload, dict) and payload.get("conversation_id") == 1:
        payload = {**payload, "conversation_id": conversation_id}
    ack = alice_phone.emit("message:send", payload)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "invalid_input"
    if field:
        assert any(name.startswith(field) for name in ack["error"]["fields"])
    assert message_count(app) == 0
    assert bob.received("message:new") == []


def test_the_longest_text_is_accepted(pair):
    alice_phone, _, _, conversation_id = pair
    assert alice_phone.send(conversation_id, "字" * 5000)["ok"] is True


def test_strangers_and_unknown_conversations_get_not_found(pair, app, make_user, login):
    _, _, bob, conversation_id = pair
    make_user("mallory")
    mallory = connect(app, login("mallory"))
    for target in (conversation_id, 999999):
        ack = mallory.send(target, "let me in")
        assert ack["ok"] is False
        assert ack["error"]["code"] == "not_found"
    assert message_count(app) == 0
    assert bob.received("message:new") == []
    assert mallory.http.get(f"/api/v1/conversations/{conversation_id}/messages").status_code == 404
    assert mallory.emit("conversation:read", {"conversation_id": conversation_id, "seq": 1})["ok"] is False


def test_a_muted_user_is_refused_at_once_on_an_open_socket(pair, app):
    alice_phone, _, bob, conversation_id = pair
    with app.app_context():
        db.session.add(Sanction(user_id=alice_phone.user_id, kind="mute", reason="spam"))
        db.session.commit()
    ack = alice_phone.send(conversation_id, "still here?")
    assert ack["error"]["code"] == "muted"
    assert bob.send(conversation_id, "I can speak")["ok"] is True


def test_an_expired_mute_lets_the_user_speak(pair, app):
    alice_phone, _, _, conversation_id = pair
    with app.app_context():
        db.session.add(
            Sanction(user_id=alice_phone.user_id, kind="mute", expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert alice_phone.send(conversation_id, "free again")["ok"] is True


@pytest.fixture
def group(app, make_user, login, befriend):
    owner_id = make_user("owner")
    member_id = make_user("member")
    befriend(owner_id, member_id)
    with app.app_context():
        group = create_group(owner_id, "Team", [member_id])
        ids = (group.id, group.conversation_id)
    owner = connect(app, login("owner"))
    member = connect(app, login("member"))
    return ids, owner, member


def test_a_dissolved_group_is_read_only(group, app):
    (group_id, conversation_id), owner, member = group
    with app.app_context():
        db.session.get(Group, group_id).dissolved_at = utcnow()
        db.session.commit()
    for device in (owner, member):
        assert device.send(conversation_id, "hello?")["error"]["code"] == "group_dissolved"


def test_mute_all_lets_only_owner_and_admins_speak(group, app):
    (group_id, conversation_id), owner, member = group
    with app.app_context():
        db.session.get(Group, group_id).muted_all = True
        db.session.commit()
    assert member.send(conversation_id, "hi")["error"]["code"] == "group_muted"
    assert owner.send(conversation_id, "announcement")["ok"] is True


def test_a_member_muted_in_a_group_is_refused_until_it_expires(group, app):
    (group_id, conversation_id), owner, member = group
    with app.app_context():
        row = db.session.get(GroupMember, (group_id, member.user_id))
        row.muted_until = until = utcnow() + timedelta(seconds=1)
        db.session.commit()
    assert member.send(conversation_id, "hi")["error"]["code"] == "member_muted"
    # The mute runs out by itself: nothing is written, and the next send goes through.
    time.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.05)
    assert member.send(conversation_id, "hi")["ok"] is True


def test_a_burst_of_sends_is_rate_limited_with_a_code(pair, app, monkeypatch):
    alice_phone, _, bob, conversation_id = pair
    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "3 per minute")
    acks = [alice_phone.send(conversation_id, f"spam {i}") for i in range(5)]
    assert [ack["ok"] for ack in acks] == [True, True, True, False, False]
    assert acks[3]["error"]["code"] == "rate_limited"
    assert len(bob.received("message:new")) == 3


def test_events_from_a_signed_out_device_are_refused(pair):
    alice_phone, alice_laptop, bob, conversation_id = pair
    laptop_id = alice_laptop.http.get("/api/v1/auth/me").get_json()["device"]["id"]
    assert alice_phone.http.delete(f"/api/v1/auth/devices/{laptop_id}").status_code == 204
    assert not alice_laptop.socket.is_connected()
    assert alice_phone.socket.is_connected()


def test_logout_drops_the_devices_socket(pair):
    alice_phone, alice_laptop, _, _ = pair
    assert alice_laptop.http.post("/api/v1/auth/logout", json={}).status_code == 204
    assert not alice_laptop.socket.is_connected()
    assert alice_phone.socket.is_connected()


def test_send_over_rest_is_the_same_service(pair):
    alice_phone, _, bob, conversation_id = pair
    body = {"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": "via REST"}}
    response = alice_phone.http.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)
    assert response.status_code == 201
    message = response.get_json()["message"]
    assert bob.received("message:new") == [message]
    again = alice_phone.http.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True


def test_typing_reaches_the_others_but_not_the_typist(pair):
    alice_phone, alice_laptop, bob, conversation_id = pair
    assert alice_phone.emit("typing", {"conversation_id": conversation_id}) == {
        "ok": True,
        "throttled": False,
    }
    assert alice_phone.emit("typing", {"conversation_id": conversation_id}) == {"ok": True, "throttled": True}
    assert bob.received("typing") == [
        {"conversation_id": conversation_id, "user_id": alice_phone.user_id, "nickname": "alice"}
    ]
    assert alice_laptop.received("typing") == []


def test_a_send_lets_the_next_typing_through_at_once(pair):
    """Typing right after a send is news to the others: the 2 s throttle starts over."""
    alice_phone, alice_laptop, bob, conversation_id = pair
    typing = {"conversation_id": conversation_id}
    assert alice_phone.emit("typing", typing)["throttled"] is False
    assert alice_phone.emit("typing", typing)["throttled"] is True
    body = {"type": "txt", "msg": "hi"}
    payload = {"conversation_id": conversation_id, "client_msg_id": "after-typing", "body": body}
    assert alice_phone.emit("message:send", payload)["ok"] is True
    assert alice_phone.emit("typing", typing)["throttled"] is False
    assert alice_phone.emit("typing", typing)["throttled"] is True
    # Another socket's send does not reset this one's count.
    ack = alice_laptop.emit("message:send", {**payload, "client_msg_id": "from-the-laptop"})
    assert ack["ok"] is True, ack
    assert alice_phone.emit("typing", typing)["throttled"] is True
    assert len(bob.received("typing")) == 2


def test_typing_in_a_strangers_conversation_is_refused(pair, app, make_user, login):
    _, _, bob, conversation_id = pair
    make_user("eve")
    eve = connect(app, login("eve"))
    assert eve.emit("typing", {"conversation_id": conversation_id})["error"]["code"] == "not_found"
    assert bob.received("typing") == []
