"""Server API, groups: the company's backend manages groups as the service, not as a member.

Members need not be friends; every change has the client path's effects (system messages,
live events, refused sends), with "The administrator" named as the actor; bad input changes
nothing; keys need the `groups` scope (GETs: `read` or `groups`).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Group, GroupMember, GroupRemoval, Message, User, utcnow
from tests.chat_helpers import connect

BASE = "/api/server/v1/groups"


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


@pytest.fixture
def people(make_user):
    """Five users, none of them friends of any other."""
    return {name: make_user(name) for name in ("owner", "ann", "ben", "cat", "dan")}


@pytest.fixture
def headers(api_key):
    return api_key("groups", "read")


@pytest.fixture
def made(client, people, headers):
    """A group made by the server: owner, with ann and ben."""
    response = client.post(
        BASE,
        json={"owner_id": people["owner"], "name": "Team", "member_ids": [people["ann"], people["ben"]]},
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["group"]


def snapshot(app, group_id: int):
    """Everything a refused request must leave as it was."""
    with app.app_context():
        group = db.session.get(Group, group_id)
        members = db.session.execute(
            select(GroupMember.user_id, GroupMember.role, GroupMember.muted_until)
            .where(GroupMember.group_id == group_id)
            .order_by(GroupMember.user_id)
        ).all()
        messages = db.session.scalars(
            select(Message.id).where(Message.conversation_id == group.conversation_id)
        ).all()
        removals = db.session.scalars(select(GroupRemoval.user_id).where(GroupRemoval.group_id == group_id))
        settings = (group.name, group.announcement, group.join_policy, group.owner_id, group.muted_all)
        return settings, group.dissolved_at, group.member_count, list(members), list(messages), list(removals)


def system_messages(app, conversation_id: int) -> list[dict]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Message.body).where(Message.conversation_id == conversation_id).order_by(Message.seq)
            )
        )


def group_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Group.id)))


# --- creating --------------------------------------------------------------------------------


def test_a_group_of_strangers_reaches_every_member_live(app, client, people, headers, login):
    devices = {name: connect(app, login(name)) for name in ("owner", "ann", "ben")}
    for device in devices.values():
        device.received()
    response = client.post(
        BASE,
        json={
            "owner_id": people["owner"],
            "name": "Launch",
            "member_ids": [people["ann"], people["ben"], people["owner"], people["ann"]],
            "announcement": "Welcome aboard",
            "join_policy": "invite",
            "discoverable": False,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    group = response.get_json()["group"]
    assert (group["owner_id"], group["member_count"], group["name"]) == (people["owner"], 3, "Launch")
    assert (group["announcement"], group["join_policy"], group["discoverable"]) == (
        "Welcome aboard",
        "invite",
        False,
    )
    for device in devices.values():
        new = device.received("conversation:new")
        assert [summary["id"] for summary in new] == [group["conversation_id"]]
    created = system_messages(app, group["conversation_id"])
    assert [body["event"] for body in created] == ["group_created"]
    assert created[0]["actor_id"] is None
    assert created[0]["text"] == "The administrator created the group"
    assert sorted(created[0]["user_ids"]) == sorted([people["ann"], people["ben"]])
    # The members talk at once, and see the group as the client API shows it.
    assert devices["ann"].send(group["conversation_id"], "hi all")["ok"] is True
    assert [m["body"]["msg"] for m in devices["ben"].received("message:new")] == ["hi all"]
    mine = devices["ben"].http.get(f"/api/v1/groups/{group['id']}").get_json()["group"]
    assert mine["my_role"] == "member"


def test_create_with_bad_input_creates_nothing(app, client, people, headers, monkeypatch):
    with app.app_context():
        db.session.get(User, people["dan"]).deleted_at = utcnow()
        db.session.commit()
    owner, ann, many = people["owner"], people["ann"], list(range(1, 502))
    cases = [
        ({"owner_id": 424242, "name": "X"}, 404, "not_found", "owner_id"),
        ({"owner_id": owner, "name": "X", "member_ids": [ann, 424242]}, 404, "not_found", "member_ids"),
        ({"owner_id": owner, "name": "X", "member_ids": [people["dan"]]}, 404, "not_found", "member_ids"),
        ({"owner_id": owner, "name": ""}, 400, "invalid_input", "name"),
        ({"owner_id": owner}, 400, "invalid_input", "name"),
        ({"name": "X"}, 400, "invalid_input", "owner_id"),
        ({"owner_id": "1", "name": "X"}, 400, "invalid_input", "owner_id"),
        ({"owner_id": owner, "name": "X", "member_ids": many}, 400, "invalid_input", "member_ids"),
        ({"owner_id": owner, "name": "X", "join_policy": "anyone"}, 400, "invalid_input", "join_policy"),
        ({"owner_id": owner, "name": "X", "muted_all": True}, 400, "invalid_input", "muted_all"),
    ]
    for payload, status, code, field in cases:
        response = client.post(BASE, json=payload, headers=headers)
        assert (response.status_code, code_of(response)) == (status, code), payload
        assert field in response.get_json()["error"]["fields"], payload
    monkeypatch.setitem(app.config, "GROUP_MEMBER_LIMIT", 3)
    full = client.post(
        BASE,
        json={
            "owner_id": people["owner"],
            "name": "X",
            "member_ids": [people["ann"], people["ben"], people["cat"]],
        },
        headers=headers,
    )
    assert (full.status_code, code_of(full)) == (409, "group_full")
    assert group_count(app) == 0


# --- reading -------------------------------------------------------------------------------


def test_group_and_member_pages_with_presence(app, client, people, headers, made, login):
    connect(app, login("ann"))
    detail = client.get(f"{BASE}/{made['id']}", headers=headers).get_json()["group"]
    assert (detail["id"], detail["member_count"], detail["owner_id"]) == (made["id"], 3, people["owner"])
    first = client.get(f"{BASE}/{made['id']}/members?limit=2", headers=headers).get_json()
    assert [m["user"]["id"] for m in first["members"]] == [people["owner"], people["ann"]]
    assert [m["role"] for m in first["members"]] == ["owner", "member"]
    # The service sees presence that a fellow member (not a friend) would not.
    assert [m["online"] for m in first["members"]] == [False, True]
    rest = client.get(f"{BASE}/{made['id']}/members?after={first['next']}&limit=2", headers=headers)
    assert [m["user"]["id"] for m in rest.get_json()["members"]] == [people["ben"]]
    assert rest.get_json()["next"] is None
    assert code_of(client.get(f"{BASE}/424242", headers=headers)) == "not_found"
    assert code_of(client.get(f"{BASE}/424242/members", headers=headers)) == "not_found"
    assert code_of(client.get(f"{BASE}/{made['id']}/members?limit=0", headers=headers)) == "invalid_input"


# --- members -------------------------------------------------------------------------------


def test_adding_members_directly_whatever_the_policy(app, client, people, headers, made, login):
    client.patch(f"{BASE}/{made['id']}", json={"join_policy": "invite"}, headers=headers)
    cat = connect(app, login("cat"))
    ann = connect(app, login("ann"))
    cat.received()
    ann.received()
    response = client.post(
        f"{BASE}/{made['id']}/members", json={"user_ids": [people["cat"], people["ann"]]}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"added": [people["cat"]]}
    assert [s["id"] for s in cat.received("conversation:new")] == [made["conversation_id"]]
    notice = ann.received("message:new")[-1]["body"]
    assert (notice["event"], notice["actor_id"], notice["user_ids"]) == (
        "members_added",
        None,
        [people["cat"]],
    )
    assert notice["text"] == "The administrator added cat"
    assert cat.send(made["conversation_id"], "hello")["ok"] is True
    again = client.post(f"{BASE}/{made['id']}/members", json={"user_ids": [people["cat"]]}, headers=headers)
    assert again.get_json() == {"added": []}
    assert client.get(f"{BASE}/{made['id']}", headers=headers).get_json()["group"]["member_count"] == 4


def test_adding_bad_users_adds_nobody(app, client, people, headers, made):
    before = snapshot(app, made["id"])
    url = f"{BASE}/{made['id']}/members"
    unknown = client.post(url, json={"user_ids": [people["cat"], 424242]}, headers=headers)
    assert (unknown.status_code, code_of(unknown)) == (404, "not_found")
    assert unknown.get_json()["error"]["fields"] == {"user_ids": "424242"}
    for payload in ({"user_ids": []}, {"user_ids": [0]}, {"user_ids": list(range(1, 502))}, {}, {"ids": [1]}):
        assert code_of(client.post(url, json=payload, headers=headers)) == "invalid_input", payload
    with app.app_context():
        db.session.get(Group, made["id"]).member_limit = 4
        db.session.commit()
    full = client.post(url, json={"user_ids": [people["cat"], people["dan"]]}, headers=headers)
    assert (full.status_code, code_of(full)) == (409, "group_full")
    assert code_of(
        client.post(f"{BASE}/424242/members", json={"user_ids": [people["cat"]]}, headers=headers)
    ) == ("not_found")
    assert snapshot(app, made["id"]) == before


def test_removing_members_and_adding_them_back(app, client, people, headers, made, login):
    ben = connect(app, login("ben"))
    ben.received()
    url = f"{BASE}/{made['id']}/members"
    assert client.delete(f"{url}/{people['ben']}", headers=headers).status_code == 204
    events = ben.socket.get_received()
    notice = [e["args"][0] for e in events if e["name"] == "message:new"][-1]["body"]
    assert (notice["event"], notice["actor_id"], notice["text"]) == (
        "member_removed",
        None,
        "The administrator removed ben",
    )
    assert [e["args"][0]["active"] for e in events if e["name"] == "conversation:update"][-1] is False
    assert ben.send(made["conversation_id"], "still here?")["error"]["code"] == "not_member"
    # As with an owner's removal, ben may not ask back in by himself; the service may add him.
    assert (
        code_of(ben.http.post(f"/api/v1/groups/{made['id']}/join-requests", json={})) == "removed_from_group"
    )
    assert client.post(url, json={"user_ids": [people["ben"]]}, headers=headers).get_json() == {
        "added": [people["ben"]]
    }
    assert ben.send(made["conversation_id"], "back")["ok"] is True


def test_the_owner_and_strangers_cannot_be_removed(app, client, people, headers, made):
    before = snapshot(app, made["id"])
    url = f"{BASE}/{made['id']}/members"
    owner = client.delete(f"{url}/{people['owner']}", headers=headers)
    assert (owner.status_code, code_of(owner)) == (403, "cannot_kick_owner")
    assert code_of(client.delete(f"{url}/{people['cat']}", headers=headers)) == "not_found"
    assert code_of(client.delete(f"{url}/424242", headers=headers)) == "not_found"
    assert code_of(client.delete(f"{BASE}/424242/members/{people['ann']}", headers=headers)) == "not_found"
    assert snapshot(app, made["id"]) == before


# --- roles ---------------------------------------------------------------------------------


def test_roles_and_ownership_transfer(app, client, people, headers, made):
    url = f"{BASE}/{made['id']}/members"
    promoted = client.put(f"{url}/{people['ann']}/role", json={"role": "admin"}, headers=headers)
    assert promoted.status_code == 200, promoted.get_json()
    assert (promoted.get_json()["member"]["user"]["id"], promoted.get_json()["member"]["role"]) == (
        people["ann"],
        "admin",
    )
    demoted = client.put(f"{url}/{people['ann']}/role", json={"role": "member"}, headers=headers)
    assert demoted.get_json()["member"]["role"] == "member"
    handed = client.put(f"{url}/{people['ben']}/role", json={"role": "owner"}, headers=headers)
    assert handed.get_json()["member"]["role"] == "owner"
    roles = {
        m["user"]["id"]: m["role"]
        for m in client.get(f"{url}?limit=10", headers=headers).get_json()["members"]
    }
    assert roles == {people["owner"]: "admin", people["ann"]: "member", people["ben"]: "owner"}
    assert (
        client.get(f"{BASE}/{made['id']}", headers=headers).get_json()["group"]["owner_id"] == people["ben"]
    )
    notes = system_messages(app, made["conversation_id"])[1:]
    assert [(n["event"], n["actor_id"]) for n in notes] == [
        ("role_admin", None),
        ("role_member", None),
        ("owner_changed", None),
    ]
    assert notes[0]["text"] == "The administrator made ann an admin"
    assert notes[2]["text"] == "The administrator made ben the owner"
    # Naming the owner again changes nothing.
    before = snapshot(app, made["id"])
    assert (
        client.put(f"{url}/{people['ben']}/role", json={"role": "owner"}, headers=headers).status_code == 200
    )
    assert snapshot(app, made["id"]) == before


def test_bad_role_changes_change_nothing(app, client, people, headers, made):
    before = snapshot(app, made["id"])
    url = f"{BASE}/{made['id']}/members"
    for payload in ({"role": "boss"}, {"role": ""}, {}, {"role": "admin", "extra": 1}):
        answer = client.put(f"{url}/{people['ann']}/role", json=payload, headers=headers)
        assert (answer.status_code, code_of(answer)) == (400, "invalid_input"), payload
    owner = client.put(f"{url}/{people['owner']}/role", json={"role": "member"}, headers=headers)
    assert (owner.status_code, code_of(owner)) == (403, "forbidden")
    for role in ("admin", "owner"):
        stranger = client.put(f"{url}/{people['cat']}/role", json={"role": role}, headers=headers)
        assert code_of(stranger) == "not_found"
    assert snapshot(app, made["id"]) == before


# --- settings ------------------------------------------------------------------------------


def test_settings_are_told_to_members(app, client, people, headers, made, login):
    ann = connect(app, login("ann"))
    ann.received()
    changes = {
        "name": "Renamed",
        "announcement": "Read me",
        "join_policy": "open",
        "members_mention_all": True,
    }
    response = client.patch(f"{BASE}/{made['id']}", json=changes, headers=headers)
    assert response.status_code == 200, response.get_json()
    group = response.get_json()["group"]
    assert {key: group[key] for key in changes} == changes
    events = ann.socket.get_received()
    assert [e["args"][0]["name"] for e in events if e["name"] == "group:update"] == ["Renamed"]
    notes = [e["args"][0]["body"] for e in events if e["name"] == "message:new"]
    assert [(n["event"], n["actor_id"], n["text"]) for n in notes] == [
        ("group_renamed", None, 'The administrator renamed the group to "Renamed"'),
        ("group_announcement", None, "The administrator posted an announcement"),
    ]
    before = snapshot(app, made["id"])
    bad = [
        {"join_policy": "anyone"},
        {"name": ""},
        {"owner_id": 1},
        {"muted_all": True},
    ]
    for payload in bad:
        answer = client.patch(f"{BASE}/{made['id']}", json=payload, headers=headers)
        assert (answer.status_code, code_of(answer)) == (400, "invalid_input"), payload
    answer = client.patch(f"{BASE}/{made['id']}", json={"avatar_url": "javascript:x"}, headers=headers)
    assert (answer.status_code, code_of(answer)) == (400, "invalid_avatar")
    assert code_of(client.patch(f"{BASE}/{made['id']}", data="{", headers=headers)) == "invalid_json"
    assert code_of(client.patch(f"{BASE}/424242", json={"name": "x"}, headers=headers)) == "not_found"
    assert snapshot(app, made["id"]) == before


# --- mutes ---------------------------------------------------------------------------------


def test_muting_the_whole_group(app, client, people, headers, made, login):
    ann = connect(app, login("ann"))
    owner = connect(app, login("owner"))
    url = f"{BASE}/{made['id']}/mute"
    muted = client.post(url, json={"muted": True}, headers=headers)
    assert muted.status_code == 200
    assert muted.get_json()["group"]["muted_all"] is True
    assert ann.send(made["conversation_id"], "hi")["error"]["code"] == "group_muted"
    assert owner.send(made["conversation_id"], "owners speak")["ok"] is True
    assert client.post(url, json={"muted": False}, headers=headers).get_json()["group"]["muted_all"] is False
    assert ann.send(made["conversation_id"], "hi")["ok"] is True
    events = [
        (b["event"], b["actor_id"])
        for b in system_messages(app, made["conversation_id"])
        if b["type"] == "system"
    ]
    assert events[-2:] == [("group_muted", None), ("group_unmuted", None)]
    before = snapshot(app, made["id"])
    for payload in ({"muted": "yes"}, {}, {"muted": 1}):
        assert code_of(client.post(url, json=payload, headers=headers)) == "invalid_input", payload
    assert snapshot(app, made["id"]) == before


def test_muting_one_member(app, client, people, headers, made, login):
    ann = connect(app, login("ann"))
    url = f"{BASE}/{made['id']}/members"
    client.put(f"{url}/{people['ann']}/role", json={"role": "admin"}, headers=headers)
    # The service mutes admins too (an admin could not; the owner could).
    answer = client.post(f"{url}/{people['ann']}/mute", json={"minutes": 10}, headers=headers)
    assert answer.status_code == 200
    assert answer.get_json()["member"]["muted_until"] is not None
    assert ann.send(made["conversation_id"], "hi")["error"]["code"] == "member_muted"
    note = system_messages(app, made["conversation_id"])[-1]
    assert (note["event"], note["actor_id"], note["text"]) == (
        "member_muted",
        None,
        "The administrator muted ann for 10 min",
    )
    lifted = client.post(f"{url}/{people['ann']}/mute", json={"minutes": 0}, headers=headers)
    assert lifted.get_json()["member"]["muted_until"] is None
    assert ann.send(made["conversation_id"], "hi")["ok"] is True
    before = snapshot(app, made["id"])
    for payload in ({"minutes": -1}, {"minutes": 60 * 24 * 31}, {"minutes": "5"}, {}):
        assert code_of(client.post(f"{url}/{people['ann']}/mute", json=payload, headers=headers)) == (
            "invalid_input"
        ), payload
    assert code_of(client.post(f"{url}/{people['cat']}/mute", json={"minutes": 5}, headers=headers)) == (
        "not_found"
    )
    assert snapshot(app, made["id"]) == before


# --- dissolving ----------------------------------------------------------------------------


def test_dissolving_leaves_a_read_only_group(app, client, people, headers, made, login):
    ann = connect(app, login("ann"))
    ann.received()
    before = snapshot(app, made["id"])
    long = client.delete(f"{BASE}/{made['id']}?reason={'x' * 201}", headers=headers)
    assert (long.status_code, code_of(long)) == (400, "invalid_input")
    assert snapshot(app, made["id"]) == before
    response = client.delete(f"{BASE}/{made['id']}?reason=project%20over", headers=headers)
    assert response.status_code == 200, response.get_json()
    group = response.get_json()["group"]
    assert (group["dissolved"], group["dissolved_reason"]) == (True, "project over")
    events = ann.socket.get_received()
    assert [e["args"][0]["dissolved"] for e in events if e["name"] == "group:update"] == [True]
    notice = [e["args"][0]["body"] for e in events if e["name"] == "message:new"][-1]
    assert (notice["event"], notice["actor_id"], notice["reason"]) == (
        "group_dissolved",
        None,
        "project over",
    )
    assert ann.send(made["conversation_id"], "hello?")["error"]["code"] == "group_dissolved"
    # Read-only for the service too: readable, not changeable.
    assert client.get(f"{BASE}/{made['id']}", headers=headers).get_json()["group"]["dissolved"] is True
    assert client.get(f"{BASE}/{made['id']}/members", headers=headers).status_code == 200
    after = snapshot(app, made["id"])
    refused = [
        client.post(f"{BASE}/{made['id']}/members", json={"user_ids": [people["cat"]]}, headers=headers),
        client.patch(f"{BASE}/{made['id']}", json={"name": "Again"}, headers=headers),
        client.post(f"{BASE}/{made['id']}/mute", json={"muted": True}, headers=headers),
        client.delete(f"{BASE}/{made['id']}/members/{people['ann']}", headers=headers),
        client.delete(f"{BASE}/{made['id']}", headers=headers),
    ]
    assert [(r.status_code, code_of(r)) for r in refused] == [(409, "group_dissolved")] * len(refused)
    assert snapshot(app, made["id"]) == after
    assert code_of(client.delete(f"{BASE}/424242", headers=headers)) == "not_found"


def test_a_device_that_was_away_catches_up_through_sync(app, client, people, headers, made, login):
    """The server's changes take stream positions like a member's: sync replays them."""
    ann = login("ann")
    cursor = ann.get("/api/v1/sync").get_json()["cursor"]
    url = f"{BASE}/{made['id']}"
    client.patch(url, json={"members_mention_all": True}, headers=headers)  # no system message
    page = ann.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert page["messages"] == []
    assert [(c["id"], c["group"]["members_mention_all"]) for c in page["conversations"]] == [
        (made["conversation_id"], True)
    ]
    cursor = page["cursor"]
    client.post(f"{url}/members", json={"user_ids": [people["cat"]]}, headers=headers)
    client.post(f"{url}/mute", json={"muted": True}, headers=headers)
    page = ann.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert [m["body"]["event"] for m in page["messages"]] == ["members_added", "group_muted"]
    assert page["conversations"][0]["group"]["muted_all"] is True


# --- keys ----------------------------------------------------------------------------------


def test_scopes(app, client, people, api_key, made):
    messages_only = api_key("messages")
    read_only = api_key("read")
    groups_only = api_key("groups")
    create = {"owner_id": people["owner"], "name": "Other"}
    for headers in (messages_only, read_only):
        answer = client.post(BASE, json=create, headers=headers)
        assert (answer.status_code, code_of(answer)) == (403, "forbidden")
        assert code_of(client.delete(f"{BASE}/{made['id']}", headers=headers)) == "forbidden"
    assert code_of(client.get(f"{BASE}/{made['id']}", headers=messages_only)) == "forbidden"
    assert client.get(f"{BASE}/{made['id']}", headers=read_only).status_code == 200
    assert client.get(f"{BASE}/{made['id']}/members", headers=groups_only).status_code == 200
    assert code_of(client.get(f"{BASE}/{made['id']}")) == "unauthenticated"
    assert group_count(app) == 1
    assert client.post(BASE, json=create, headers=groups_only).status_code == 201


def test_member_paths_keep_their_rules(app, people, login, made):
    """The service's powers are the service's: a member's client still needs friendship and rank,
    and a client cannot name a new owner through the role route."""
    ann = login("ann")
    base = f"/api/v1/groups/{made['id']}"
    assert code_of(ann.post(f"{base}/members", json={"user_ids": [people["cat"]]})) == "not_friends"
    assert code_of(ann.delete(f"{base}/members/{people['ben']}")) == "forbidden"
    assert code_of(ann.put(f"{base}/members/{people['ann']}/role", json={"role": "owner"})) == "invalid_input"
    assert code_of(ann.put(f"{base}/mute", json={"muted": True})) == "forbidden"
