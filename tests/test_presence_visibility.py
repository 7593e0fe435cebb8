"""Who sees a user's presence: friends and direct-chat peers, never strangers, group mates or
anyone blocked in either direction (GET /presence and `presence` events alike)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from app.chat.conversations import open_direct
from app.extensions import db
from app.groups.services import create_group
from app.models import User
from app.social import services as social
from tests.chat_helpers import connect

HIDDEN = {"online": False, "last_seen_at": None}


@pytest.fixture
def people(app, make_user, befriend):
    """alice and: bob (friend), carol (direct peer, no longer a friend), dave (stranger),
    erin (friend alice blocked), frank (friend who blocked alice), gina (shares a group)."""
    ids = {name: make_user(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina")}
    for name in ("bob", "carol", "erin", "frank"):
        befriend(ids["alice"], ids[name])
    befriend(ids["bob"], ids["gina"])
    with app.app_context():
        open_direct(ids["alice"], ids["carol"])
        social.remove_friend(ids["alice"], ids["carol"])
        social.block_user(ids["alice"], ids["erin"])
        social.block_user(ids["frank"], ids["alice"])
        create_group(ids["bob"], "club", [ids["alice"], ids["gina"]])
        db.session.commit()
    return ids


def by_user(entries: list[dict]) -> dict[int, dict]:
    return {entry.pop("user_id"): entry for entry in entries}


def test_presence_is_shown_to_friends_and_direct_peers_only(app, people, login):
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with app.app_context():
        db.session.execute(update(User).values(last_seen_at=seen))
        db.session.commit()
    for name in ("bob", "erin", "frank", "gina"):
        connect(app, login(name))
    alice = login("alice")
    ids = ",".join(str(people[name]) for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"))

    listed = by_user(alice.get(f"/api/v1/presence?user_ids={ids}").get_json()["presence"])

    assert listed.pop(people["alice"])["last_seen_at"] is not None  # signing in counts as seen
    assert listed == {
        people["bob"]: {"online": True, "last_seen_at": None},
        people["carol"]: {"online": False, "last_seen_at": "2026-01-02T03:04:05Z"},
        people["dave"]: HIDDEN,
        people["erin"]: HIDDEN,
        people["frank"]: HIDDEN,
        people["gina"]: HIDDEN,
    }


def test_a_blocked_or_blocking_user_and_a_stranger_see_nothing(app, people, login):
    connect(app, login("alice"))
    for name in ("dave", "erin", "frank", "gina"):
        viewer = login(name)
        [entry] = viewer.get(f"/api/v1/presence?user_ids={people['alice']}").get_json()["presence"]
        assert entry == {"user_id": people["alice"], **HIDDEN}, name
    [entry] = login("bob").get(f"/api/v1/presence?user_ids={people['alice']}").get_json()["presence"]
    assert entry == {"user_id": people["alice"], "online": True, "last_seen_at": None}


def test_unblocking_restores_the_friends_presence(app, people, login):
    connect(app, login("erin"))
    alice = login("alice")
    assert alice.delete(f"/api/v1/blocks/{people['erin']}").status_code == 204
    [entry] = alice.get(f"/api/v1/presence?user_ids={people['erin']}").get_json()["presence"]
    assert entry["online"] is True


def test_presence_events_reach_friends_and_direct_peers_only(app, people, login):
    watchers = {name: connect(app, login(name)) for name in ("bob", "carol", "dave", "erin", "frank", "gina")}
    for watcher in watchers.values():
        watcher.received()

    alice = connect(app, login("alice"))
    heard_online = {name: watcher.received("presence") for name, watcher in watchers.items()}
    alice.socket.disconnect()
    heard_offline = {name: watcher.received("presence") for name, watcher in watchers.items()}

    online = [{"user_id": people["alice"], "online": True, "last_seen_at": None}]
    assert heard_online == {
        "bob": online,
        "carol": online,
        "dave": [],
        "erin": [],
        "frank": [],
        "gina": [],
    }
    assert {
        name: [(e["user_id"], e["online"]) for e in events] for name, events in heard_offline.items()
    } == {
        "bob": [(people["alice"], False)],
        "carol": [(people["alice"], False)],
        "dave": [],
        "erin": [],
        "frank": [],
        "gina": [],
    }


def test_a_blocked_users_presence_events_do_not_reach_the_blocker(app, people, login):
    alice = connect(app, login("alice"))
    alice.received()
    for name in ("bob", "erin", "frank"):
        connect(app, login(name)).socket.disconnect()
    heard = [(event["user_id"], event["online"]) for event in alice.received("presence")]
    assert heard == [(people["bob"], True), (people["bob"], False)]


def test_the_friend_list_hides_presence_across_a_block(app, people, login):
    seen = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with app.app_context():
        db.session.execute(update(User).values(last_seen_at=seen))
        db.session.commit()
    for name in ("bob", "erin", "frank"):
        connect(app, login(name))

    friends = login("alice").get("/api/v1/friends").get_json()["friends"]

    shown = {entry["user"]["username"]: (entry["online"], entry["last_seen_at"]) for entry in friends}
    assert shown == {"bob": (True, None), "erin": (False, None), "frank": (False, None)}
    remark = login("alice").patch(f"/api/v1/friends/{people['frank']}", json={"remark": "F"})
    assert remark.status_code == 200, remark.get_json()
    assert (remark.get_json()["friend"]["online"], remark.get_json()["friend"]["last_seen_at"]) == (
        False,
        None,
    )


def test_a_group_member_list_shows_presence_only_where_it_may_be_seen(app, people, login):
    for name in ("bob", "gina"):
        connect(app, login(name))
    alice = login("alice")
    [group] = alice.get("/api/v1/groups").get_json()["groups"]
    members = alice.get(f"/api/v1/groups/{group['id']}/members").get_json()["members"]
    online = {member["user"]["id"]: member["online"] for member in members}
    # bob is a friend; gina only shares the group, so her socket shows nothing.
    assert online == {people["alice"]: False, people["bob"]: True, people["gina"]: False}


def test_the_conversation_list_hides_a_direct_peers_presence_across_a_block(app, make_user, befriend, login):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        open_direct(alice_id, bob_id)
        db.session.commit()
    bob = login("bob")
    connect(app, bob)
    alice = login("alice")

    def peer_online() -> bool:
        [item] = alice.get("/api/v1/conversations").get_json()["conversations"]
        return item["online"]

    assert peer_online() is True
    assert bob.post("/api/v1/blocks", json={"user_id": alice_id}).status_code in (200, 201, 204)
    assert peer_online() is False
