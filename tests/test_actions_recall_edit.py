"""Recall and edit: who may do them and when, what every device and a later sync see, and what
follows the message (quotes of replies, mentions, pins, media, edit history)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import (
    AuditLog,
    Conversation,
    Message,
    MessageEdit,
    MessageHide,
    MessageMention,
)
from tests.chat_helpers import connect
from tests.test_media import fetch, image_bytes, uploaded

# --- setups --------------------------------------------------------------------------------


@pytest.fixture
def duo(app, make_user, login, befriend):
    """Alice (phone and laptop) and Bob, friends with a direct conversation; and a stranger."""
    befriend(make_user("alice"), make_user("bob"))
    make_user("stranger")
    phone = connect(app, login("alice"))
    laptop = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    stranger = connect(app, login("stranger"))
    opened = phone.http.post("/api/v1/conversations", json={"user_id": bob.user_id})
    conversation_id = opened.get_json()["conversation"]["id"]
    for device in (phone, laptop, bob, stranger):
        device.received()
    return phone, laptop, bob, stranger, conversation_id


@pytest.fixture
def team(app, make_user, login, befriend):
    """A group of an owner, an admin and two members, each with one device."""
    names = ["owner", "admin", "member", "other"]
    ids = {name: make_user(name) for name in names}
    for name in names[1:]:
        befriend(ids["owner"], ids[name])
    devices = {name: connect(app, login(name)) for name in names}
    owner = devices["owner"].http
    created = owner.post("/api/v1/groups", json={"name": "Team", "member_ids": [ids[n] for n in names[1:]]})
    group = created.get_json()["group"]
    role = owner.put(f"/api/v1/groups/{group['id']}/members/{ids['admin']}/role", json={"role": "admin"})
    assert role.status_code == 200
    for device in devices.values():
        device.received()
    return group, devices


def base(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}"


def recall(device, conversation_id: int, seq: int):
    return device.http.post(f"{base(conversation_id, seq)}/recall", json={})


def edit(device, conversation_id: int, seq: int, msg: str, version: int):
    return device.http.patch(base(conversation_id, seq), json={"msg": msg, "version": version})


def code_of(response) -> str | None:
    body = response.get_json(silent=True) or {}
    return body.get("error", {}).get("code")


def age(app, conversation_id: int, seq: int, seconds: int) -> None:
    """Move a message's sending time `seconds` into the past."""
    with app.app_context():
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
        )
        message.created_at = message.created_at - timedelta(seconds=seconds)
        db.session.commit()


def state(app, conversation_id: int, seq: int) -> tuple:
    """What a refused action must leave as it was."""
    with app.app_context():
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
        )
        edits = db.session.scalar(
            select(func.count(MessageEdit.id)).where(MessageEdit.message_id == message.id)
        )
        conversation = db.session.get(Conversation, conversation_id)
        return (
            message.body,
            message.edit_count,
            message.edited_at,
            message.recalled_at,
            message.stream_pos,
            conversation.stream_pos,
            edits,
        )


def cursor_of(device) -> str:
    return device.http.get("/api/v1/conversations").get_json()["cursor"]


def synced(device, cursor: str) -> dict:
    return device.http.get(f"/api/v1/sync?cursor={cursor}").get_json()


def make_reply(app, conversation_id: int, original_seq: int, reply_seq: int, text: str = "hi") -> None:
    """Make message `reply_seq` a reply to `original_seq`, as a send with reply_to stores it."""
    with app.app_context():
        reply = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == reply_seq)
        )
        reply.reply_to_seq = original_seq
        reply.reply = {"seq": original_seq, "sender": None, "type": "txt", "text": text, "recalled": False}
        db.session.commit()


# --- recall --------------------------------------------------------------------------------


def test_the_sender_recalls_a_message_everywhere_and_sync_carries_it(app, duo):
    phone, laptop, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "oops, wrong chat")["message"]
    cursor = cursor_of(bob)
    for device in (phone, laptop, bob):
        device.received()
    response = recall(phone, conversation_id, sent["seq"])
    assert response.status_code == 200, response.get_json()
    recalled = response.get_json()["message"]
    assert (recalled["id"], recalled["recalled"], recalled["body"]["by"]) == (sent["id"], True, "sender")
    assert "oops" not in str(recalled)
    for device in (phone, laptop, bob):
        assert [m["id"] for m in device.received("message:recalled")] == [sent["id"]]
    page = synced(bob, cursor)
    assert [(m["id"], m["recalled"]) for m in page["messages"]] == [(sent["id"], True)]
    (summary,) = page["conversations"]
    assert summary["last_message"]["recalled"] is True
    history = bob.http.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    assert history[-1]["body"]["text"] == "This message was withdrawn"


def test_a_recall_by_socket_answers_the_recalled_message(duo):
    phone, _, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "hello")["message"]
    ack = phone.emit("message:recall", {"conversation_id": conversation_id, "seq": sent["seq"]})
    assert ack["ok"] is True and ack["message"]["recalled"] is True
    again = phone.emit("message:recall", {"conversation_id": conversation_id, "seq": sent["seq"]})
    assert again["error"]["code"] == "already_recalled"


def test_the_sender_cannot_recall_after_the_window(app, duo):
    phone, _, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "said long ago")["message"]
    age(app, conversation_id, sent["seq"], app.config["RECALL_WINDOW_SECONDS"] + 5)
    before = state(app, conversation_id, sent["seq"])
    bob.received()
    response = recall(phone, conversation_id, sent["seq"])
    assert (response.status_code, code_of(response)) == (403, "recall_window_passed")
    assert state(app, conversation_id, sent["seq"]) == before
    assert bob.received("message:recalled") == []


def test_someone_elses_message_in_a_direct_chat_cannot_be_recalled(app, duo):
    phone, _, bob, stranger, conversation_id = duo
    sent = phone.send(conversation_id, "mine")["message"]
    before = state(app, conversation_id, sent["seq"])
    response = recall(bob, conversation_id, sent["seq"])
    assert (response.status_code, code_of(response)) == (403, "not_allowed")
    response = recall(stranger, conversation_id, sent["seq"])
    assert (response.status_code, code_of(response)) == (404, "not_found")
    assert state(app, conversation_id, sent["seq"]) == before


def test_a_second_recall_is_refused(duo):
    phone, _, _, _, conversation_id = duo
    sent = phone.send(conversation_id, "x")["message"]
    assert recall(phone, conversation_id, sent["seq"]).status_code == 200
    response = recall(phone, conversation_id, sent["seq"])
    assert (response.status_code, code_of(response)) == (409, "already_recalled")


def test_messages_one_cannot_see_are_not_visible(app, duo):
    phone, _, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "x")["message"]
    with app.app_context():
        db.session.add(
            MessageHide(
                user_id=phone.user_id,
                message_id=sent["id"],
                conversation_id=conversation_id,
                seq=sent["seq"],
                stream_pos=0,
            )
        )
        db.session.commit()
    before = state(app, conversation_id, sent["seq"])
    assert code_of(recall(phone, conversation_id, sent["seq"])) == "not_visible"
    assert code_of(recall(phone, conversation_id, sent["seq"] + 1)) == "not_visible"
    assert state(app, conversation_id, sent["seq"]) == before


GROUP_CASES = [
    ("owner", "admin", "group_admin"),
    ("owner", "member", "group_admin"),
    ("admin", "member", "group_admin"),
    ("admin", "owner", "not_allowed"),
    ("member", "other", "not_allowed"),
    ("member", "admin", "not_allowed"),
]


@pytest.mark.parametrize(("actor", "author", "outcome"), GROUP_CASES)
def test_group_owners_and_admins_recall_by_rank_at_any_time(app, team, actor, author, outcome):
    group, devices = team
    conversation_id = group["conversation_id"]
    sent = devices[author].send(conversation_id, "something")["message"]
    age(app, conversation_id, sent["seq"], 7 * 86400)  # far past the sender's window
    before = state(app, conversation_id, sent["seq"])
    for device in devices.values():
        device.received()
    response = recall(devices[actor], conversation_id, sent["seq"])
    with app.app_context():
        audits = db.session.execute(select(AuditLog.admin_id, AuditLog.action, AuditLog.target_id)).all()
    if outcome == "not_allowed":
        assert (response.status_code, code_of(response)) == (403, "not_allowed")
        assert state(app, conversation_id, sent["seq"]) == before
        assert audits == []
        return
    assert response.status_code == 200, response.get_json()
    body = response.get_json()["message"]["body"]
    assert (body["by"], body["by_id"], body["text"]) == (
        "group_admin",
        devices[actor].user_id,
        "Removed by a group admin",
    )
    for device in devices.values():
        assert [m["id"] for m in device.received("message:recalled")] == [sent["id"]]
    assert audits == [(devices[actor].user_id, "group_recall", sent["id"])]


def test_system_messages_cannot_be_recalled(app, team):
    group, devices = team
    conversation_id = group["conversation_id"]
    before = state(app, conversation_id, 1)
    response = recall(devices["owner"], conversation_id, 1)
    assert (response.status_code, code_of(response)) == (403, "not_allowed")
    assert state(app, conversation_id, 1) == before


def test_a_former_member_cannot_recall(app, team):
    group, devices = team
    conversation_id = group["conversation_id"]
    sent = devices["member"].send(conversation_id, "bye")["message"]
    left = devices["member"].http.delete(f"/api/v1/groups/{group['id']}/members/{devices['member'].user_id}")
    assert left.status_code == 204
    response = recall(devices["member"], conversation_id, sent["seq"])
    assert (response.status_code, code_of(response)) == (403, "not_member")
    edited = edit(devices["member"], conversation_id, sent["seq"], "bye!", 0)
    assert (edited.status_code, code_of(edited)) == (403, "not_member")
    versions = devices["member"].http.get(f"{base(conversation_id, sent['seq'])}/edits")
    assert [v["body"]["msg"] for v in versions.get_json()["versions"]] == ["bye"]  # they still see it
    # Their message stays theirs: the admin may still remove it (a former member's rank is member).
    assert recall(devices["admin"], conversation_id, sent["seq"]).status_code == 200


def test_a_recalled_images_media_is_no_longer_served(duo):
    phone, _, bob, _, conversation_id = duo
    photo = uploaded(phone.http, image_bytes("PNG", (10, 10)), "oops.png")
    sent = phone.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})["message"]
    assert fetch(bob.http, photo["url"]).status_code == 200
    assert recall(phone, conversation_id, sent["seq"]).status_code == 200
    assert fetch(bob.http, photo["url"]).status_code == 403


def test_a_recall_updates_quotes_drops_mentions_and_the_pin(app, duo):
    phone, laptop, bob, _, conversation_id = duo
    original = phone.send(conversation_id, "the original")["message"]
    reply = bob.send(conversation_id, "an answer")["message"]
    untouched = bob.send(conversation_id, "not a reply")["message"]
    make_reply(app, conversation_id, original["seq"], reply["seq"], "the original")
    with app.app_context():
        db.session.add(
            MessageMention(
                user_id=bob.user_id,
                conversation_id=conversation_id,
                seq=original["seq"],
                message_id=original["id"],
            )
        )
        conversation = db.session.get(Conversation, conversation_id)
        conversation.pins = [{"seq": original["seq"], "by": phone.user_id, "at": "2024-01-01T00:00:00Z"}]
        db.session.commit()
    before_untouched = state(app, conversation_id, untouched["seq"])
    cursor = cursor_of(bob)
    for device in (phone, laptop, bob):
        device.received()
    assert recall(phone, conversation_id, original["seq"]).status_code == 200
    for device in (phone, laptop, bob):
        events = device.socket.get_received()
        (edited,) = [event["args"][0] for event in events if event["name"] == "message:edited"]
        assert edited["id"] == reply["id"]
        assert edited["reply"] == {
            "seq": original["seq"],
            "sender": None,
            "type": "txt",
            "text": "",
            "recalled": True,
        }
        pins = [event["args"][0] for event in events if event["name"] == "conversation:pins"]
        assert pins == [{"conversation_id": conversation_id, "pins": []}]
    page = synced(bob, cursor)
    by_id = {m["id"]: m for m in page["messages"]}
    assert set(by_id) == {original["id"], reply["id"]}
    assert page["conversations"][0]["pins"] == []
    assert by_id[reply["id"]]["reply"]["recalled"] is True
    assert state(app, conversation_id, untouched["seq"])[:5] == before_untouched[:5]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MessageMention)) == 0
        assert db.session.get(Conversation, conversation_id).pins == []


def test_the_console_recall_shares_the_core(app, duo, make_user):
    from app.moderation import services as moderation

    phone, _, bob, _, conversation_id = duo
    admin_id = make_user("root", is_admin=True)
    original = phone.send(conversation_id, "nasty")["message"]
    reply = bob.send(conversation_id, "quoting it")["message"]
    make_reply(app, conversation_id, original["seq"], reply["seq"], "nasty")
    bob.received()
    with app.app_context():
        moderation.recall_message(admin_id, original["id"], "abuse")
        message = db.session.get(Message, original["id"])
        assert (message.recalled_as, message.recalled_by_id) == ("admin", admin_id)
        assert db.session.get(Message, reply["id"]).reply["recalled"] is True
    assert [m["body"]["by"] for m in bob.received("message:recalled")] == ["admin"]
    assert code_of(recall(phone, conversation_id, original["seq"])) == "already_recalled"


# --- edit ----------------------------------------------------------------------------------


def test_an_edit_reaches_every_device_and_sync(app, duo):
    phone, laptop, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "helo")["message"]
    cursor = cursor_of(bob)
    for device in (phone, laptop, bob):
        device.received()
    ack = phone.emit(
        "message:edit", {"conversation_id": conversation_id, "seq": sent["seq"], "msg": "hello", "version": 0}
    )
    assert ack["ok"] is True, ack
    edited = ack["message"]
    assert (edited["body"], edited["edit_count"]) == ({"type": "txt", "msg": "hello"}, 1)
    assert edited["edited_at"] is not None
    for device in (phone, laptop, bob):
        assert device.received("message:edited") == [edited]
    page = synced(bob, cursor)
    assert [m["body"]["msg"] for m in page["messages"]] == ["hello"]
    (summary,) = page["conversations"]
    assert summary["last_message"]["body"]["msg"] == "hello"


def test_an_edit_of_an_earlier_message_leaves_the_conversation_alone(app, duo):
    phone, _, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "first")["message"]
    bob.send(conversation_id, "second")
    before = state(app, conversation_id, sent["seq"])
    assert edit(phone, conversation_id, sent["seq"], "first!", 0).status_code == 200
    after = state(app, conversation_id, sent["seq"])
    assert after[4] > before[4] and after[5] == before[5]  # the message re-stamped, the list not


def test_an_edit_keeps_every_version(app, duo):
    phone, _, bob, stranger, conversation_id = duo
    sent = phone.send(conversation_id, "v0")["message"]
    url = f"{base(conversation_id, sent['seq'])}/edits"
    unedited = bob.http.get(url).get_json()["versions"]
    assert [(v["version"], v["body"]["msg"], v["written_at"]) for v in unedited] == [
        (0, "v0", sent["created_at"])
    ]
    for version, text in enumerate(["v1", "v2"]):
        assert edit(phone, conversation_id, sent["seq"], text, version).status_code == 200
    versions = bob.http.get(url).get_json()["versions"]
    assert [(v["version"], v["body"]) for v in versions] == [
        (i, {"type": "txt", "msg": f"v{i}"}) for i in range(3)
    ]
    assert versions[0]["written_at"] == sent["created_at"]
    assert code_of(stranger.http.get(url)) == "not_found"
    assert recall(phone, conversation_id, sent["seq"]).status_code == 200
    assert code_of(bob.http.get(url)) == "already_recalled"


def test_edits_after_the_window_are_refused(app, duo):
    phone, _, _, _, conversation_id = duo
    sent = phone.send(conversation_id, "old")["message"]
    age(app, conversation_id, sent["seq"], app.config["EDIT_WINDOW_SECONDS"] + 5)
    before = state(app, conversation_id, sent["seq"])
    response = edit(phone, conversation_id, sent["seq"], "new", 0)
    assert (response.status_code, code_of(response)) == (403, "edit_window_passed")
    assert state(app, conversation_id, sent["seq"]) == before


def test_only_ones_own_text_messages_are_editable(app, duo, team):
    phone, _, bob, _, conversation_id = duo
    text = phone.send(conversation_id, "mine")["message"]
    photo = uploaded(phone.http, image_bytes("PNG", (10, 10)), "p.png")
    image = phone.send(conversation_id, body={"type": "img", "upload_id": photo["id"]})["message"]
    group, devices = team
    cases = [
        (bob, conversation_id, text["seq"]),
        (phone, conversation_id, image["seq"]),
        (devices["owner"], group["conversation_id"], 1),  # the group's system message
    ]
    for device, where, seq in cases:
        before = state(app, where, seq)
        response = edit(device, where, seq, "changed", 0)
        assert (response.status_code, code_of(response)) == (403, "not_editable")
        assert state(app, where, seq) == before


def test_at_most_ten_edits(app, duo):
    phone, _, _, _, conversation_id = duo
    sent = phone.send(conversation_id, "e0")["message"]
    for version in range(10):
        assert edit(phone, conversation_id, sent["seq"], f"e{version + 1}", version).status_code == 200
    before = state(app, conversation_id, sent["seq"])
    response = edit(phone, conversation_id, sent["seq"], "e11", 10)
    assert (response.status_code, code_of(response)) == (403, "too_many_edits")
    assert state(app, conversation_id, sent["seq"]) == before


def test_a_stale_version_conflicts_and_a_retry_is_answered_once(app, duo):
    phone, laptop, bob, _, conversation_id = duo
    sent = phone.send(conversation_id, "draft")["message"]
    first = edit(phone, conversation_id, sent["seq"], "final", 0)
    assert first.status_code == 200
    bob.received()
    before = state(app, conversation_id, sent["seq"])
    retry = edit(phone, conversation_id, sent["seq"], "final", 0)
    assert retry.status_code == 200 and retry.get_json() == first.get_json()
    conflict = edit(laptop, conversation_id, sent["seq"], "something else", 0)
    assert (conflict.status_code, code_of(conflict)) == (409, "edit_conflict")
    assert state(app, conversation_id, sent["seq"]) == before
    assert bob.received("message:edited") == []


def test_a_recalled_message_cannot_be_edited(app, duo):
    phone, _, _, _, conversation_id = duo
    sent = phone.send(conversation_id, "gone")["message"]
    assert recall(phone, conversation_id, sent["seq"]).status_code == 200
    before = state(app, conversation_id, sent["seq"])
    response = edit(phone, conversation_id, sent["seq"], "back", 0)
    assert (response.status_code, code_of(response)) == (409, "already_recalled")
    assert state(app, conversation_id, sent["seq"]) == before


@pytest.mark.parametrize(
    "payload",
    [
        {"msg": "", "version": 0},
        {"msg": "   \n ", "version": 0},
        {"msg": "x" * 5001, "version": 0},
        {"msg": "ok"},
        {"msg": "ok", "version": "0"},
        {"msg": "ok", "version": -1},
        {"msg": "a\x00b", "version": 0},
    ],
)
def test_invalid_edits_change_nothing(app, duo, payload):
    phone, _, _, _, conversation_id = duo
    sent = phone.send(conversation_id, "keep")["message"]
    before = state(app, conversation_id, sent["seq"])
    response = phone.http.patch(base(conversation_id, sent["seq"]), json=payload)
    assert (response.status_code, code_of(response)) == (400, "invalid_input")
    assert state(app, conversation_id, sent["seq"]) == before


def test_an_edit_updates_the_quotes_of_replies(app, duo):
    phone, _, bob, _, conversation_id = duo
    original = phone.send(conversation_id, "meet at 5")["message"]
    reply = bob.send(conversation_id, "ok")["message"]
    make_reply(app, conversation_id, original["seq"], reply["seq"], "meet at 5")
    cursor = cursor_of(bob)
    bob.received()
    longer = "meet at 6 " + "z" * 200
    assert edit(phone, conversation_id, original["seq"], longer, 0).status_code == 200
    events = bob.received("message:edited")
    assert [m["id"] for m in events] == [original["id"], reply["id"]]
    assert events[1]["reply"]["text"] == longer[:100]
    assert events[1]["edit_count"] == 0  # the reply itself was not edited
    quoted = {m["id"]: m for m in synced(bob, cursor)["messages"]}[reply["id"]]
    assert quoted["reply"]["text"] == longer[:100]


def test_nobody_recalls_or_edits_in_a_dissolved_group(app, team):
    from app.groups import services as groups

    group, devices = team
    conversation_id = group["conversation_id"]
    sent = devices["member"].send(conversation_id, "last words")["message"]
    with app.app_context():
        groups.dissolve(devices["owner"].user_id, group["id"])
    before = state(app, conversation_id, sent["seq"])
    for device in (devices["member"], devices["owner"]):
        response = recall(device, conversation_id, sent["seq"])
        assert (response.status_code, code_of(response)) == (403, "group_dissolved")
    response = edit(devices["member"], conversation_id, sent["seq"], "more words", 0)
    assert (response.status_code, code_of(response)) == (403, "group_dissolved")
    assert state(app, conversation_id, sent["seq"]) == before


def test_who_may_not_send_may_not_edit(app, team, duo):
    group, devices = team
    conversation_id = group["conversation_id"]
    sent = devices["member"].send(conversation_id, "before the mute")["message"]
    muted = devices["owner"].http.put(
        f"/api/v1/groups/{group['id']}/members/{devices['member'].user_id}/mute", json={"minutes": 10}
    )
    assert muted.status_code == 200
    before = state(app, conversation_id, sent["seq"])
    response = edit(devices["member"], conversation_id, sent["seq"], "said anyway", 0)
    assert (response.status_code, code_of(response)) == (403, "member_muted")
    assert state(app, conversation_id, sent["seq"]) == before
    # A recall takes words back: still allowed while muted.
    assert recall(devices["member"], conversation_id, sent["seq"]).status_code == 200

    phone, _, bob, _, direct_id = duo
    said = phone.send(direct_id, "hi bob")["message"]
    assert bob.http.post("/api/v1/blocks", json={"user_id": phone.user_id}).status_code == 204
    before = state(app, direct_id, said["seq"])
    response = edit(phone, direct_id, said["seq"], "hi again", 0)
    assert (response.status_code, code_of(response)) == (403, "blocked")
    assert state(app, direct_id, said["seq"]) == before


def test_edits_count_against_the_send_rate_even_when_refused(app, duo, monkeypatch):
    phone, laptop, bob, _, conversation_id = duo
    monkeypatch.setitem(app.config, "MESSAGE_RATE_LIMIT", "4 per minute")
    sent = phone.send(conversation_id, "draft")["message"]  # 1
    assert edit(phone, conversation_id, sent["seq"], "final", 0).status_code == 200  # 2
    missing = edit(laptop, conversation_id, sent["seq"] + 9, "x", 0)  # 3: the user's, any device
    assert (missing.status_code, code_of(missing)) == (404, "not_visible")
    assert edit(bob, conversation_id, sent["seq"], "x", 1).status_code == 403  # Bob's first
    assert code_of(edit(phone, conversation_id, sent["seq"] + 9, "x", 1)) == "not_visible"  # 4
    before = state(app, conversation_id, sent["seq"])
    limited = edit(phone, conversation_id, sent["seq"], "final!", 1)
    assert (limited.status_code, code_of(limited)) == (429, "rate_limited")
    assert limited.headers["Retry-After"]
    assert state(app, conversation_id, sent["seq"]) == before
    assert phone.send(conversation_id, "more")["error"]["code"] == "rate_limited"


# --- races and live counts --------------------------------------------------------------------


def test_a_reply_checked_before_its_original_was_recalled_is_stored_with_a_recalled_quote(
    app, duo, monkeypatch
):
    """The quote is checked in the sender's greenlet and written later (by the group commit): a
    recall that commits in between must not leave the recalled text in the reply."""
    import app.chat.pipeline as pipeline
    import app.chat.send as send
    from app.chat.actions.recall import recall as recall_now

    phone, _, bob, _, conversation_id = duo
    original = bob.send(conversation_id, "secret text that bob takes back")["message"]
    checked = pipeline.prepare_extras

    def recalled_meanwhile(*args, **kwargs):
        extras = checked(*args, **kwargs)
        with app.app_context():  # another greenlet's transaction
            recall_now(bob.user_id, conversation_id, original["seq"])
        return extras

    monkeypatch.setattr(pipeline, "prepare_extras", recalled_meanwhile)
    monkeypatch.setattr(send, "prepare_extras", recalled_meanwhile)
    payload = {
        "conversation_id": conversation_id,
        "client_msg_id": "reply-race-0001",
        "body": {"type": "txt", "msg": "re"},
        "reply_to": original["seq"],
    }
    ack = phone.emit("message:send", payload)
    assert ack["ok"], ack
    assert ack["message"]["reply"]["recalled"] is True
    assert "secret" not in str(ack["message"])
    with app.app_context():
        stored = db.session.scalar(select(Message).where(Message.client_msg_id == "reply-race-0001"))
        assert stored.reply["recalled"] is True and stored.reply["text"] == ""


def test_recalling_a_mention_updates_the_mentioned_members_count_live(team):
    group, devices = team
    conversation_id = group["conversation_id"]
    member = devices["member"]
    ack = devices["other"].emit(
        "message:send",
        {
            "conversation_id": conversation_id,
            "client_msg_id": "mention-0001",
            "body": {"type": "txt", "msg": "@member hi"},
            "mentions": [member.user_id],
        },
    )
    assert ack["ok"], ack
    member.received()
    before = member.http.get(f"/api/v1/conversations/{conversation_id}").get_json()["conversation"]
    assert (before["unread_mentions"], before["mention_seq"]) == (1, ack["message"]["seq"])
    assert recall(devices["other"], conversation_id, ack["message"]["seq"]).status_code == 200
    updates = [u for u in member.received("conversation:update") if u["id"] == conversation_id]
    assert updates and (updates[-1]["unread_mentions"], updates[-1]["mention_seq"]) == (0, None)
