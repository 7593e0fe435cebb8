"""The synchronous `message.before_send` webhook: allow, reject, replace, and what a slow, failing
or unreachable integrator does (fail-open or fail-closed) — without holding up other users."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.extensions import db
from app.models import Message, User
from app.moderation import services as moderation
from app.webhooks import deliver, manage
from tests.chat_helpers import connect
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.fake_integrator import FakeIntegrator
from tests.socket_client import Device


@pytest.fixture
def integrator():
    fake = FakeIntegrator().start()
    yield fake
    fake.stop()


def add_hook(app, fake, events=("message.before_send",), **options) -> int:
    with app.app_context():
        return manage.create_hook(None, "policy", fake.url, list(events), secret=fake.secret, **options).id


@pytest.fixture
def chat(app, make_user, befriend, login):
    """Alice and Bob, friends, each with a device, and their conversation."""
    alice, bob = make_user("alice"), make_user("bob")
    befriend(alice, bob)
    with app.app_context():
        db.session.get(User, alice).external_id = "crm-alice"
        db.session.commit()
        conversation_id = open_direct(alice, bob)[0]["id"]
    devices = connect(app, login("alice")), connect(app, login("bob"))
    for device in devices:
        device.received()
    return (*devices, conversation_id)


TEXT = {"type": "txt", "msg": "meanwhile"}


def stored(app) -> list[dict]:
    with app.app_context():
        return list(
            db.session.scalars(select(Message.body).where(Message.type == "txt").order_by(Message.id))
        )


def checks(fake) -> list[dict]:
    return [item.payload for item in fake.events("message.before_send")]


def test_an_allowed_message_is_stored_after_a_signed_check(app, chat, integrator):
    alice, bob, conversation_id = chat
    add_hook(app, integrator)
    ack = alice.send(conversation_id, "hello", client_msg_id="checked-0001")
    assert ack["ok"] is True
    (item,) = integrator.events("message.before_send")
    assert item.signed
    data = item.payload["data"]
    assert data == {
        "sender": {"id": alice.user_id, "external_id": "crm-alice", "username": "alice"},
        "conversation": {"id": conversation_id, "kind": "direct"},
        "client_msg_id": "checked-0001",
        "body": {"type": "txt", "msg": "hello"},
    }
    assert item.payload["event"] == "message.before_send" and item.payload["id"] == item.delivery
    assert stored(app) == [{"type": "txt", "msg": "hello"}]


@pytest.mark.parametrize("group_commit", [True, False])
def test_a_rejected_message_is_refused_with_the_integrators_code_and_not_stored(
    app, chat, integrator, monkeypatch, group_commit
):
    monkeypatch.setitem(app.config, "GROUP_COMMIT", group_commit)
    alice, bob, conversation_id = chat
    add_hook(app, integrator)
    integrator.decision = {"action": "reject", "code": "no_links", "message": "Links are not allowed here."}
    ack = alice.send(conversation_id, "see http://spam")
    assert ack["ok"] is False
    assert ack["error"]["code"] == "no_links" and ack["error"]["message"] == "Links are not allowed here."
    integrator.decision = {"action": "reject"}
    assert alice.send(conversation_id, "again")["error"]["code"] == "rejected_by_policy"
    assert stored(app) == []
    assert bob.received("message:new") == []


def test_a_replaced_body_is_stored_delivered_and_reported(app, chat, integrator):
    alice, bob, conversation_id = chat
    add_hook(app, integrator, ["message.before_send", "message.sent"])
    integrator.decision = {"action": "replace", "body": {"type": "txt", "msg": "[redacted]"}}
    ack = alice.send(conversation_id, "my card is 4111")
    assert ack["ok"] is True and ack["message"]["body"] == {"type": "txt", "msg": "[redacted]"}
    assert stored(app) == [{"type": "txt", "msg": "[redacted]"}]
    assert [m["body"]["msg"] for m in bob.received("message:new")] == ["[redacted]"]
    assert deliver.deliver_due(app) == 1
    (sent,) = integrator.events("message.sent")
    assert sent.payload["data"]["message"]["body"] == {"type": "txt", "msg": "[redacted]"}


def test_each_hook_sees_the_body_the_one_before_let_through(app, chat, integrator):
    alice, _, conversation_id = chat
    second = FakeIntegrator(decision=lambda payload: {"action": "allow"}).start()
    try:
        add_hook(app, integrator)
        add_hook(app, second)
        integrator.decision = {"action": "replace", "body": {"type": "txt", "msg": "first pass"}}
        alice.send(conversation_id, "original")
        (seen,) = checks(second)
        assert seen["data"]["body"] == {"type": "txt", "msg": "first pass"}
    finally:
        second.stop()
    assert stored(app) == [{"type": "txt", "msg": "first pass"}]


BAD_ANSWERS = {
    "another type": {"action": "replace", "body": {"type": "loc", "title": "x", "lat": 1, "lng": 2}},
    "an invalid body": {"action": "replace", "body": {"type": "txt", "msg": ""}},
    "no body": {"action": "replace"},
    "an unknown action": {"action": "maybe"},
    "a bad code": {"action": "reject", "code": "Not A Code!"},
}


@pytest.mark.parametrize("answer", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_is_a_failed_check(app, chat, integrator, answer):
    alice, _, conversation_id = chat
    hook_id = add_hook(app, integrator)
    integrator.decision = answer
    assert alice.send(conversation_id, "as sent")["ok"] is True  # fail-open: as it was
    with app.app_context():
        manage.update_hook(None, hook_id, fail_open=False)
    ack = alice.send(conversation_id, "refused")
    assert ack["error"]["code"] == "before_send_unavailable"
    assert stored(app) == [{"type": "txt", "msg": "as sent"}]


FAILURES = {
    "slow": lambda fake: setattr(fake, "delay", 1.0),
    "down": lambda fake: fake.down(),
    "http 500": lambda fake: setattr(fake, "before_send_status", 500),
}


@pytest.mark.parametrize("fail", FAILURES.values(), ids=FAILURES.keys())
def test_an_unanswered_check_fails_open_or_closed_as_the_hook_says(app, chat, integrator, fail):
    alice, bob, conversation_id = chat
    hook_id = add_hook(app, integrator, timeout_ms=300)
    fail(integrator)
    ack = alice.send(conversation_id, "open")
    assert ack["ok"] is True
    with app.app_context():
        manage.update_hook(None, hook_id, fail_open=False)
    ack = alice.send(conversation_id, "closed")
    assert ack["ok"] is False and ack["error"]["code"] == "before_send_unavailable"
    assert stored(app) == [{"type": "txt", "msg": "open"}]
    assert [m["body"]["msg"] for m in bob.received("message:new")] == ["open"]


def test_a_disabled_or_unsubscribed_hook_is_not_asked(app, chat, integrator, count_queries):
    alice, _, conversation_id = chat
    add_hook(app, integrator, ["user.registered"])
    add_hook(app, integrator, enabled=False)
    alice.send(conversation_id, "warm")  # the hook list is read once, then kept
    with count_queries() as seen:
        assert alice.send(conversation_id, "free")["ok"] is True
    assert checks(integrator) == []
    assert not [s for s in seen if "external_id" in s or "webhook" in s]


# --- live: one user's slow check holds up only that user -----------------------------------------


def test_a_slow_check_does_not_hold_up_other_users_sends(
    app, integrator, make_user, befriend, database_url, instance_path, tmp_path
):
    names = ["slow", "quick", "peer"]
    ids = {name: make_user(name) for name in names}
    befriend(ids["slow"], ids["peer"])
    befriend(ids["quick"], ids["peer"])
    with app.app_context():
        slow_conversation = open_direct(ids["slow"], ids["peer"])[0]["id"]
        quick_conversation = open_direct(ids["quick"], ids["peer"])[0]["id"]
    arrived = threading.Event()

    def decide(payload):
        if payload["data"]["sender"]["username"] == "slow":
            arrived.set()
            time.sleep(1.5)
        return {"action": "allow"}

    integrator.decision = decide
    add_hook(app, integrator, timeout_ms=5000)
    order: list[str] = []
    env = server_env(database_url, instance_path, WEBHOOK_CACHE_SECONDS="0")
    with ExitStack() as stack:
        server = LiveServer(env, tmp_path / "live.log").start()
        stack.callback(server.stop)
        slow = stack.enter_context(Device(server.url, "slow", PASSWORD))
        quick = stack.enter_context(Device(server.url, "quick", PASSWORD))

        def send_slow():
            ack = slow.send(slow_conversation, "takes a while")
            order.append("slow" if ack["ok"] else "slow failed")

        waiting = threading.Thread(target=send_slow)
        waiting.start()
        assert arrived.wait(10)  # the slow check is being made now
        for i in range(3):
            ack = quick.send(quick_conversation, f"quick {i}")
            order.append("quick" if ack["ok"] else "quick failed")
        waiting.join(15)
    assert order == ["quick", "quick", "quick", "slow"]


# --- the right to speak, lost while the hooks answer -----------------------------------------------


@pytest.mark.parametrize("group_commit", [True, False])
def test_a_sender_muted_while_the_hooks_answer_is_refused(
    app, chat, integrator, make_user, monkeypatch, group_commit
):
    monkeypatch.setitem(app.config, "GROUP_COMMIT", group_commit)  # off: the direct path
    alice, bob, conversation_id = chat
    root = make_user("root", is_admin=True)
    add_hook(app, integrator, timeout_ms=5000)
    assert alice.send(conversation_id, "before")["ok"] is True

    def mute_then_allow(payload):
        # The console mutes Alice while her message is being checked.
        with app.app_context():
            moderation.mute_user(root, alice.user_id, "spam", 10)
        return {"action": "allow"}

    integrator.decision = mute_then_allow
    ack = alice.send(conversation_id, "during")
    assert ack["ok"] is False and ack["error"]["code"] == "muted"
    assert stored(app) == [{"type": "txt", "msg": "before"}]
    assert [m["body"]["msg"] for m in bob.received("message:new")] == ["before"]


# --- edits are asked too -------------------------------------------------------------------------


def edit(device, conversation_id: int, seq: int, msg: str, version: int = 0):
    url = f"/api/v1/conversations/{conversation_id}/messages/{seq}"
    return device.http.patch(url, json={"msg": msg, "version": version})


def no_spam(payload):
    if "spam" in payload["data"]["body"]["msg"]:
        return {"action": "reject", "code": "no_spam", "message": "No spam."}
    return {"action": "allow"}


def test_an_edit_is_checked_as_a_send_is_with_edit_of(app, chat, integrator):
    alice, bob, conversation_id = chat
    add_hook(app, integrator)
    integrator.decision = no_spam
    seq = alice.send(conversation_id, "hello", client_msg_id="edited-0001")["message"]["seq"]
    bob.received()
    refused = edit(alice, conversation_id, seq, "buy spam")
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "no_spam"
    assert stored(app) == [{"type": "txt", "msg": "hello"}] and bob.received("message:edited") == []
    asked = checks(integrator)[-1]["data"]
    assert asked == {
        "sender": {"id": alice.user_id, "external_id": "crm-alice", "username": "alice"},
        "conversation": {"id": conversation_id, "kind": "direct"},
        "client_msg_id": None,
        "body": {"type": "txt", "msg": "buy spam"},
        "edit_of": seq,
    }
    assert "edit_of" not in checks(integrator)[0]["data"]  # the send had none

    integrator.decision = {"action": "replace", "body": {"type": "txt", "msg": "[edited by policy]"}}
    replaced = edit(alice, conversation_id, seq, "hello again")
    assert replaced.status_code == 200
    assert replaced.get_json()["message"]["body"] == {"type": "txt", "msg": "[edited by policy]"}
    assert stored(app) == [{"type": "txt", "msg": "[edited by policy]"}]
    assert [m["body"]["msg"] for m in bob.received("message:edited")] == ["[edited by policy]"]


def test_an_edit_fails_closed_and_is_not_asked_when_it_cannot_be_made(app, chat, integrator):
    alice, bob, conversation_id = chat
    hook_id = add_hook(app, integrator, timeout_ms=300)
    seq = alice.send(conversation_id, "hello")["message"]["seq"]
    asked = len(checks(integrator))
    assert edit(bob, conversation_id, seq, "not mine").status_code == 403  # not_editable
    assert edit(alice, conversation_id, seq, "hello").status_code == 200  # no change
    assert len(checks(integrator)) == asked
    with app.app_context():
        manage.update_hook(None, hook_id, fail_open=False)
    integrator.before_send_status = 500
    closed = edit(alice, conversation_id, seq, "changed")
    assert closed.status_code == 503 and closed.get_json()["error"]["code"] == "before_send_unavailable"
    assert stored(app) == [{"type": "txt", "msg": "hello"}]


def test_no_lock_or_transaction_is_held_while_an_edit_is_checked(app, chat, integrator):
    """While the hook decides, the same conversation takes a send (which locks its row)."""
    alice, bob, conversation_id = chat
    add_hook(app, integrator, timeout_ms=5000)
    seq = alice.send(conversation_id, "hello")["message"]["seq"]
    meanwhile = []

    def send_meanwhile(payload):
        if "edit_of" not in payload["data"]:
            return {"action": "allow"}
        with app.app_context():
            meanwhile.append(send_message(bob.user_id, conversation_id, "meanwhile-0001", TEXT)[1])
        return {"action": "replace", "body": {"type": "txt", "msg": "checked"}}

    integrator.decision = send_meanwhile
    edited = edit(alice, conversation_id, seq, "edited")
    assert edited.status_code == 200 and edited.get_json()["message"]["body"]["msg"] == "checked"
    assert meanwhile == [True]
    assert stored(app) == [{"type": "txt", "msg": "checked"}, TEXT]
