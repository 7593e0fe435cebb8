"""Groups: creation, settings, join policies, roles, membership changes pushed live."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Group, GroupMember, Message, Sanction
from tests.chat_helpers import connect


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


@pytest.fixture
def world(app, make_user, login, befriend):
    """A group with an owner, an admin and a member; an outsider, a site admin, a banned
    member; and a friend of everyone to invite."""
    names = ["owner", "admin", "member", "outsider", "siteadmin", "banned", "friend"]
    ids = {name: make_user(name, is_admin=(name == "siteadmin")) for name in names}
    for name in ("admin", "member", "banned", "friend"):
        befriend(ids["owner"], ids[name])
    for name in ("admin", "member", "outsider", "siteadmin"):
        befriend(ids[name], ids["friend"])
    clients = {name: login(name) for name in names}
    created = clients["owner"].post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["admin"], ids["member"], ids["banned"]]}
    )
    assert created.status_code == 201, created.get_json()
    group = created.get_json()["group"]
    assert (
        clients["owner"]
        .put(f"/api/v1/groups/{group['id']}/members/{ids['admin']}/role", json={"role": "admin"})
        .status_code
        == 200
    )
    with app.app_context():
        db.session.add(Sanction(user_id=ids["banned"], kind="ban"))
        db.session.commit()
    return group, ids, clients


def snapshot(app, group_id: int):
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
        return (
            group.name,
            group.intro,
            group.owner_id,
            group.muted_all,
            group.dissolved_at,
            group.member_count,
            list(members),
            list(messages),
        )


def _do(action: str, group: dict, ids: dict, client):
    gid = group["id"]
    base = f"/api/v1/groups/{gid}"
    calls = {
        "view_members": lambda: client.get(f"{base}/members"),
        "edit": lambda: client.patch(base, json={"intro": "new intro"}),
        "invite": lambda: client.post(f"{base}/members", json={"user_ids": [ids["friend"]]}),
        "kick_member": lambda: client.delete(f"{base}/members/{ids['member']}"),
        "kick_admin": lambda: client.delete(f"{base}/members/{ids['admin']}"),
        "kick_owner": lambda: client.delete(f"{base}/members/{ids['owner']}"),
        "promote": lambda: client.put(f"{base}/members/{ids['member']}/role", json={"role": "admin"}),
        "mute_member": lambda: client.put(f"{base}/members/{ids['member']}/mute", json={"minutes": 10}),
        "mute_all": lambda: client.put(f"{base}/mute", json={"muted": True}),
        "transfer": lambda: client.post(f"{base}/transfer", json={"user_id": ids["member"]}),
        "dissolve": lambda: client.post(f"{base}/dissolve", json={"reason": "done"}),
        "join_requests": lambda: client.get(f"{base}/join-requests"),
    }
    return calls[action]()


# (action, role) -> the HTTP status when allowed; any other role gets `forbidden`, except
# as `expected` says. Removing oneself is leaving.
ALLOWED = {
    "view_members": {"member": 200, "admin": 200, "owner": 200},
    "edit": {"admin": 200, "owner": 200},
    "invite": {"member": 200, "admin": 200, "owner": 200},
    "kick_member": {"member": 204, "admin": 204, "owner": 204},
    "kick_admin": {"admin": 204, "owner": 204},
    "kick_owner": {},
    "promote": {"owner": 200},
    "mute_member": {"admin": 200, "owner": 200},
    "mute_all": {"admin": 200, "owner": 200},
    "transfer": {"owner": 200},
    "dissolve": {"owner": 200},
    "join_requests": {"admin": 200, "owner": 200},
}
ROLES = ["outsider", "member", "admin", "owner", "siteadmin", "banned"]


def expected(action: str, role: str):
    if role == "banned":
        return "unauthenticated"
    if role in ("outsider", "siteadmin"):
        return "not_member"
    if role in ALLOWED[action]:
        return ALLOWED[action][role]
    if action == "kick_owner" and role in ("owner", "admin"):
        return "owner_cannot_leave" if role == "owner" else "cannot_kick_owner"
    return "forbidden"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_permission_matrix(world, app, action, role):
    group, ids, clients = world
    before = snapshot(app, group["id"])
    response = _do(action, group, ids, clients[role])
    want = expected(action, role)
    if isinstance(want, int):
        assert response.status_code == want, response.get_json()
    else:
        assert code_of(response) == want, (response.status_code, response.get_json())
        assert snapshot(app, group["id"]) == before


def test_a_kicked_members_devices_stop_receiving_at_once(world, app, login):
    group, ids, clients = world
    owner = connect(app, clients["owner"])
    member_phone = connect(app, clients["member"])
    member_laptop = connect(app, login("member"))
    for device in (owner, member_phone, member_laptop):
        device.received()
    assert clients["admin"].delete(f"/api/v1/groups/{group['id']}/members/{ids['member']}").status_code == 204
    for device in (member_phone, member_laptop):
        events = device.socket.get_received()
        notices = [e["args"][0] for e in events if e["name"] == "message:new"]
        assert [n["body"]["event"] for n in notices] == ["member_removed"]
        updates = [e["args"][0] for e in events if e["name"] == "conversation:update"]
        assert updates[-1]["active"] is False
    owner.send(group["conversation_id"], "you can't see this")
    assert member_phone.received("message:new") == []
    assert member_laptop.received("message:new") == []
    refused = member_phone.send(group["conversation_id"], "let me back")
    assert refused["error"]["code"] == "not_member"
    history = clients["member"].get(f"/api/v1/conversations/{group['conversation_id']}/messages").get_json()
    assert history["messages"][-1]["body"]["event"] == "member_removed"


def test_join_with_approval_is_answered_live(world, app):
    group, ids, clients = world
    owner = connect(app, clients["owner"])
    outsider = connect(app, clients["outsider"])
    owner.received()
    outsider.received()
    asked = clients["outsider"].post(
        f"/api/v1/groups/{group['id']}/join-requests", json={"message": "let me in"}
    )
    assert asked.status_code == 201
    request = asked.get_json()
    assert owner.received("group:join_request")[0]["user"]["username"] == "outsider"
    again = clients["outsider"].post(f"/api/v1/groups/{group['id']}/join-requests", json={})
    assert (again.status_code, again.get_json()["id"]) == (200, request["id"])
    pending = clients["admin"].get(f"/api/v1/groups/{group['id']}/join-requests").get_json()["requests"]
    assert [r["id"] for r in pending] == [request["id"]]
    member_try = clients["member"].post(f"/api/v1/group-join-requests/{request['id']}/approve", json={})
    assert code_of(member_try) == "forbidden"
    approved = clients["admin"].post(f"/api/v1/group-join-requests/{request['id']}/approve", json={})
    assert approved.get_json()["request"]["status"] == "accepted"
    events = outsider.socket.get_received()
    names = [e["name"] for e in events]
    assert "conversation:new" in names
    joined = [e["args"][0] for e in events if e["name"] == "message:new"]
    assert [m["body"]["event"] for m in joined] == ["member_joined"]
    assert outsider.send(group["conversation_id"], "hello all")["ok"] is True
    twice = clients["owner"].post(f"/api/v1/group-join-requests/{request['id']}/approve", json={})
    assert code_of(twice) == "request_not_pending"


def test_open_groups_are_joined_at_once_and_invite_only_ones_refuse(world, app):
    group, ids, clients = world
    base = f"/api/v1/groups/{group['id']}"
    clients["owner"].patch(base, json={"join_policy": "open"})
    joined = clients["outsider"].post(f"{base}/join-requests", json={})
    assert joined.get_json()["status"] == "joined"
    assert code_of(clients["outsider"].post(f"{base}/join-requests", json={})) == "already_member"
    clients["owner"].patch(base, json={"join_policy": "invite"})
    refused = clients["siteadmin"].post(f"{base}/join-requests", json={})
    assert code_of(refused) == "invite_only"
    assert (
        code_of(clients["member"].post(f"{base}/members", json={"user_ids": [ids["friend"]]})) == "forbidden"
    )
    assert clients["admin"].post(f"{base}/members", json={"user_ids": [ids["friend"]]}).status_code == 200


def test_only_friends_can_be_invited(world):
    group, ids, clients = world
    response = clients["member"].post(
        f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["outsider"]]}
    )
    assert code_of(response) == "not_friends"


def test_leaving_and_ownership_transfer(world, app):
    group, ids, clients = world
    base = f"/api/v1/groups/{group['id']}"
    assert code_of(clients["owner"].delete(f"{base}/members/{ids['owner']}")) == "owner_cannot_leave"
    assert clients["owner"].post(f"{base}/transfer", json={"user_id": ids["admin"]}).status_code == 200
    assert clients["owner"].delete(f"{base}/members/{ids['owner']}").status_code == 204
    detail = clients["admin"].get(base).get_json()["group"]
    assert (detail["owner_id"], detail["my_role"], detail["member_count"]) == (ids["admin"], "owner", 3)
    texts = [
        m["body"]["event"]
        for m in clients["admin"]
        .get(f"/api/v1/conversations/{group['conversation_id']}/messages")
        .get_json()["messages"]
    ]
    assert texts[-2:] == ["owner_changed", "member_left"]


def test_dissolving_makes_the_conversation_read_only_for_everyone(world, app):
    group, ids, clients = world
    member = connect(app, clients["member"])
    member.received()
    assert (
        clients["owner"]
        .post(f"/api/v1/groups/{group['id']}/dissolve", json={"reason": "project over"})
        .status_code
        == 200
    )
    events = member.socket.get_received()
    notice = [e["args"][0] for e in events if e["name"] == "message:new"][-1]
    assert notice["body"]["event"] == "group_dissolved"
    assert "project over" in notice["body"]["text"]
    assert [e["args"][0]["dissolved"] for e in events if e["name"] == "group:update"] == [True]
    assert member.send(group["conversation_id"], "hello?")["error"]["code"] == "group_dissolved"
    summary = (
        clients["member"].get(f"/api/v1/conversations/{group['conversation_id']}").get_json()["conversation"]
    )
    assert summary["group"]["dissolved"] is True
    assert clients["outsider"].get("/api/v1/groups/search?q=team").get_json()["groups"] == []


def test_group_search_finds_discoverable_groups_by_name(world):
    group, ids, clients = world
    found = clients["outsider"].get("/api/v1/groups/search?q=TEA").get_json()["groups"]
    assert [g["id"] for g in found] == [group["id"]]
    clients["owner"].patch(f"/api/v1/groups/{group['id']}", json={"discoverable": False})
    assert clients["outsider"].get("/api/v1/groups/search?q=team").get_json()["groups"] == []
    assert code_of(clients["outsider"].get(f"/api/v1/groups/{group['id']}")) == "not_found"


def test_mute_all_and_member_mute_refuse_sends_with_codes(world, app):
    group, ids, clients = world
    member = connect(app, clients["member"])
    admin = connect(app, clients["admin"])
    clients["admin"].put(f"/api/v1/groups/{group['id']}/members/{ids['member']}/mute", json={"minutes": 5})
    assert member.send(group["conversation_id"], "hi")["error"]["code"] == "member_muted"
    clients["admin"].put(f"/api/v1/groups/{group['id']}/members/{ids['member']}/mute", json={"minutes": 0})
    assert member.send(group["conversation_id"], "hi")["ok"] is True
    clients["owner"].put(f"/api/v1/groups/{group['id']}/mute", json={"muted": True})
    assert member.send(group["conversation_id"], "hi")["error"]["code"] == "group_muted"
    assert admin.send(group["conversation_id"], "admins speak")["ok"] is True


def test_the_member_limit(world, app, make_user, befriend, monkeypatch):
    group, ids, clients = world
    with app.app_context():
        db.session.get(Group, group["id"]).member_limit = 5
        db.session.commit()
    response = clients["owner"].post(
        f"/api/v1/groups/{group['id']}/members", json={"user_ids": [ids["friend"]]}
    )
    assert response.status_code == 200
    extra = make_user("extra")
    befriend(ids["owner"], extra)
    full = clients["owner"].post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": [extra]})
    assert (full.status_code, code_of(full)) == (409, "group_full")
    monkeypatch.setitem(app.config, "GROUP_MEMBER_LIMIT", 2)
    too_many = clients["owner"].post(
        "/api/v1/groups", json={"name": "Big", "member_ids": [ids["admin"], extra]}
    )
    assert code_of(too_many) == "group_full"


@pytest.mark.parametrize(
    "payload",
    [{"name": ""}, {"name": "n" * 65}, {"member_ids": "1"}, {"name": "x", "owner_id": 1}, {"name": 5}],
)
def test_creating_a_group_with_bad_input(world, payload):
    _, _, clients = world
    response = clients["owner"].post("/api/v1/groups", json=payload)
    assert response.status_code == 400


def test_unknown_groups_and_requests_are_404(world):
    _, _, clients = world
    assert code_of(clients["owner"].get("/api/v1/groups/424242")) == "not_found"
    assert (
        code_of(clients["owner"].post("/api/v1/group-join-requests/424242/approve", json={})) == "not_found"
    )


def test_member_list_is_paged_with_bounded_queries(world, make_user, befriend, count_queries, app):
    group, ids, clients = world

    def queries() -> int:
        with count_queries() as statements:
            assert clients["owner"].get(f"/api/v1/groups/{group['id']}/members?limit=100").status_code == 200
        return len(statements)

    few = queries()
    new = []
    for index in range(30):
        user_id = make_user(f"mem{index}")
        befriend(ids["owner"], user_id)
        new.append(user_id)
    clients["owner"].post(f"/api/v1/groups/{group['id']}/members", json={"user_ids": new})
    assert queries() == few
    first = clients["owner"].get(f"/api/v1/groups/{group['id']}/members?limit=10").get_json()
    assert len(first["members"]) == 10
    assert first["next"] is not None
