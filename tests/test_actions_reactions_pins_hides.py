"""Reactions, pins and delete-for-me: through the REST routes and socket events, on every device,
in history, sync and the conversation list."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from app.chat.actions.pins import MAX_PINS
from app.chat.actions.reactions import MAX_DISTINCT_REACTIONS
from app.chat.stream import current_stream_pos
from app.extensions import db
from app.models import Conversation, Message, MessageHide, MessageReaction
from tests.chat_helpers import connect


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


def url(conversation_id: int, seq: int, emoji: str) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{quote(emoji, safe='')}"


def pin_url(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/pins/{seq}"


def hide_url(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/hide"


@pytest.fixture
def team(app, make_user, login, befriend):
    """A group: its owner, an admin and a member, each with a socket; a stranger with one."""
    ids = {name: make_user(name) for name in ("owner", "admin", "member", "stranger")}
    for name in ("admin", "member"):
        befriend(ids["owner"], ids[name])
    devices = {name: connect(app, login(name)) for name in ids}
    created = devices["owner"].http.post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["admin"], ids["member"]]}
    )
    group = created.get_json()["group"]
    devices["owner"].http.put(
        f"/api/v1/groups/{group['id']}/members/{ids['admin']}/role", json={"role": "admin"}
    )
    for device in devices.values():
        device.received()
    return group, devices


def state(app, conversation_id: int) -> tuple:
    """What a refused action must leave as it was."""
    with app.app_context():
        db.session.expire_all()
        conversation = db.session.get(Conversation, conversation_id)
        messages = db.session.execute(
            select(Message.seq, Message.reactions, Message.stream_pos)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.seq)
        ).all()
        reactions = db.session.scalar(select(func.count()).select_from(MessageReaction))
        hides = db.session.scalar(select(func.count()).select_from(MessageHide))
        return (conversation.pins, conversation.stream_pos, messages, reactions, hides, current_stream_pos())


# --- reactions ------------------------------------------------------------------------------


def test_a_reaction_reaches_every_device_and_sync(pair, app):
    alice_phone, alice_laptop, bob, conversation_id = pair
    message = alice_phone.send(conversation_id, "lunch?")["message"]
    cursor = bob.http.get("/api/v1/sync").get_json()["cursor"]
    for device in (alice_phone, alice_laptop, bob):
        device.received()
    ack = bob.emit(
        "message:react", {"conversation_id": conversation_id, "seq": 1, "emoji": "👍", "add": True}
    )
    expected = [{"emoji": "👍", "count": 1, "user_ids": [bob.user_id]}]
    assert ack == {"ok": True, "reactions": expected}
    event = {"conversation_id": conversation_id, "seq": 1, "message_id": message["id"], "reactions": expected}
    for device in (alice_phone, alice_laptop, bob):
        assert device.received("message:reactions") == [event]
    page = alice_laptop.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [(m["seq"], m["reactions"]) for m in page["messages"]] == [(1, expected)]
    history = alice_phone.http.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()
    assert history["messages"][0]["reactions"] == expected


def test_reactions_keep_first_appearance_order_and_add_remove_are_idempotent(pair, app):
    alice, alice_laptop, bob, cid = pair
    alice.send(cid, "news")
    assert alice.http.put(url(cid, 1, "👍"), json={}).status_code == 200
    assert bob.http.put(url(cid, 1, "❤️"), json={}).status_code == 200
    answer = bob.http.put(url(cid, 1, "👍"), json={}).get_json()
    assert answer["reactions"] == [
        {"emoji": "👍", "count": 2, "user_ids": [alice.user_id, bob.user_id]},
        {"emoji": "❤️", "count": 1, "user_ids": [bob.user_id]},
    ]
    for device in (alice, alice_laptop, bob):
        device.received()
    before = state(app, cid)
    again = bob.http.put(url(cid, 1, "👍"), json={})
    assert again.status_code == 200 and again.get_json() == answer
    assert state(app, cid) == before  # not even re-stamped
    assert alice_laptop.received("message:reactions") == []
    removed = alice.http.delete(url(cid, 1, "👍")).get_json()["reactions"]
    assert removed == [
        {"emoji": "👍", "count": 1, "user_ids": [bob.user_id]},
        {"emoji": "❤️", "count": 1, "user_ids": [bob.user_id]},
    ]
    assert bob.received("message:reactions")[0]["reactions"] == removed
    before = state(app, cid)
    assert alice.http.delete(url(cid, 1, "👍")).get_json()["reactions"] == removed
    assert state(app, cid) == before
    assert bob.received("message:reactions") == []
    bob.http.delete(url(cid, 1, "👍"))
    bob.http.delete(url(cid, 1, "❤️"))
    assert bob.http.put(url(cid, 1, "👍"), json={}).get_json()["reactions"][0]["user_ids"] == [bob.user_id]
    with app.app_context():
        rows = db.session.execute(select(MessageReaction.user_id, MessageReaction.emoji)).all()
        assert rows == [(bob.user_id, "👍")]


def test_at_most_twenty_different_emoji_on_a_message(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "vote")
    palette = ["😀", "😂", "🥲", "😍", "🤔", "😴", "😎", "🤯", "🥳", "😭"]
    palette += ["👍", "👎", "👏", "🙏", "💪", "🔥", "🎉", "❤️", "👀", "✅"]
    assert len(set(palette)) == MAX_DISTINCT_REACTIONS
    for emoji in palette:
        assert alice.http.put(url(cid, 1, emoji), json={}).status_code == 200
    before = state(app, cid)
    refused = bob.http.put(url(cid, 1, "🍕"), json={})
    assert refused.status_code == 409 and code_of(refused) == "too_many_reactions"
    assert state(app, cid) == before
    # One more person on an emoji already there is fine.
    assert bob.http.put(url(cid, 1, "🔥"), json={}).status_code == 200


@pytest.mark.parametrize("emoji", ["abc", "👍👍", "a" * 40, "<b>x</b>", "1", "👍 ", "😀" + "\u200d😀" * 20])
def test_anything_but_one_emoji_is_refused_and_changes_nothing(pair, app, emoji):
    alice, _, bob, cid = pair
    alice.send(cid, "hi")
    alice.http.put(url(cid, 1, "👍"), json={})
    for device in pair[:3]:
        device.received()
    before = state(app, cid)
    response = bob.http.put(url(cid, 1, emoji), json={})
    assert response.status_code == 400 and code_of(response) == "invalid_emoji"
    ack = bob.emit("message:react", {"conversation_id": cid, "seq": 1, "emoji": emoji, "add": True})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_emoji"
    assert code_of(bob.http.get(url(cid, 1, emoji))) == "invalid_emoji"
    assert state(app, cid) == before
    assert alice.received("message:reactions") == []


def test_an_empty_emoji_is_refused(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "hi")
    before = state(app, cid)
    ack = bob.emit("message:react", {"conversation_id": cid, "seq": 1, "emoji": "", "add": True})
    assert ack["error"]["code"] == "invalid_emoji"
    assert bob.http.put(f"/api/v1/conversations/{cid}/messages/1/reactions/", json={}).status_code == 404
    assert state(app, cid) == before


@pytest.mark.parametrize("emoji", ["👍🏽", "👨‍👩‍👧", "🇨🇳", "#️⃣", "❤"])
def test_one_emoji_of_several_code_points_is_taken(pair, emoji):
    alice, _, bob, cid = pair
    alice.send(cid, "hi")
    assert bob.http.put(url(cid, 1, emoji), json={}).get_json()["reactions"][0]["emoji"] == emoji


def test_who_reacted_lists_users_in_reaction_order(pair, app, make_user, befriend, login):
    alice, _, bob, cid = pair
    alice.send(cid, "hi")
    bob.http.put(url(cid, 1, "🎉"), json={})
    alice.http.put(url(cid, 1, "🎉"), json={})
    alice.http.put(url(cid, 1, "👀"), json={})
    users = alice.http.get(url(cid, 1, "🎉")).get_json()["users"]
    assert [user["id"] for user in users] == [bob.user_id, alice.user_id]
    assert set(users[0]) == {"id", "username", "nickname", "avatar_url", "signature", "is_bot", "deleted"}
    assert bob.http.get(url(cid, 1, "😀")).get_json() == {"users": []}
    stranger = login(str(make_user("carol") and "carol"))
    assert code_of(stranger.get(url(cid, 1, "🎉"))) == "not_found"


def test_reactions_on_a_recalled_message_are_refused_and_gone(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "oops")
    bob.http.put(url(cid, 1, "😂"), json={})
    assert alice.http.post(f"/api/v1/conversations/{cid}/messages/1/recall", json={}).status_code == 200
    before = state(app, cid)
    refused = bob.http.put(url(cid, 1, "👍"), json={})
    assert refused.status_code == 409 and code_of(refused) == "already_recalled"
    assert code_of(bob.http.delete(url(cid, 1, "😂"))) == "already_recalled"
    assert code_of(bob.http.get(url(cid, 1, "😂"))) == "already_recalled"
    assert state(app, cid) == before
    history = bob.http.get(f"/api/v1/conversations/{cid}/messages").get_json()
    assert history["messages"][0]["reactions"] == []


def test_strangers_former_members_and_hidden_messages_get_no_reaction(team, app):
    group, devices = team
    cid = group["conversation_id"]
    owner, member = devices["owner"], devices["member"]
    seq = owner.send(cid, "hello team")["message"]["seq"]
    before = state(app, cid)
    stranger = devices["stranger"].http.put(url(cid, seq, "👍"), json={})
    assert stranger.status_code == 404 and code_of(stranger) == "not_found"
    member.http.post(hide_url(cid), json={"seqs": [seq]})
    hidden = member.http.put(url(cid, seq, "👍"), json={})
    assert hidden.status_code == 404 and code_of(hidden) == "not_visible"
    assert member.http.delete(f"/api/v1/groups/{group['id']}/members/{member.user_id}").status_code == 204
    admin = devices["admin"]
    admin_seq = admin.send(cid, "bye member")["message"]["seq"]
    left = member.http.put(url(cid, admin_seq - 2, "👍"), json={})
    assert left.status_code == 403 and code_of(left) == "not_member"
    assert state(app, cid)[2][: len(before[2])] == before[2]
    # Deleting for oneself is still open to a former member, within what they saw.
    assert member.http.post(hide_url(cid), json={"seqs": [seq - 1]}).status_code == 200
    assert code_of(member.http.post(hide_url(cid), json={"seqs": [admin_seq]})) == "not_visible"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MessageReaction)) == 0


def test_who_may_not_speak_may_not_react(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "hi")
    assert alice.http.post("/api/v1/blocks", json={"user_id": bob.user_id}).status_code == 204
    before = state(app, cid)
    refused = bob.http.put(url(cid, 1, "👍"), json={})
    assert refused.status_code == 403 and code_of(refused) == "blocked"
    assert state(app, cid) == before


# --- pins -----------------------------------------------------------------------------------


def test_in_a_group_the_owner_and_admins_pin_and_members_do_not(team, app):
    group, devices = team
    cid = group["conversation_id"]
    owner, admin, member = devices["owner"], devices["admin"], devices["member"]
    first = owner.send(cid, "rules")["message"]
    member.send(cid, "question")
    for device in devices.values():
        device.received()
    pinned = owner.http.put(pin_url(cid, first["seq"]), json={})
    assert pinned.status_code == 200
    [entry] = pinned.get_json()["pins"]
    assert (entry["seq"], entry["by"], entry["message"]["id"]) == (first["seq"], owner.user_id, first["id"])
    assert entry["at"].endswith("Z")
    for device in (owner, admin, member):
        assert device.received("conversation:pins") == [{"conversation_id": cid, "pins": [entry]}]
    assert devices["stranger"].received("conversation:pins") == []
    ack = admin.emit("message:pin", {"conversation_id": cid, "seq": first["seq"] + 1, "pinned": True})
    assert ack["ok"] is True and [pin["seq"] for pin in ack["pins"]] == [first["seq"] + 1, first["seq"]]
    before = state(app, cid)
    refused = member.http.put(pin_url(cid, first["seq"] + 1), json={})
    assert refused.status_code == 403 and code_of(refused) == "not_allowed"
    assert code_of(member.http.delete(pin_url(cid, first["seq"]))) == "not_allowed"
    assert code_of(devices["stranger"].http.put(pin_url(cid, 1), json={})) == "not_found"
    assert state(app, cid) == before
    listed = member.http.get(f"/api/v1/conversations/{cid}/pins").get_json()["pins"]
    assert [pin["seq"] for pin in listed] == [first["seq"] + 1, first["seq"]]
    assert listed[1]["message"]["body"]["msg"] == "rules"


def test_in_a_direct_chat_either_side_pins_and_unpins(pair, app):
    alice, alice_laptop, bob, cid = pair
    alice.send(cid, "address")
    assert bob.http.put(pin_url(cid, 1), json={}).get_json()["pins"][0]["by"] == bob.user_id
    assert alice_laptop.received("conversation:pins")[0]["pins"][0]["seq"] == 1
    assert alice.http.delete(pin_url(cid, 1)).get_json() == {"pins": []}
    assert bob.received("conversation:pins")[-1] == {"conversation_id": cid, "pins": []}


def test_pins_are_idempotent_newest_first_and_at_most_ten(pair, app):
    alice, alice_laptop, bob, cid = pair
    for index in range(MAX_PINS + 1):
        alice.send(cid, f"m{index}")
    for seq in range(1, MAX_PINS + 1):
        assert alice.http.put(pin_url(cid, seq), json={}).status_code == 200
    alice_laptop.received()
    before = state(app, cid)
    again = alice.http.put(pin_url(cid, 3), json={})
    assert [pin["seq"] for pin in again.get_json()["pins"]] == list(range(MAX_PINS, 0, -1))
    assert alice.http.delete(pin_url(cid, MAX_PINS + 1)).status_code == 200
    assert state(app, cid) == before
    assert alice_laptop.received("conversation:pins") == []
    full = bob.http.put(pin_url(cid, MAX_PINS + 1), json={})
    assert full.status_code == 409 and code_of(full) == "too_many_pins"
    assert state(app, cid) == before


def test_the_summary_and_sync_carry_the_pins(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "keep this")
    cursor = bob.http.get("/api/v1/sync").get_json()["cursor"]
    alice.http.put(pin_url(cid, 1), json={})
    summary = bob.http.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]
    assert [(pin["seq"], pin["by"]) for pin in summary["pins"]] == [(1, alice.user_id)]
    assert set(summary["pins"][0]) == {"seq", "by", "at"}
    page = bob.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [item["pins"] for item in page["conversations"]] == [summary["pins"]]
    listed = bob.http.get("/api/v1/conversations").get_json()["conversations"]
    assert listed[0]["pins"] == summary["pins"]


def test_a_recalled_message_is_unpinned_and_cannot_be_pinned(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "secret")
    alice.send(cid, "other")
    alice.http.put(pin_url(cid, 1), json={})
    assert alice.http.post(f"/api/v1/conversations/{cid}/messages/1/recall", json={}).status_code == 200
    assert bob.http.get(f"/api/v1/conversations/{cid}/pins").get_json() == {"pins": []}
    assert bob.http.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]["pins"] == []
    before = state(app, cid)
    refused = bob.http.put(pin_url(cid, 1), json={})
    assert refused.status_code == 409 and code_of(refused) == "already_recalled"
    assert state(app, cid) == before


def test_a_member_sees_only_the_pins_of_their_window(team, app, make_user, befriend, login):
    group, devices = team
    cid = group["conversation_id"]
    owner = devices["owner"]
    owner.send(cid, "before you came")
    owner.http.put(pin_url(cid, 1), json={})
    late_id = make_user("late")
    befriend(owner.user_id, late_id)
    late = connect(app, login("late"))
    assert (
        owner.http.post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [late_id]}).status_code
        == 200
    )
    later = owner.send(cid, "after")["message"]["seq"]
    late.received()
    owner.http.put(pin_url(cid, later), json={})
    assert [pin["seq"] for pin in late.received("conversation:pins")[0]["pins"]] == [later]
    assert [pin["seq"] for pin in owner.received("conversation:pins")[-1]["pins"]] == [later, 1]
    assert [pin["seq"] for pin in late.http.get(f"/api/v1/conversations/{cid}/pins").get_json()["pins"]] == [
        later
    ]
    summary = late.http.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]
    assert [pin["seq"] for pin in summary["pins"]] == [later]
    refused = late.http.put(pin_url(cid, 1), json={})
    assert refused.status_code == 404 and code_of(refused) == "not_visible"


# --- delete for me --------------------------------------------------------------------------


def test_hiding_reaches_my_other_devices_only(pair, app):
    alice, alice_laptop, bob, cid = pair
    for text in ("one", "two", "three"):
        alice.send(cid, text)
    for device in (alice, alice_laptop, bob):
        device.received()
    answer = alice.http.post(hide_url(cid), json={"seqs": [2, 1, 2]})
    assert answer.status_code == 200 and answer.get_json() == {"conversation_id": cid, "seqs": [1, 2]}
    for device in (alice, alice_laptop):
        assert device.received("message:hidden") == [{"conversation_id": cid, "seqs": [1, 2]}]
    assert bob.received() == []
    mine = alice.http.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    assert [message["seq"] for message in mine] == [3]
    theirs = bob.http.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    assert [message["seq"] for message in theirs] == [1, 2, 3]
    around = alice.http.get(f"/api/v1/conversations/{cid}/messages", query_string={"around_seq": 3})
    assert [message["seq"] for message in around.get_json()["messages"]] == [3]


def test_hiding_again_changes_nothing_and_tells_nobody(pair, app):
    alice, alice_laptop, _, cid = pair
    alice.send(cid, "one")
    alice.send(cid, "two")
    ack = alice.emit("message:hide", {"conversation_id": cid, "seqs": [1]})
    assert ack == {"ok": True, "conversation_id": cid, "seqs": [1]}
    alice_laptop.received()
    before = state(app, cid)
    assert alice.emit("message:hide", {"conversation_id": cid, "seqs": [1]})["ok"] is True
    assert state(app, cid) == before
    assert alice_laptop.received() == []
    # A batch with one new seq hides just that one.
    assert alice.http.post(hide_url(cid), json={"seqs": [1, 2]}).status_code == 200
    assert alice_laptop.received("message:hidden") == [{"conversation_id": cid, "seqs": [2]}]


def test_sync_leaves_hidden_messages_out_and_lists_the_hides(pair, app):
    alice, alice_laptop, bob, cid = pair
    alice.send(cid, "one")
    cursor = alice_laptop.http.get("/api/v1/sync").get_json()["cursor"]
    alice.send(cid, "two")
    alice.send(cid, "three")
    bob.http.put(url(cid, 1, "👍"), json={})  # a change to a message hidden later
    alice.http.post(hide_url(cid), json={"seqs": [1, 2]})
    page = alice_laptop.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [message["seq"] for message in page["messages"]] == [3]
    assert page["hidden"] == [{"conversation_id": cid, "seq": 1}, {"conversation_id": cid, "seq": 2}]
    # The hides come once: a later page does not repeat them.
    again = alice_laptop.http.get("/api/v1/sync", query_string={"cursor": page["cursor"]}).get_json()
    assert again["hidden"] == [] and again["messages"] == []
    theirs = bob.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [message["seq"] for message in theirs["messages"]] == [2, 3, 1] and theirs["hidden"] == []


def test_the_preview_falls_back_to_the_newest_message_not_hidden(pair, app, count_queries):
    alice, alice_laptop, bob, cid = pair
    for text in ("one", "two", "three"):
        alice.send(cid, text)
    cursor = alice_laptop.http.get("/api/v1/sync").get_json()["cursor"]
    with count_queries() as plain:
        alice.http.get("/api/v1/conversations")
    alice.http.post(hide_url(cid), json={"seqs": [2]})  # not the preview: the list costs the same
    with count_queries() as still:
        alice.http.get("/api/v1/conversations")
    assert len(still) == len(plain)
    bob.http.post(hide_url(cid), json={"seqs": [1]})  # Bob's hides are his own
    for device in (alice, alice_laptop):
        device.received()
    alice.http.post(hide_url(cid), json={"seqs": [3]})
    [update] = alice_laptop.received("conversation:update")
    assert update["last_message"]["seq"] == 1
    with count_queries() as fallback:
        listed = alice.http.get("/api/v1/conversations").get_json()["conversations"]
    assert len(fallback) == len(plain) + 1
    assert listed[0]["last_message"]["body"]["msg"] == "one"
    assert (
        alice.http.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]["last_message"]["seq"] == 1
    )
    page = alice_laptop.http.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [item["last_message"]["seq"] for item in page["conversations"]] == [1]
    assert bob.http.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]["last_message"]["seq"] == 3
    alice.http.post(hide_url(cid), json={"seqs": [1]})
    assert alice.http.get("/api/v1/conversations").get_json()["conversations"][0]["last_message"] is None


def test_readers_and_pins_of_a_hidden_message_are_not_shown(pair, app):
    alice, _, bob, cid = pair
    alice.send(cid, "one")
    alice.send(cid, "two")
    bob.http.put(pin_url(cid, 1), json={})
    bob.http.put(pin_url(cid, 2), json={})
    alice.http.post(hide_url(cid), json={"seqs": [1]})
    response = alice.http.get(f"/api/v1/conversations/{cid}/messages/1/readers")
    assert response.status_code == 404 and code_of(response) == "not_found"
    assert bob.http.get(f"/api/v1/conversations/{cid}/messages/1/readers").status_code == 200
    mine = alice.http.get(f"/api/v1/conversations/{cid}/pins").get_json()["pins"]
    assert [pin["seq"] for pin in mine] == [2]
    assert [pin["seq"] for pin in bob.http.get(f"/api/v1/conversations/{cid}/pins").get_json()["pins"]] == [
        2,
        1,
    ]
    alice.received()
    bob.http.delete(pin_url(cid, 2))
    assert alice.received("conversation:pins") == [{"conversation_id": cid, "pins": []}]


@pytest.mark.parametrize(
    "payload",
    [{"seqs": list(range(1, 102))}, {"seqs": []}, {"seqs": ["1"]}, {"seqs": [-1]}, {}, {"seqs": [1], "x": 1}],
)
def test_a_bad_hide_is_refused_and_hides_nothing(pair, app, payload):
    alice, _, _, cid = pair
    alice.send(cid, "one")
    before = state(app, cid)
    response = alice.http.post(hide_url(cid), json=payload)
    assert response.status_code == 400 and code_of(response) == "invalid_input"
    assert alice.emit("message:hide", {"conversation_id": cid, **payload})["error"]["code"] == "invalid_input"
    assert state(app, cid) == before


def test_hiding_a_message_you_cannot_see_hides_nothing(team, app, make_user, befriend, login):
    group, devices = team
    cid = group["conversation_id"]
    owner = devices["owner"]
    owner.send(cid, "early")
    late_id = make_user("late")
    befriend(owner.user_id, late_id)
    late = connect(app, login("late"))
    owner.http.post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [late_id]})
    seq = owner.send(cid, "now")["message"]["seq"]
    before = state(app, cid)
    for seqs in ([seq, 1], [seq, seq + 1]):
        response = late.http.post(hide_url(cid), json={"seqs": seqs})
        assert response.status_code == 404 and code_of(response) == "not_visible"
    stranger = devices["stranger"].http.post(hide_url(cid), json={"seqs": [seq]})
    assert stranger.status_code == 404 and code_of(stranger) == "not_found"
    assert state(app, cid) == before
    assert late.http.post(hide_url(cid), json={"seqs": [seq]}).status_code == 200
