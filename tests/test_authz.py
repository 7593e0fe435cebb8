"""Who may see and do what: the readers window, the group removal list, and the right to speak
applied to typing and read receipts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import GroupJoinRequest, GroupMember, GroupRemoval, Message
from app.moderation import services as moderation
from tests.chat_helpers import connect


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


def row_counts(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (GroupMember, GroupJoinRequest, GroupRemoval, Message)
        )


@pytest.fixture
def team(app, make_user, login, befriend):
    """An open group of owner, admin and member; a friend of the owner's and the member's
    outside it."""
    ids = {name: make_user(name) for name in ("owner", "admin", "member", "friend")}
    for name in ("admin", "member", "friend"):
        befriend(ids["owner"], ids[name])
    befriend(ids["member"], ids["friend"])
    clients = {name: login(name) for name in ids}
    created = clients["owner"].post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["admin"], ids["member"]]}
    )
    group = created.get_json()["group"]
    base = f"/api/v1/groups/{group['id']}"
    assert (
        clients["owner"].put(f"{base}/members/{ids['admin']}/role", json={"role": "admin"}).status_code == 200
    )
    assert clients["owner"].patch(base, json={"join_policy": "open"}).status_code == 200
    return group, ids, clients


def send(app, client, conversation_id: int, text: str) -> int:
    device = connect(app, client)
    ack = device.send(conversation_id, text)
    device.socket.disconnect()
    assert ack["ok"], ack
    return ack["message"]["seq"]


# --- readers: only inside the caller's window ----------------------------------------------


def test_a_former_member_gets_readers_only_up_to_their_leaving(team, app):
    group, ids, clients = team
    conversation_id, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    before = send(app, clients["owner"], conversation_id, "while you are here")
    assert clients["admin"].delete(f"{base}/members/{ids['member']}").status_code == 204
    after = send(app, clients["owner"], conversation_id, "after you left")

    readers = f"/api/v1/conversations/{conversation_id}/messages"
    seen = clients["member"].get(f"{readers}/{before}/readers")
    assert seen.status_code == 200
    assert seen.get_json()["seq"] == before
    notice = clients["member"].get(f"{readers}/{after - 1}/readers")  # the removal notice: still theirs
    assert notice.status_code == 200
    hidden = clients["member"].get(f"{readers}/{after}/readers")
    assert hidden.status_code == 404
    assert code_of(hidden) == "not_found"
    # The same answer as for a message that does not exist: nothing tells them it does.
    assert hidden.get_json() == clients["member"].get(f"{readers}/{after + 50}/readers").get_json()


def test_a_new_member_gets_no_readers_of_messages_before_they_joined(team, app):
    group, ids, clients = team
    conversation_id, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    old = send(app, clients["owner"], conversation_id, "before you came")
    assert clients["owner"].post(f"{base}/members", json={"user_ids": [ids["friend"]]}).status_code == 200
    new = send(app, clients["owner"], conversation_id, "welcome")

    readers = f"/api/v1/conversations/{conversation_id}/messages"
    refused = clients["friend"].get(f"{readers}/{old}/readers")
    assert refused.status_code == 404
    assert code_of(refused) == "not_found"
    assert clients["friend"].get(f"{readers}/0/readers").status_code == 404
    answered = clients["friend"].get(f"{readers}/{new}/readers")
    assert answered.status_code == 200
    assert ids["friend"] in [user["id"] for user in answered.get_json()["unread_by"]]
    # Members who were there see the old message's readers as before.
    assert clients["admin"].get(f"{readers}/{old}/readers").status_code == 200


# --- the removal list ----------------------------------------------------------------------


def test_a_kicked_member_cannot_rejoin_an_open_group(team, app):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    assert clients["admin"].delete(f"{base}/members/{ids['member']}").status_code == 204
    before = row_counts(app)
    refused = clients["member"].post(f"{base}/join-requests", json={})
    assert refused.status_code == 403
    assert code_of(refused) == "removed_from_group"
    assert row_counts(app) == before
    # Nor by asking, once the group takes requests.
    assert clients["owner"].patch(base, json={"join_policy": "approval"}).status_code == 200
    before = row_counts(app)
    asked = clients["member"].post(f"{base}/join-requests", json={"message": "sorry"})
    assert code_of(asked) == "removed_from_group"
    assert row_counts(app) == before


def test_leaving_is_not_a_removal(team, app):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    assert clients["member"].delete(f"{base}/members/{ids['member']}").status_code == 204
    assert clients["member"].post(f"{base}/join-requests", json={}).status_code == 201
    assert clients["owner"].get(f"{base}/removed").get_json() == {"removed": [], "next": None}


def test_a_member_cannot_invite_a_removed_user_back(team, app):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    assert clients["owner"].post(f"{base}/members", json={"user_ids": [ids["friend"]]}).status_code == 200
    assert clients["admin"].delete(f"{base}/members/{ids['friend']}").status_code == 204
    before = row_counts(app)
    refused = clients["member"].post(f"{base}/members", json={"user_ids": [ids["friend"]]})
    assert refused.status_code == 403
    assert code_of(refused) == "removed_from_group"
    assert refused.get_json()["error"]["fields"] == {"user_ids": str(ids["friend"])}
    assert row_counts(app) == before


def test_owner_and_admins_list_and_lift_the_removal_list(team, app, make_user, login):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    assert clients["admin"].delete(f"{base}/members/{ids['member']}").status_code == 204
    listed = clients["owner"].get(f"{base}/removed")
    assert listed.status_code == 200
    [entry] = listed.get_json()["removed"]
    assert entry["user"]["id"] == ids["member"]
    assert entry["removed_by_id"] == ids["admin"]
    assert entry["removed_at"].endswith("Z")
    assert clients["admin"].get(f"{base}/removed").get_json()["removed"] == [entry]

    # A plain member neither sees nor lifts it; a stranger does not even see the group's list.
    assert clients["owner"].post(f"{base}/members", json={"user_ids": [ids["friend"]]}).status_code == 200
    before = row_counts(app)
    assert code_of(clients["friend"].get(f"{base}/removed")) == "forbidden"
    assert code_of(clients["friend"].delete(f"{base}/removed/{ids['member']}")) == "forbidden"
    make_user("stranger")
    stranger = login("stranger")
    assert code_of(stranger.get(f"{base}/removed")) == "not_member"
    assert code_of(stranger.delete(f"{base}/removed/{ids['member']}")) == "not_member"
    assert code_of(clients["admin"].delete(f"{base}/removed/{ids['friend']}")) == "not_found"
    assert code_of(clients["admin"].delete(f"{base}/removed/99999999")) == "not_found"
    assert row_counts(app) == before

    assert clients["admin"].delete(f"{base}/removed/{ids['member']}").status_code == 204
    assert clients["owner"].get(f"{base}/removed").get_json()["removed"] == []
    joined = clients["member"].post(f"{base}/join-requests", json={})
    assert joined.status_code == 201
    assert joined.get_json()["status"] == "joined"


def test_an_admin_adding_a_removed_user_back_lifts_the_entry(team, app):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    assert clients["admin"].delete(f"{base}/members/{ids['member']}").status_code == 204
    added = clients["owner"].post(f"{base}/members", json={"user_ids": [ids["member"]]})
    assert added.status_code == 200
    assert added.get_json() == {"added": [ids["member"]]}
    assert clients["owner"].get(f"{base}/removed").get_json()["removed"] == []


def test_a_removal_by_the_admin_console_is_listed_too(team, app, make_user):
    group, ids, clients = team
    site_admin = make_user("siteadmin", is_admin=True)
    with app.app_context():
        moderation.remove_group_member(site_admin, group["id"], ids["member"], "spam")
    [entry] = clients["admin"].get(f"/api/v1/groups/{group['id']}/removed").get_json()["removed"]
    assert (entry["user"]["id"], entry["removed_by_id"]) == (ids["member"], site_admin)
    refused = clients["member"].post(f"/api/v1/groups/{group['id']}/join-requests", json={})
    assert code_of(refused) == "removed_from_group"


def test_the_removal_list_is_paged(team, app, make_user, befriend):
    group, ids, clients = team
    base = f"/api/v1/groups/{group['id']}"
    extra = [make_user(f"extra{n}") for n in range(3)]
    for user_id in extra:
        befriend(ids["owner"], user_id)
    assert clients["owner"].post(f"{base}/members", json={"user_ids": extra}).status_code == 200
    for user_id in extra:
        assert clients["owner"].delete(f"{base}/members/{user_id}").status_code == 204
    first = clients["owner"].get(f"{base}/removed?limit=2").get_json()
    assert [entry["user"]["id"] for entry in first["removed"]] == extra[:2]
    rest = clients["owner"].get(f"{base}/removed?limit=2&after={first['next']}").get_json()
    assert [entry["user"]["id"] for entry in rest["removed"]] == extra[2:]
    assert rest["next"] is None
    assert code_of(clients["owner"].get(f"{base}/removed?limit=0")) == "invalid_input"


# --- typing and read receipts follow the right to speak ------------------------------------


@pytest.fixture
def pair(app, make_user, login, befriend):
    """Alice and Bob, friends with a direct conversation, each with a socket."""
    befriend(make_user("alice"), make_user("bob"))
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    conversation_id = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id}).get_json()[
        "conversation"
    ]["id"]
    for device in (alice, bob):
        device.received()
    return alice, bob, conversation_id


@pytest.mark.parametrize("blocker", ["bob", "alice"])
def test_typing_is_refused_between_blocked_users(pair, blocker):
    alice, bob, conversation_id = pair
    by = bob if blocker == "bob" else alice
    other = alice if blocker == "bob" else bob
    assert by.http.post("/api/v1/blocks", json={"user_id": other.user_id}).status_code == 204
    for typist, watcher in ((alice, bob), (bob, alice)):
        ack = typist.emit("typing", {"conversation_id": conversation_id})
        assert ack["ok"] is False
        assert ack["error"]["code"] == "blocked"
        assert watcher.received("typing") == []
    # Unblocked, typing flows again.
    assert by.http.delete(f"/api/v1/blocks/{other.user_id}").status_code == 204
    assert alice.emit("typing", {"conversation_id": conversation_id}) == {"ok": True, "throttled": False}
    assert [event["user_id"] for event in bob.received("typing")] == [alice.user_id]


def test_typing_is_refused_to_those_who_may_not_send(team, app, login):
    group, ids, clients = team
    conversation_id, base = group["conversation_id"], f"/api/v1/groups/{group['id']}"
    owner, member = connect(app, clients["owner"]), connect(app, clients["member"])
    assert (
        clients["admin"].put(f"{base}/members/{ids['member']}/mute", json={"minutes": 10}).status_code == 200
    )
    owner.received()
    ack = member.emit("typing", {"conversation_id": conversation_id})
    assert ack["error"]["code"] == "member_muted"
    assert owner.received("typing") == []
    assert clients["owner"].put(f"{base}/mute", json={"muted": True}).status_code == 200
    owner.received()
    admin = connect(app, clients["admin"])
    assert admin.emit("typing", {"conversation_id": conversation_id}) == {"ok": True, "throttled": False}
    assert [event["user_id"] for event in owner.received("typing")] == [ids["admin"]]
    assert clients["admin"].delete(f"{base}/members/{ids['member']}").status_code == 204
    fresh = connect(app, login("member"))
    assert fresh.emit("typing", {"conversation_id": conversation_id})["error"]["code"] == "not_member"


def test_group_typing_skips_members_who_blocked_the_typist(team, app):
    group, ids, clients = team
    conversation_id = group["conversation_id"]
    owner, admin, member = (connect(app, clients[name]) for name in ("owner", "admin", "member"))
    assert clients["owner"].post("/api/v1/blocks", json={"user_id": ids["member"]}).status_code == 204
    for device in (owner, admin, member):
        device.received()
    assert member.emit("typing", {"conversation_id": conversation_id}) == {"ok": True, "throttled": False}
    assert owner.received("typing") == []
    assert [event["user_id"] for event in admin.received("typing")] == [ids["member"]]


def _read_up_to(device, conversation_id: int, seq: int) -> dict:
    ack = device.emit("conversation:read", {"conversation_id": conversation_id, "seq": seq})
    assert ack["ok"], ack
    return ack


@pytest.mark.parametrize("blocker", ["alice", "bob"])
def test_no_read_receipts_between_blocked_users(pair, app, login, blocker):
    alice, bob, conversation_id = pair
    seq = alice.send(conversation_id, "are you there?")["message"]["seq"]
    by = alice if blocker == "alice" else bob
    other = bob if blocker == "alice" else alice
    assert by.http.post("/api/v1/blocks", json={"user_id": other.user_id}).status_code == 204
    bob_laptop = connect(app, login("bob"))
    for device in (alice, bob, bob_laptop):
        device.received()

    assert _read_up_to(bob, conversation_id, seq)["read_seq"] == seq
    assert alice.received("receipt:read") == []
    # The reader's own devices still learn their read position.
    assert [event["read_seq"] for event in bob_laptop.received("conversation:read")] == [seq]
    # Nor does the sender learn it by reloading, or by asking who read the message.
    summary = alice.http.get(f"/api/v1/conversations/{conversation_id}").get_json()["conversation"]
    assert summary["peer_read_seq"] is None
    assert alice.http.get("/api/v1/conversations").get_json()["conversations"][0]["peer_read_seq"] is None
    readers = alice.http.get(f"/api/v1/conversations/{conversation_id}/messages/{seq}/readers").get_json()
    assert readers == {"seq": seq, "read_by": [], "unread_by": []}

    # Lifted, receipts flow again and the position shows.
    assert by.http.delete(f"/api/v1/blocks/{other.user_id}").status_code == 204
    later = alice.send(conversation_id, "hello again")["message"]["seq"]
    alice.received()
    _read_up_to(bob, conversation_id, later)
    assert alice.received("receipt:read") == [
        {"conversation_id": conversation_id, "user_id": bob.user_id, "read_seq": later}
    ]
    summary = alice.http.get(f"/api/v1/conversations/{conversation_id}").get_json()["conversation"]
    assert summary["peer_read_seq"] == later


def test_receipts_between_friends_are_unchanged(pair):
    alice, bob, conversation_id = pair
    seq = alice.send(conversation_id, "hi")["message"]["seq"]
    alice.received()
    _read_up_to(bob, conversation_id, seq)
    assert alice.received("receipt:read") == [
        {"conversation_id": conversation_id, "user_id": bob.user_id, "read_seq": seq}
    ]
    readers = alice.http.get(f"/api/v1/conversations/{conversation_id}/messages/{seq}/readers").get_json()
    assert [user["id"] for user in readers["read_by"]] == [bob.user_id]
