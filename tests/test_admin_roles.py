"""The console by right: every console action and page × every kind of console role (owner, admin,
moderator, support, a custom role with one right, no role). An allowed action takes effect and is
audited; a refused one answers 403 and changes nothing — no audit row, no state change."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.auth import services as auth_services
from app.bots import service as bots
from app.chat.send import send_message
from app.errors import ApiError
from app.extensions import db
from app.groups.services import create_group
from app.models import (
    AdminRole,
    ApiKey,
    AuditLog,
    Group,
    GroupMember,
    Message,
    Sanction,
    User,
    WordList,
)
from app.models.integrations import Webhook, WebhookDelivery
from app.moderation import rights, roles
from app.moderation import services as moderation
from app.server_api import keys
from app.webhooks import manage
from app.wordfilter import services as words

# The account signed in for each kind of role (the custom role `banner` has only `ban`).
ACCOUNTS = {
    "owner": "root",
    "admin": "adm",
    "moderator": "mod",
    "support": "sup",
    "custom": "one",
    "none": "nobody",
}
ALL = set(ACCOUNTS) - {"none"}


@pytest.fixture
def world(app, make_user, befriend):
    """One account per kind of role, a group with a message, a banned and muted user, and one of
    everything the console manages (word list, API key, webhook, an unused custom role)."""
    root = make_user("root", is_admin=True)
    ids = {"root": root}
    for name, role in (("adm", "admin"), ("mod", "moderator"), ("sup", "support")):
        ids[name] = make_user(name, admin_role=role)
    with app.app_context():
        banner = roles.create_role(root, "banner", ["ban"]).id
        spare = roles.create_role(root, "spare", ["mute"]).id
    ids["one"] = make_user("one", admin_role="banner")
    ids["nobody"] = make_user("nobody")
    alice, bob, gowner = make_user("alice"), make_user("bob"), make_user("gowner")
    befriend(gowner, alice)
    befriend(gowner, bob)
    with app.app_context():
        group = create_group(gowner, "Team", [alice, bob])
        group_id, conversation_id = group.id, group.conversation_id
        message = send_message(gowner, conversation_id, "hello-0001", {"type": "txt", "msg": "hello all"})[0]
        moderation.ban_user(root, bob, "prepared")
        moderation.mute_user(root, bob, "prepared", None)
        word_list = words.create_list(root, "spare list", "reject", True, "spam").id
        key = keys.create_key_audited(root, "crm", ["read"])[0].id
        hook = manage.create_hook(root, "crm", "https://crm.example.com/hook", ["user.registered"]).id
        support = rights.role_named("support").id
    yield SimpleNamespace(
        ids=ids,
        alice=alice,
        bob=bob,
        group=group_id,
        conversation=conversation_id,
        message=message["id"],
        word_list=word_list,
        key=key,
        hook=hook,
        banner=banner,
        spare=spare,
        support=support,
    )
    with app.app_context():
        bots.set_enabled(True)  # the robot's switch outlives the emptied tables


def snapshot(app) -> dict:
    """Everything a console action may change."""
    with app.app_context():
        return {
            "sanctions": db.session.execute(
                select(Sanction.user_id, Sanction.kind, Sanction.lifted_at).order_by(Sanction.id)
            ).all(),
            "users": db.session.execute(
                select(User.id, User.password_hash, User.admin_role_id).order_by(User.id)
            ).all(),
            "groups": db.session.execute(select(Group.id, Group.dissolved_at, Group.muted_all)).all(),
            "members": db.session.scalar(select(func.count()).select_from(GroupMember)),
            "recalled": db.session.scalars(select(Message.recalled_at).order_by(Message.id)).all(),
            "word_lists": db.session.execute(select(WordList.name, WordList.words)).all(),
            "keys": db.session.execute(select(ApiKey.name, ApiKey.revoked_at).order_by(ApiKey.id)).all(),
            "hooks": db.session.execute(select(Webhook.name, Webhook.enabled).order_by(Webhook.id)).all(),
            "roles": db.session.execute(
                select(AdminRole.name, AdminRole.rights).order_by(AdminRole.id)
            ).all(),
            "bot": bots.status()["enabled"],
        }


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def csrf(client) -> str:
    """The session's CSRF token, from the account page (every signed-in account opens it)."""
    page = client.get("/account").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


# Each POST of the console: (name, path, form, roles allowed, audit action, status when allowed).
ACTIONS = [
    ("ban", "/admin/user/{alice}/ban", {"reason": "spam"}, ALL - {"support"}, "ban", 302),
    ("unban", "/admin/user/{bob}/unban", {}, ALL - {"support"}, "unban", 302),
    ("mute", "/admin/user/{alice}/mute", {"minutes": "5"}, {"owner", "admin", "moderator"}, "mute", 302),
    ("unmute", "/admin/user/{bob}/unmute", {}, {"owner", "admin", "moderator"}, "unmute", 302),
    (
        "reset_password",
        "/admin/user/{alice}/password",
        {"password": "another pass 1"},
        {"owner"},
        "reset_password",
        302,
    ),
    ("set_role", "/admin/user/{alice}/role", {"role": "{support}"}, {"owner"}, "set_role", 302),
    ("dissolve", "/admin/group/{group}/dissolve", {}, {"owner", "admin", "moderator"}, "dissolve_group", 302),
    ("group_mute", "/admin/group/{group}/mute/1", {}, {"owner", "admin", "moderator"}, "mute_group", 302),
    (
        "remove_member",
        "/admin/group/{group}/remove-member",
        {"user_id": "{alice}"},
        {"owner", "admin", "moderator"},
        "remove_member",
        302,
    ),
    ("recall", "/admin/message/{message}/recall", {}, {"owner", "admin", "moderator"}, "recall_message", 302),
    (
        "word_list_create",
        "/admin/words/new",
        {"name": "new list", "action": "mask", "enabled": "y", "words": "rude"},
        {"owner", "admin"},
        "wordlist_create",
        302,
    ),
    (
        "word_list_edit",
        "/admin/words/{word_list}",
        {"name": "spare list", "action": "reject", "words": "spam\nscam"},
        {"owner", "admin"},
        "wordlist_update",
        302,
    ),
    ("word_list_delete", "/admin/words/{word_list}/delete", {}, {"owner", "admin"}, "wordlist_delete", 302),
    (
        "api_key_create",
        "/admin/apikeys/create-key/",
        {"name": "erp", "scopes": "read"},
        {"owner", "admin"},
        "api_key_created",
        201,
    ),
    ("api_key_revoke", "/admin/apikeys/{key}/revoke", {}, {"owner", "admin"}, "api_key_revoked", 302),
    (
        "webhook_create",
        "/admin/webhooks/new",
        {"name": "erp", "url": "https://erp.example.com/h", "events": "user.banned", "timeout_ms": "2000"},
        {"owner", "admin"},
        "webhook_create",
        200,
    ),
    (
        "webhook_disable",
        "/admin/webhooks/{hook}/edit",
        {
            "name": "crm",
            "url": "https://crm.example.com/hook",
            "events": "user.registered",
            "timeout_ms": "2000",
        },
        {"owner", "admin"},
        "webhook_update",
        302,
    ),
    ("robot_switch", "/admin/bot/0", {}, {"owner", "admin"}, "bot_off", 302),
    ("role_create", "/admin/roles/new", {"name": "helpers", "rights": "mute"}, {"owner"}, "role_create", 302),
    (
        "role_edit",
        "/admin/roles/{spare}/edit",
        {"name": "spare", "rights": ["mute", "recall"]},
        {"owner"},
        "role_update",
        302,
    ),
    ("role_delete", "/admin/roles/{spare}/delete", {}, {"owner"}, "role_delete", 302),
]


def _filled(value, world):
    values = {**vars(world), **world.ids}
    if isinstance(value, list):
        return [item.format(**values) for item in value]
    return value.format(**values)


@pytest.mark.parametrize("role", list(ACCOUNTS))
@pytest.mark.parametrize(
    ("action", "path", "form", "allowed", "audited", "status"), ACTIONS, ids=[a[0] for a in ACTIONS]
)
def test_each_console_action_by_role(app, world, login, role, action, path, form, allowed, audited, status):
    client = login(ACCOUNTS[role])
    token = csrf(client)
    before, actions = snapshot(app), audit_actions(app)
    data = {"csrf_token": token, **{name: _filled(value, world) for name, value in form.items()}}
    response = client.post(_filled(path, world), data=data)
    if role in allowed:
        assert response.status_code == status, response.get_data(as_text=True)[:500]
        assert audit_actions(app) == [*actions, audited]
        assert snapshot(app) != before
    else:
        assert response.status_code == 403
        assert audit_actions(app) == actions
        assert snapshot(app) == before


# Each page of the console and the rights it takes (none: every console role).
PAGES = {
    "/admin/": set(),
    "/admin/stats.json": set(),
    "/admin/user/": set(),
    "/admin/user/details/?id={alice}": set(),
    "/admin/group/": set(),
    "/admin/group/details/?id={group}": set(),
    "/admin/message/": {"view_messages"},
    "/admin/message/details/?id={message}": {"view_messages"},
    "/admin/auditlog/": {"view_audit"},
    "/admin/webhooks/": {"manage_webhooks"},
    "/admin/webhooks/{hook}/edit": {"manage_webhooks"},
    "/admin/webhookdelivery/": {"manage_webhooks"},
    "/admin/apikeys/": {"manage_api_keys"},
    "/admin/apikeys/create-key/": {"manage_api_keys"},
    "/admin/words/": {"manage_words"},
    "/admin/words/{word_list}": {"manage_words"},
    "/admin/roles/": {"manage_roles"},
    "/admin/roles/{spare}/edit": {"manage_roles"},
    "/admin/bot/": {"bot_switch"},
    "/admin/settings/": {"settings"},
}
# What each kind of role holds, as the issue gives them.
HELD = {
    "owner": set(rights.RIGHTS),
    "admin": set(rights.RIGHTS) - {"manage_roles"},
    "moderator": {"ban", "mute", "recall", "dissolve", "view_messages"},
    "support": {"view_messages", "view_audit"},
    "custom": {"ban"},
}


@pytest.mark.parametrize("role", list(ACCOUNTS))
def test_each_console_page_by_role(app, world, login, role):
    client = login(ACCOUNTS[role])
    for page, needed in PAGES.items():
        url = _filled(page, world)
        expected = 200 if role != "none" and needed <= HELD[role] else 403
        assert client.get(url).status_code == expected, (role, url)


def test_the_built_in_roles_hold_the_rights_the_issue_gives(app):
    with app.app_context():
        for name in ("owner", "admin", "moderator", "support"):
            role = rights.role_named(name)
            assert role.builtin and set(role.rights) == HELD[name], name


def nav_links(page) -> set[str]:
    return set(re.findall(r'class="nav-link \w*" href="(/admin/[^"]*)"', page.get_data(as_text=True)))


def test_the_menu_shows_only_the_views_a_role_may_open(world, login):
    owner_menu = nav_links(login("root").get("/admin/"))
    assert {"/admin/roles/", "/admin/apikeys/", "/admin/auditlog/", "/admin/message/"} <= owner_menu
    support_menu = nav_links(login("sup").get("/admin/"))
    assert {"/admin/user/", "/admin/group/", "/admin/message/", "/admin/auditlog/"} <= support_menu
    for hidden in ("/admin/roles/", "/admin/apikeys/", "/admin/words/", "/admin/bot/", "/admin/settings/"):
        assert hidden not in support_menu, hidden
    custom_menu = nav_links(login("one").get("/admin/"))
    assert "/admin/message/" not in custom_menu and "/admin/auditlog/" not in custom_menu


def test_pages_show_only_the_buttons_a_role_may_use(world, login):
    def forms(client, page):
        text = client.get(page.format(**vars(world))).get_data(as_text=True)
        return set(re.findall(r'<form method="post" action="/admin/[a-z]+/\d+/([a-z-]+)', text))

    user_page, bob_page = "/admin/user/details/?id={alice}", "/admin/user/details/?id={bob}"
    group_page, message_page = "/admin/group/details/?id={group}", "/admin/message/details/?id={message}"
    root, moderator, support, banner = login("root"), login("mod"), login("sup"), login("one")
    assert forms(root, user_page) == {"ban", "mute", "role", "password"}
    assert forms(root, bob_page) == {"unban", "unmute", "role", "password"}
    assert forms(moderator, user_page) == {"ban", "mute"}
    assert forms(banner, user_page) == {"ban"}
    assert forms(support, user_page) == set()
    assert forms(moderator, group_page) == {"dissolve", "mute", "remove-member"}
    assert forms(support, group_page) == set()
    assert forms(banner, group_page) == set()
    assert forms(moderator, message_page) == {"recall"}
    assert forms(support, message_page) == set()


def test_a_moderator_sees_the_messages_and_support_the_audit_log(world, login):
    moderator, support = login("mod"), login("sup")
    assert "hello all" in moderator.get("/admin/message/").get_data(as_text=True)
    assert "hello all" in support.get("/admin/message/").get_data(as_text=True)
    assert "prepared" in support.get("/admin/auditlog/").get_data(as_text=True)
    assert login("one").get("/admin/message/").status_code == 403


def column(page, name: str) -> list[str]:
    cells = re.findall(rf'<td class="col-{name}">(.*?)</td>', page.get_data(as_text=True), re.S)
    return [cell.strip() for cell in cells]


def test_the_users_list_shows_and_filters_by_role(app, world, login):
    root = login("root")
    with app.app_context():
        moderator = rights.role_named("moderator").id
    assert column(root.get(f"/admin/user/?flt0_0={moderator}"), "username") == ["mod"]
    assert column(root.get(f"/admin/user/?flt0_0={world.banner}"), "username") == ["one"]
    assert set(column(root.get("/admin/user/?flt0_0=none"), "username")) == {
        "nobody",
        "alice",
        "bob",
        "gowner",
    }
    listed = root.get("/admin/user/?sort=0")
    shown = dict(zip(column(listed, "username"), column(listed, "admin_role"), strict=True))
    assert shown == {
        "root": "owner",
        "adm": "admin",
        "mod": "moderator",
        "sup": "support",
        "one": "banner",
        "nobody": "",
        "alice": "",
        "bob": "",
        "gowner": "",
    }
    assert root.get("/admin/user/?flt0_0=nonsense").status_code == 200


def test_the_roles_page_lists_rights_and_holders(world, login):
    page = login("root").get("/admin/roles/").get_data(as_text=True)
    assert re.search(r'data-holders="moderator">1<', page)
    assert re.search(r'data-holders="spare">0<', page)
    banner_row = re.search(r'<tr data-role="banner">(.*?)</tr>', page, re.S).group(1)
    marked = set(re.findall(r'data-right="(\w+)"><span aria-hidden', banner_row))
    assert marked == {"ban"}


def test_a_service_refuses_an_account_without_the_right(app, world):
    ids = world.ids
    with app.app_context():
        refused = [
            lambda: roles.set_user_role(ids["mod"], world.alice, world.support),
            lambda: roles.create_role(ids["adm"], "x", []),
            lambda: moderation.ban_user(ids["sup"], world.alice, "x"),
            lambda: moderation.mute_user(ids["one"], world.alice, "x", 5),
            lambda: moderation.recall_message(ids["sup"], world.message, "x"),
            lambda: moderation.dissolve_group(ids["one"], world.group, "x"),
            lambda: moderation.reset_password(ids["adm"], world.alice, "another pass 1"),
            lambda: moderation.set_bot_enabled(ids["mod"], False),
            lambda: words.create_list(ids["mod"], "x", "reject", True, "x"),
            lambda: keys.create_key_audited(ids["mod"], "x", ["read"]),
            lambda: keys.revoke_key_audited(ids["sup"], world.key),
            lambda: manage.create_hook(ids["mod"], "x", "https://x.example.com/", ["user.banned"]),
            lambda: manage.update_hook(ids["sup"], world.hook, enabled=False),
            lambda: moderation.unban(ids["nobody"], world.bob),
        ]
    before, actions = snapshot(app), audit_actions(app)
    for call in refused:
        with app.app_context():
            with pytest.raises(ApiError) as caught:
                call()
            assert (caught.value.code, caught.value.status) == ("forbidden", 403)
            db.session.rollback()
    assert snapshot(app) == before
    assert audit_actions(app) == actions


def test_the_server_api_path_keeps_acting_through_its_key(app, world):
    with app.app_context():
        moderation.mute_user(None, world.alice, "by the backend", 5, api_key_id=world.key)
        row = db.session.scalar(
            select(AuditLog).where(AuditLog.action == "mute", AuditLog.target_id == world.alice)
        )
        assert (row.admin_id, row.details["api_key"]) == (None, world.key)


def test_the_signed_in_payload_names_the_role_and_its_rights(world, login):
    me = login("mod").get("/api/v1/auth/me").get_json()["user"]
    assert (me["is_admin"], me["admin_role"]) == (True, "moderator")
    assert me["admin_rights"] == ["ban", "mute", "recall", "dissolve", "view_messages"]
    alice = login("alice").get("/api/v1/auth/me").get_json()["user"]
    assert (alice["is_admin"], alice["admin_role"], alice["admin_rights"]) == (False, None, [])


def test_a_role_change_applies_to_the_open_session_at_once(app, world, login):
    moderator = login("mod")
    assert moderator.get("/admin/message/").status_code == 200
    with app.app_context():
        roles.set_user_role(world.ids["root"], world.ids["mod"], world.support)
    assert moderator.get("/admin/message/").status_code == 200
    token = csrf(moderator)
    refused = moderator.post(f"/admin/user/{world.alice}/ban", data={"csrf_token": token, "reason": "x"})
    assert refused.status_code == 403
    with app.app_context():
        roles.set_user_role(world.ids["root"], world.ids["mod"], None)
    assert moderator.get("/admin/").status_code == 403


def test_a_new_password_set_by_an_owner_signs_in(app, world, login):
    root = login("root")
    root.post(
        f"/admin/user/{world.alice}/password", data={"csrf_token": csrf(root), "password": "another pass 1"}
    )
    login("alice", password="another pass 1")
    with app.app_context():
        assert auth_services.find_user_by_username("alice").admin_role_id is None


def test_webhook_payloads_show_message_text_only_to_roles_that_read_messages(app, world, login, make_user):
    root = world.ids["root"]
    with app.app_context():
        manage.create_hook(root, "feed", "https://feed.example.com/hook", ["message.sent"])
        gowner = auth_services.find_user_by_username("gowner").id
        send_message(gowner, world.conversation, "hello-0002", {"type": "txt", "msg": "secret words"})
        delivery = db.session.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.event == "message.sent")
        )
        roles.create_role(root, "hook keepers", ["manage_webhooks"])
    make_user("keeper", admin_role="hook keepers")
    page = f"/admin/webhookdelivery/details/?id={delivery}"
    kept = login("keeper").get(page)
    assert kept.status_code == 200
    assert "secret words" not in kept.get_data(as_text=True)
    assert "(shown with the view_messages right)" in kept.get_data(as_text=True)
    assert "secret words" in login("adm").get(page).get_data(as_text=True)
