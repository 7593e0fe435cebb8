"""State that stays true: a group you leave leaves your list on every device (live and through
/sync), one you are removed from or that is dissolved stays read-only; your own system events are
never unread; and the conversation payload says when you may not speak (group mute, mute all,
site mute), changing live."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from app.extensions import db
from app.groups import roles as group_roles
from app.models import GroupMember, utcnow
from app.moderation import services as moderation
from tests.chat_helpers import connect


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


@pytest.fixture
def team(app, make_user, login, befriend):
    """Alice owns a group with Bob and Carol; Bob is signed in on a phone and a laptop."""
    ids = {name: make_user(name) for name in ("alice", "bob", "carol")}
    befriend(ids["alice"], ids["bob"])
    befriend(ids["alice"], ids["carol"])
    alice = login("alice")
    created = alice.post("/api/v1/groups", json={"name": "Team", "member_ids": [ids["bob"], ids["carol"]]})
    assert created.status_code == 201, created.get_json()
    group = created.get_json()["group"]
    clients = {"alice": alice, "bob": login("bob"), "bob_laptop": login("bob"), "carol": login("carol")}
    return group, ids, clients


def listed(client) -> dict[int, dict]:
    page = client.get("/api/v1/conversations").get_json()
    return {item["id"]: item for item in page["conversations"]}


def cursor_of(client) -> str:
    return client.get("/api/v1/conversations").get_json()["cursor"]


def synced(client, cursor: str) -> dict:
    page = client.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert page["has_more"] is False
    return page


def updates(device, conversation_id: int) -> list[dict]:
    return [e for e in device.received("conversation:update") if e["id"] == conversation_id]


# --- leaving, removal, dissolving ------------------------------------------------------------


def test_leaving_takes_the_chat_off_every_device_live_and_through_sync(app, team):
    group, ids, clients = team
    cid = group["conversation_id"]
    clients["alice"].post(
        f"/api/v1/conversations/{cid}/messages",
        json={"client_msg_id": "hello-0001", "body": {"type": "txt", "msg": "hi"}},
    )
    cursor = cursor_of(clients["bob_laptop"])
    phone, laptop = connect(app, clients["bob"]), connect(app, clients["bob_laptop"])
    alice = connect(app, clients["alice"])
    for device in (phone, laptop, alice):
        device.received()

    assert clients["bob"].delete(f"/api/v1/groups/{group['id']}/members/{ids['bob']}").status_code == 204

    for device in (phone, laptop):
        events = device.socket.get_received()
        assert [e["args"][0] for e in events if e["name"] == "conversation:update"] == [
            {"id": cid, "hidden": True}
        ]
        # The leaver's devices are not sent "Bob left the group": the chat is gone there.
        assert [e for e in events if e["name"] == "message:new"] == []
    [notice] = alice.received("message:new")
    assert (notice["body"]["event"], notice["body"]["actor_id"]) == ("member_left", ids["bob"])

    page = clients["bob"].get("/api/v1/conversations").get_json()
    assert cid not in {item["id"] for item in page["conversations"]}
    assert page["unread_total"] == 0 and page["unread_elsewhere"] == {}
    assert code_of(clients["bob"].get(f"/api/v1/conversations/{cid}")) == "not_found"
    # A device that was away learns it from /sync, in the live event's shape, and nothing else.
    caught_up = synced(clients["bob_laptop"], cursor)
    assert [c for c in caught_up["conversations"] if c["id"] == cid] == [{"id": cid, "hidden": True}]
    # The others count Bob's notice as unread (it is not their act); the list shows it.
    assert listed(clients["carol"])[cid]["unread"] == 3

    # Invited again: the chat comes back, from then on.
    phone.received()
    assert (
        clients["alice"]
        .post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["bob"]]})
        .status_code
        == 200
    )
    assert [e["id"] for e in phone.received("conversation:new")] == [cid]
    back = listed(clients["bob"])[cid]
    assert (back["active"], back["unread"], back["my_role"]) == (True, 1, "member")
    assert synced(clients["bob"], cursor)["conversations"][-1]["id"] == cid


def test_a_chat_deleted_from_the_list_on_one_device_leaves_the_others_through_sync(app, team):
    group, _, clients = team
    cid = group["conversation_id"]
    cursor = cursor_of(clients["bob_laptop"])
    assert clients["bob"].patch(f"/api/v1/conversations/{cid}", json={"hidden": True}).status_code == 200
    caught_up = synced(clients["bob_laptop"], cursor)
    assert [c for c in caught_up["conversations"] if c["id"] == cid] == [{"id": cid, "hidden": True}]
    # Bad input changes nothing: the flag stays as it was.
    assert (
        code_of(clients["bob"].patch(f"/api/v1/conversations/{cid}", json={"hidden": "maybe"}))
        == "invalid_input"
    )
    assert cid not in listed(clients["bob"])


def test_a_removed_member_keeps_the_chat_read_only_with_the_notice(app, team):
    group, ids, clients = team
    cid = group["conversation_id"]
    cursor = cursor_of(clients["carol"])
    carol = connect(app, clients["carol"])
    carol.received()
    assert clients["alice"].delete(f"/api/v1/groups/{group['id']}/members/{ids['carol']}").status_code == 204
    [notice] = carol.received("message:new")
    assert notice["body"]["event"] == "member_removed"
    kept = listed(clients["carol"])[cid]
    # Alice's act, not Carol's: her notice is unread for her (the group's creation is too).
    assert (kept["active"], kept["unread"], kept["my_role"], kept["my_muted_until"]) == (False, 2, None, None)
    [summary] = [c for c in synced(clients["carol"], cursor)["conversations"] if c["id"] == cid]
    assert (summary["active"], summary["unread"], summary.get("hidden")) == (False, 2, None)
    # Alice removed her: no unread for Alice.
    assert listed(clients["alice"])[cid]["unread"] == 0


def test_a_dissolved_group_stays_in_every_list_read_only(app, team):
    group, ids, clients = team
    cid = group["conversation_id"]
    before = listed(clients["bob"])[cid]["unread"]
    assert (
        clients["alice"].post(f"/api/v1/groups/{group['id']}/dissolve", json={"reason": "done"}).status_code
        == 200
    )
    bob, alice = listed(clients["bob"])[cid], listed(clients["alice"])[cid]
    assert (bob["group"]["dissolved"], bob["active"], bob["unread"]) == (True, True, before + 1)
    assert (alice["group"]["dissolved"], alice["unread"]) == (True, 0)


# --- own system events ---------------------------------------------------------------------


def test_own_system_events_are_never_unread_while_others_raise_it(app, team):
    group, ids, clients = team
    cid, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    cursor = cursor_of(clients["alice"])
    start = {name: listed(clients[name])[cid]["unread"] for name in ("alice", "bob")}
    assert start == {"alice": 0, "bob": 1}  # "Alice created the group" is Bob's to read

    assert clients["alice"].patch(base, json={"name": "Team 2"}).status_code == 200
    assert clients["alice"].put(f"{base}/mute", json={"muted": True}).status_code == 200
    assert clients["alice"].put(f"{base}/members/{ids['bob']}/mute", json={"minutes": 5}).status_code == 200
    mine, theirs = listed(clients["alice"])[cid], listed(clients["bob"])[cid]
    assert (mine["unread"], mine["read_seq"]) == (0, mine["last_seq"])
    assert theirs["unread"] == 4
    assert clients["alice"].get("/api/v1/conversations").get_json()["unread_total"] == 0
    [summary] = [c for c in synced(clients["alice"], cursor)["conversations"] if c["id"] == cid]
    assert (summary["unread"], summary["read_seq"]) == (0, summary["last_seq"])

    # Joining is one's own act too (an open group, or a request an admin approved); being
    # invited is the inviter's, so it is unread.
    assert clients["alice"].patch(base, json={"join_policy": "open"}).status_code == 200
    assert clients["carol"].delete(f"{base}/members/{ids['carol']}").status_code == 204
    assert clients["carol"].post(f"{base}/join-requests", json={}).get_json()["status"] == "joined"
    joined = listed(clients["carol"])[cid]
    assert (joined["unread"], joined["read_seq"]) == (0, joined["last_seq"])
    assert clients["alice"].patch(base, json={"join_policy": "approval"}).status_code == 200
    assert clients["carol"].delete(f"{base}/members/{ids['carol']}").status_code == 204
    asked = clients["carol"].post(f"{base}/join-requests", json={"message": "again"}).get_json()
    assert (
        clients["alice"].post(f"/api/v1/group-join-requests/{asked['id']}/approve", json={}).status_code
        == 200
    )
    assert listed(clients["carol"])[cid]["unread"] == 0
    assert listed(clients["alice"])[cid]["unread"] == 0  # Alice approved: her act
    assert clients["carol"].delete(f"{base}/members/{ids['carol']}").status_code == 204
    assert clients["alice"].post(f"{base}/members", json={"user_ids": [ids["carol"]]}).status_code == 200
    assert listed(clients["carol"])[cid]["unread"] == 1


def test_an_actor_outside_the_group_reads_nothing_for_anyone(app, team, make_user):
    """A site administrator's act names them as actor; it moves no member's read position."""
    group, ids, clients = team
    cid = group["conversation_id"]
    root = make_user("root", is_admin=True)
    before = listed(clients["bob"])[cid]["unread"]
    with app.app_context():
        group_roles.mute_all(root, group["id"], True, site_admin=True)
    assert listed(clients["bob"])[cid]["unread"] == before + 1


# --- who may speak: the payload and its changes ----------------------------------------------


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_a_member_mute_is_in_the_summary_and_told_live(app, team):
    group, ids, clients = team
    cid, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    phone, laptop = connect(app, clients["bob"]), connect(app, clients["bob_laptop"])
    carol = connect(app, clients["carol"])
    assert (listed(clients["bob"])[cid]["my_role"], listed(clients["alice"])[cid]["my_role"]) == (
        "member",
        "owner",
    )
    assert listed(clients["bob"])[cid]["my_muted_until"] is None
    for device in (phone, laptop, carol):
        device.received()

    assert clients["alice"].put(f"{base}/members/{ids['bob']}/mute", json={"minutes": 30}).status_code == 200
    for device in (phone, laptop):
        [told] = updates(device, cid)
        until = parse(told["my_muted_until"])
        assert timedelta(minutes=29) < until - utcnow() <= timedelta(minutes=30)
    assert updates(carol, cid) == []  # nobody else's state changed
    assert listed(clients["bob"])[cid]["my_muted_until"] == told["my_muted_until"]
    assert phone.send(cid, "let me talk")["error"]["code"] == "member_muted"

    # Bad input: refused with its code, the mute unchanged, nothing told.
    refused = clients["alice"].put(f"{base}/members/{ids['bob']}/mute", json={"minutes": -1})
    assert code_of(refused) == "invalid_input"
    refused = clients["carol"].put(f"{base}/members/{ids['bob']}/mute", json={"minutes": 0})
    assert code_of(refused) == "forbidden"
    assert updates(phone, cid) == []
    assert listed(clients["bob"])[cid]["my_muted_until"] == told["my_muted_until"]

    assert clients["alice"].put(f"{base}/members/{ids['bob']}/mute", json={"minutes": 0}).status_code == 200
    [lifted] = updates(phone, cid)
    assert lifted["my_muted_until"] is None
    assert phone.send(cid, "thanks")["ok"] is True


def test_an_ended_member_mute_is_told_as_a_summary(app, team):
    group, ids, clients = team
    cid = group["conversation_id"]
    phone = connect(app, clients["bob"])
    with app.app_context():
        group_roles.mute_member(ids["alice"], group["id"], ids["bob"], 1)
        db.session.execute(
            update(GroupMember)
            .where(GroupMember.group_id == group["id"], GroupMember.user_id == ids["bob"])
            .values(muted_until=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    # Ended already: the payload reads null, before the job clears the row.
    assert listed(clients["bob"])[cid]["my_muted_until"] is None
    phone.received()
    with app.app_context():
        group_roles.end_member_mutes(utcnow() - timedelta(seconds=30), utcnow())
        db.session.commit()
    [told] = updates(phone, cid)
    assert told["my_muted_until"] is None


def test_mute_all_and_roles_are_in_the_summary_and_told_live(app, team):
    group, ids, clients = team
    cid, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    cursor = cursor_of(clients["bob"])
    phone = connect(app, clients["bob"])
    phone.received()
    assert clients["alice"].put(f"{base}/mute", json={"muted": True}).status_code == 200
    [brief] = phone.received("group:update")
    assert (brief["conversation_id"], brief["muted_all"]) == (cid, True)
    summary = listed(clients["bob"])[cid]
    assert (summary["group"]["muted_all"], summary["my_role"]) == (True, "member")
    [caught_up] = [c for c in synced(clients["bob"], cursor)["conversations"] if c["id"] == cid]
    assert (caught_up["group"]["muted_all"], caught_up["my_role"]) == (True, "member")
    assert phone.send(cid, "hello?")["error"]["code"] == "group_muted"

    # Made an admin, Bob may speak again: his devices learn his role.
    assert (
        clients["alice"].put(f"{base}/members/{ids['bob']}/role", json={"role": "admin"}).status_code == 200
    )
    assert [u["my_role"] for u in updates(phone, cid)] == ["admin"]
    assert phone.send(cid, "admins may")["ok"] is True
    refused = clients["alice"].put(f"{base}/members/{ids['bob']}/role", json={"role": "boss"})
    assert code_of(refused) == "invalid_input"
    assert listed(clients["bob"])[cid]["my_role"] == "admin"

    # Ownership handed over: both devices' users learn their new roles.
    alice = connect(app, clients["alice"])
    alice.received()
    assert clients["alice"].post(f"{base}/transfer", json={"user_id": ids["bob"]}).status_code == 200
    assert [u["my_role"] for u in updates(phone, cid)] == ["owner"]
    assert [u["my_role"] for u in updates(alice, cid)] == ["admin"]


def test_the_site_mute_comes_with_the_user_and_is_told_live(app, team, make_user):
    _, ids, clients = team
    root = make_user("root", is_admin=True)
    phone = connect(app, clients["bob"])
    none = {"kind": "mute", "active": False, "expires_at": None}
    assert clients["bob"].get("/api/v1/auth/me").get_json()["sanction"] == none
    phone.received()
    with app.app_context():
        moderation.mute_user(root, ids["bob"], "spam", 90)
    me = clients["bob"].get("/api/v1/auth/me").get_json()["sanction"]
    assert me["active"] is True
    assert timedelta(minutes=89) < parse(me["expires_at"]) - utcnow() <= timedelta(minutes=90)
    assert phone.received("account:sanction") == [me]
    # The chat page's boot payload carries it too: the composers start closed after a reload.
    page = clients["bob"].get("/").get_data(as_text=True)
    boot = json.loads(re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)[1])
    assert boot["sanction"] == me
    # Refused (an administrator mutes themself): nothing changes.
    with app.app_context(), pytest.raises(Exception) as refused:
        moderation.mute_user(root, root, "oops", 5)
    assert getattr(refused.value, "code", None) == "cannot_sanction_self"
    with app.app_context():
        moderation.unmute(root, ids["bob"])
    assert clients["bob"].get("/api/v1/auth/me").get_json()["sanction"] == none
    assert phone.received("account:sanction") == [none]
    # For ever: no end.
    with app.app_context():
        moderation.mute_user(root, ids["bob"], "spam", None)
    assert clients["bob"].get("/api/v1/auth/me").get_json()["sanction"] == {
        "kind": "mute",
        "active": True,
        "expires_at": None,
    }


def test_a_deleted_chat_comes_back_with_the_next_message_and_stays_once_read(app, team):
    group, ids, clients = team
    cid = group["conversation_id"]
    bob, laptop = clients["bob"], clients["bob_laptop"]
    assert bob.patch(f"/api/v1/conversations/{cid}", json={"hidden": True}).status_code == 200
    # Deleting it from the list read it: nothing brings it back but a new message.
    assert cid not in listed(bob)
    assert bob.get(f"/api/v1/conversations/{cid}").status_code == 404
    cursor = cursor_of(laptop)
    seq = say(clients["alice"], cid, "back?")
    back = listed(bob)[cid]
    assert (back["unread"], back["last_message"]["body"]["msg"]) == (1, "back?")
    assert bob.get(f"/api/v1/conversations/{cid}").get_json()["conversation"]["unread"] == 1
    # Another device catching up gets the chat, not a "hidden" item.
    [summary] = [c for c in synced(laptop, cursor)["conversations"] if c["id"] == cid]
    assert summary.get("hidden") is None and summary["unread"] == 1
    # Read, it stays on the list.
    assert bob.post(f"/api/v1/conversations/{cid}/read", json={"seq": seq}).status_code == 200
    assert listed(bob)[cid]["unread"] == 0
    # A group Bob left does not come back with the others' messages.
    assert bob.delete(f"/api/v1/groups/{group['id']}/members/{ids['bob']}").status_code == 204
    say(clients["alice"], cid, "gone")
    assert cid not in listed(bob)


def say(client, conversation_id: int, text: str) -> int:
    body = {"client_msg_id": uuid.uuid4().hex, "body": {"type": "txt", "msg": text}}
    sent = client.post(f"/api/v1/conversations/{conversation_id}/messages", json=body)
    assert sent.status_code == 201, sent.get_json()
    return sent.get_json()["message"]["seq"]


def test_opening_a_direct_chat_deleted_from_the_list_puts_it_back(app, team):
    """Contacts → Message, or the robot's chat at start: a chat deleted from the list opens (no
    500) and is listed again, on the user's other devices too (live and through /sync)."""
    _, ids, clients = team
    bob, laptop = clients["bob"], clients["bob_laptop"]
    opened = bob.post("/api/v1/conversations", json={"user_id": ids["alice"]})
    cid = opened.get_json()["conversation"]["id"]
    robot = bob.get("/api/v1/bot").get_json()["conversation"]["id"]
    for conversation_id in (cid, robot):
        assert bob.patch(f"/api/v1/conversations/{conversation_id}", json={"hidden": True}).status_code == 200
    assert cid not in listed(bob) and robot not in listed(bob)
    cursor = cursor_of(laptop)
    device = connect(app, laptop)
    device.received()
    again = bob.post("/api/v1/conversations", json={"user_id": ids["alice"]})
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["conversation"]["id"] == cid
    assert cid in listed(bob)
    assert [event["id"] for event in updates(device, cid)] == [cid]
    [summary] = [c for c in synced(laptop, cursor)["conversations"] if c["id"] == cid]
    assert summary.get("hidden") is None and summary["unread"] == 0
    assert bob.get("/api/v1/bot").status_code == 200
    assert robot in listed(bob)
