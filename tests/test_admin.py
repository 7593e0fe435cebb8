"""The admin console: who may enter, and every action taking effect at once, audited."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.groups.services import create_group
from app.models import AuditLog, Message, User
from app.moderation import rights
from app.moderation import services as moderation
from tests.chat_helpers import connect
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.socket_client import Device

ADMIN_PAGES = [
    "/admin/",
    "/admin/user/",
    "/admin/user/details/?id={user}",
    "/admin/group/",
    "/admin/message/",
    "/admin/auditlog/",
]


def csrf_of(page) -> str:
    text = page.get_data(as_text=True) if hasattr(page, "get_data") else page.text
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', text)
    assert match, text[:300]
    return match.group(1)


@pytest.fixture
def site(app, make_user, login):
    root_id = make_user("root", is_admin=True)
    user_id = make_user("alice")
    return root_id, user_id, login("root")


def post_action(admin, path: str, page: str, **fields):
    token = csrf_of(admin.get(page))
    return admin.post(path, data={"csrf_token": token, **fields})


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def test_visitors_are_sent_to_sign_in_and_users_are_refused(site, client, login):
    _, user_id, _ = site
    alice = login("alice")
    for page in ADMIN_PAGES:
        url = page.format(user=user_id)
        anonymous = client.get(url)
        assert anonymous.status_code == 302, url
        assert anonymous.headers["Location"].startswith("/login?next=")
        assert alice.get(url).status_code == 403, url
    refused = alice.post(f"/admin/user/{user_id}/ban", data={"reason": "x"})
    assert refused.status_code in (400, 403)


def test_an_admin_sees_every_page(site, app):
    root_id, user_id, admin = site
    for page in ADMIN_PAGES:
        assert admin.get(page.format(user=user_id)).status_code == 200, page
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert 'data-stat="users">2<' in dashboard
    assert "Messages per day" in dashboard
    found = admin.get("/admin/user/?search=ali").get_data(as_text=True)
    assert "alice" in found


def test_posts_without_a_csrf_token_change_nothing(site, app):
    _, user_id, admin = site
    response = admin.post(f"/admin/user/{user_id}/ban", data={"reason": "no token"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditLog.id))) == 0
    assert admin.get("/admin/").status_code == 200


def test_a_ban_signs_out_every_device_at_once(site, app, login, client):
    _, user_id, admin = site
    phone = connect(app, login("alice"))
    laptop = connect(app, login("alice"))
    response = post_action(
        admin, f"/admin/user/{user_id}/ban", f"/admin/user/details/?id={user_id}", reason="spam", hours="24"
    )
    assert response.status_code == 302
    assert not phone.socket.is_connected()
    assert not laptop.socket.is_connected()
    assert phone.http.get("/api/v1/auth/me").status_code == 401
    login_again = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login_again.get_json()["error"]["code"] == "account_banned"
    assert login("root").get("/api/v1/users/search?q=alice").get_json()["users"] == []
    assert audit_actions(app) == ["ban"]
    with app.app_context():
        row = db.session.scalar(select(AuditLog))
        assert (row.reason, row.target_id) == ("spam", user_id)

    post_action(admin, f"/admin/user/{user_id}/unban", f"/admin/user/details/?id={user_id}", reason="appeal")
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
    )
    assert audit_actions(app) == ["ban", "unban"]


def test_a_mute_refuses_the_next_send_on_an_open_socket(site, app, login, make_user, befriend):
    _, user_id, admin = site
    bob_id = make_user("bob")
    befriend(user_id, bob_id)
    alice = connect(app, login("alice"))
    conversation_id = alice.http.post("/api/v1/conversations", json={"user_id": bob_id}).get_json()[
        "conversation"
    ]["id"]
    assert alice.send(conversation_id, "before")["ok"] is True
    alice.received()
    post_action(
        admin,
        f"/admin/user/{user_id}/mute",
        f"/admin/user/details/?id={user_id}",
        reason="flood",
        minutes="30",
    )
    assert alice.received("account:sanction")[0]["kind"] == "mute"
    assert alice.send(conversation_id, "after")["error"]["code"] == "muted"
    post_action(admin, f"/admin/user/{user_id}/unmute", f"/admin/user/details/?id={user_id}")
    assert alice.send(conversation_id, "free")["ok"] is True
    assert audit_actions(app) == ["mute", "unmute"]


def test_the_last_owner_stays_an_owner(site, app):
    root_id, user_id, admin = site
    with app.app_context():
        owner = str(rights.role_named(rights.OWNER).id)
    page = f"/admin/user/details/?id={root_id}"
    response = post_action(admin, f"/admin/user/{root_id}/role", page, role="")
    assert response.status_code == 302
    assert "last_owner" in admin.get(page).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, root_id).is_admin is True
    post_action(admin, f"/admin/user/{user_id}/role", f"/admin/user/details/?id={user_id}", role=owner)
    post_action(admin, f"/admin/user/{root_id}/role", page, role="")
    with app.app_context():
        assert db.session.get(User, root_id).is_admin is False
        assert db.session.get(User, user_id).is_admin is True
    assert audit_actions(app) == ["set_role", "set_role"]


def test_admins_cannot_be_banned_until_demoted(site, app, make_user):
    _, _, admin = site
    other = make_user("deputy", is_admin=True)
    post_action(admin, f"/admin/user/{other}/ban", f"/admin/user/details/?id={other}", reason="x")
    assert audit_actions(app) == []


def test_reset_password_signs_out_everywhere(site, app, login, client):
    _, user_id, admin = site
    device = login("alice")
    post_action(
        admin,
        f"/admin/user/{user_id}/password",
        f"/admin/user/details/?id={user_id}",
        password="temporary pass 1",
    )
    assert device.get("/api/v1/auth/me").status_code == 401
    assert (
        client.post(
            "/api/v1/auth/login", json={"username": "alice", "password": "temporary pass 1"}
        ).status_code
        == 200
    )
    assert audit_actions(app) == ["reset_password"]


@pytest.fixture
def team(site, app, make_user, befriend, login):
    _, user_id, admin = site
    owner_id = make_user("owner")
    befriend(owner_id, user_id)
    with app.app_context():
        group = create_group(owner_id, "Team", [user_id])
        ids = group.id, group.conversation_id
    return ids, owner_id, user_id, admin


def test_dissolving_a_group_from_the_console(team, app, login):
    (group_id, conversation_id), owner_id, user_id, admin = team
    alice = connect(app, login("alice"))
    alice.received()
    post_action(
        admin, f"/admin/group/{group_id}/dissolve", f"/admin/group/details/?id={group_id}", reason="abuse"
    )
    events = alice.socket.get_received()
    notice = [e["args"][0] for e in events if e["name"] == "message:new"][-1]
    assert notice["body"]["event"] == "group_dissolved"
    assert "abuse" in notice["body"]["text"]
    assert alice.send(conversation_id, "hello?")["error"]["code"] == "group_dissolved"
    assert audit_actions(app) == ["dissolve_group"]


def test_muting_a_group_and_removing_a_member_from_the_console(team, app, login):
    (group_id, conversation_id), owner_id, user_id, admin = team
    alice = connect(app, login("alice"))
    page = f"/admin/group/details/?id={group_id}"
    post_action(admin, f"/admin/group/{group_id}/mute/1", page)
    assert alice.send(conversation_id, "hi")["error"]["code"] == "group_muted"
    post_action(
        admin, f"/admin/group/{group_id}/remove-member", page, user_id=str(user_id), reason="off topic"
    )
    assert alice.send(conversation_id, "hi")["error"]["code"] == "not_member"
    assert audit_actions(app) == ["mute_group", "remove_member"]


def test_recalling_a_message_removes_it_everywhere(team, app, login):
    (group_id, conversation_id), owner_id, user_id, admin = team
    owner = connect(app, login("owner"))
    alice = connect(app, login("alice"))
    cursor = alice.http.get("/api/v1/conversations").get_json()["cursor"]
    sent = owner.send(conversation_id, "something nasty")["message"]
    alice.received()
    listed = admin.get("/admin/message/?flt0_0=nasty").get_data(as_text=True)
    assert "something nasty" in listed
    post_action(
        admin,
        f"/admin/message/{sent['id']}/recall",
        f"/admin/message/details/?id={sent['id']}",
        reason="abuse",
    )
    recalled = alice.received("message:recalled")
    assert [(m["id"], m["recalled"], m["body"]["by"]) for m in recalled] == [(sent["id"], True, "admin")]
    history = alice.http.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    assert history[-1]["body"]["text"] == "Removed by an administrator"
    assert "nasty" not in str(history)
    synced = alice.http.get(f"/api/v1/sync?cursor={cursor}").get_json()["messages"]
    assert [m["recalled"] for m in synced if m["id"] == sent["id"]] == [True]
    assert audit_actions(app) == ["recall_message"]


def test_the_audit_log_is_read_only(team, app):
    (group_id, _), _, user_id, admin = team
    post_action(admin, f"/admin/group/{group_id}/mute/1", f"/admin/group/details/?id={group_id}")
    with app.app_context():
        entry = db.session.scalar(select(AuditLog.id))
    page = admin.get("/admin/auditlog/")
    assert "mute_group" in page.get_data(as_text=True)
    assert admin.get(f"/admin/auditlog/edit/?id={entry}").status_code in (302, 403, 404)
    token = csrf_of(admin.get(f"/admin/group/details/?id={group_id}"))
    admin.post("/admin/auditlog/delete/", data={"id": str(entry), "csrf_token": token})
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditLog.id))) == 1


@pytest.mark.parametrize("page", ["/admin/user/", "/admin/group/", "/admin/message/", "/admin/auditlog/"])
def test_admin_lists_keep_a_fixed_query_count(site, app, make_user, befriend, count_queries, page):
    root_id, _, admin = site

    def queries() -> int:
        with count_queries() as statements:
            assert admin.get(page).status_code == 200
        return len(statements)

    def grow(prefix: str, count: int):
        for index in range(count):
            user_id = make_user(f"{prefix}{index:03d}")
            befriend(root_id, user_id)
            with app.app_context():
                group = create_group(root_id, f"{prefix} group {index}", [user_id])
                db.session.add(
                    Message(
                        conversation_id=group.conversation_id,
                        seq=99,
                        sender_id=user_id,
                        type="txt",
                        body={"type": "txt", "msg": "x"},
                        stream_pos=0,
                    )
                )
                db.session.commit()
            with app.app_context():
                moderation.mute_user(root_id, user_id, "test", 10)

    grow("few", 2)
    few = queries()
    grow("many", 12)
    assert queries() == few


@pytest.mark.postgresql
def test_a_ban_on_one_process_disconnects_the_devices_on_another(
    app, database_url, instance_path, redis_url, tmp_path, make_user
):
    make_user("root", is_admin=True)
    make_user("alice")
    env = server_env(database_url, instance_path, REDIS_URL=redis_url, LOGIN_RATE_LIMIT="1000 per minute")
    first = LiveServer(env, tmp_path / "a.log").start()
    second = LiveServer(env, tmp_path / "b.log").start()
    try:
        with Device(second.url, "alice", PASSWORD) as phone, Device(second.url, "alice", PASSWORD) as laptop:
            admin = requests.Session()
            assert admin.post(
                f"{first.url}/api/v1/auth/login", json={"username": "root", "password": PASSWORD}
            ).ok
            user_id = phone.get_json("/api/v1/auth/me")["user"]["id"]
            page = admin.get(f"{first.url}/admin/user/details/?id={user_id}")
            response = admin.post(
                f"{first.url}/admin/user/{user_id}/ban",
                data={"csrf_token": csrf_of(page), "reason": "spam"},
                allow_redirects=False,
            )
            assert response.status_code == 302
            phone.wait_disconnected(timeout=2)
            laptop.wait_disconnected(timeout=2)
            assert not phone.connected
            assert not laptop.connected
    finally:
        first.stop()
        second.stop()


def test_the_robot_can_be_switched_off_and_on_from_the_console(site, app, login):
    _, _, admin = site
    page = admin.get("/admin/bot/")
    assert 'data-status="enabled">on<' in page.get_data(as_text=True)
    assert 'data-status="provider">builtin<' in page.get_data(as_text=True)
    post_action(admin, "/admin/bot/0", "/admin/bot/")
    assert 'data-status="enabled">off<' in admin.get("/admin/bot/").get_data(as_text=True)
    bot = login("alice").get("/api/v1/bot").get_json()
    assert bot["conversation"]["online"] is False
    post_action(admin, "/admin/bot/1", "/admin/bot/")
    assert audit_actions(app) == ["bot_off", "bot_on"]
    assert login("root").get("/admin/bot/").status_code == 200
    assert login("alice").get("/admin/bot/").status_code == 403
