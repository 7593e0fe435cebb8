"""The rules of console roles (app/moderation/roles.py): the owner role, one's own role, custom
roles' names and rights, built-in roles, roles in use — each refusal with its code and nothing
changed; each change audited with what it was and what it became."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select, text

from app.auth import deletion
from app.auth import services as auth_services
from app.errors import ApiError
from app.extensions import db
from app.models import AdminRole, AuditLog, User
from app.moderation import rights, roles
from app.moderation import services as moderation
from tests.conftest import PASSWORD
from tests.pg_locks import until_waiting_on_a_lock


@pytest.fixture
def people(app, make_user):
    """An owner, a role manager who is not an owner (manage_roles, view_messages, view_audit),
    an admin and two people without a role."""
    root = make_user("root", is_admin=True)
    with app.app_context():
        roles.create_role(root, "managers", ["manage_roles", "view_messages", "view_audit"])
    return {
        "root": root,
        "mgr": make_user("mgr", admin_role="managers"),
        "adm": make_user("adm", admin_role="admin"),
        "alice": make_user("alice"),
        "bob": make_user("bob"),
    }


def role_id(name: str) -> int:
    return rights.role_named(name).id


def role_of(user_id: int) -> str | None:
    user = db.session.get(User, user_id, populate_existing=True)
    return user.admin_role.name if user.admin_role_id is not None else None


def audit_rows() -> list[tuple]:
    rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id))
    return [(row.admin_id, row.action, row.target_type, row.target_id, row.details) for row in rows]


def refused(call, code: str, status: int) -> None:
    """`call` raises `code` and leaves no row and no role changed."""
    before_audit = audit_rows()
    before_roles = db.session.execute(select(User.id, User.admin_role_id).order_by(User.id)).all()
    before_defs = db.session.execute(select(AdminRole.name, AdminRole.rights).order_by(AdminRole.id)).all()
    with pytest.raises(ApiError) as caught:
        call()
    assert (caught.value.code, caught.value.status) == (code, status)
    db.session.rollback()
    assert audit_rows() == before_audit
    assert db.session.execute(select(User.id, User.admin_role_id).order_by(User.id)).all() == before_roles
    assert (
        db.session.execute(select(AdminRole.name, AdminRole.rights).order_by(AdminRole.id)).all()
        == before_defs
    )


def test_the_last_owner_keeps_the_role(ctx, people):
    root = people["root"]
    refused(lambda: roles.set_user_role(root, root, role_id("admin")), "last_owner", 409)
    refused(lambda: roles.set_user_role(root, root, None), "last_owner", 409)
    assert role_of(root) == "owner"


def test_an_owner_steps_down_only_while_another_owner_remains(ctx, people):
    root, alice = people["root"], people["alice"]
    roles.set_user_role(root, alice, role_id("owner"))
    roles.set_user_role(root, root, role_id("admin"))
    assert (role_of(root), role_of(alice)) == ("admin", "owner")
    # Stepped down: no way back by oneself.
    refused(lambda: roles.set_user_role(root, root, role_id("owner")), "forbidden", 403)
    refused(lambda: roles.set_user_role(alice, alice, None), "last_owner", 409)
    assert [row[1:] for row in audit_rows() if row[1] == "set_role"] == [
        ("set_role", "user", alice, {"old": None, "new": "owner"}),
        ("set_role", "user", root, {"old": "owner", "new": "admin"}),
    ]


def test_deleted_owners_do_not_count_as_the_remaining_one(ctx, people):
    root, alice = people["root"], people["alice"]
    roles.set_user_role(root, alice, role_id("owner"))
    db.session.get(User, alice).deleted_at = db.func.now()  # a row deleted in the old way
    db.session.commit()
    refused(lambda: roles.set_user_role(root, root, None), "last_owner", 409)


def test_only_an_owner_gives_or_takes_the_owner_role(ctx, people):
    mgr, root, alice = people["mgr"], people["root"], people["alice"]
    refused(lambda: roles.set_user_role(mgr, alice, role_id("owner")), "owner_only", 403)
    refused(lambda: roles.set_user_role(mgr, root, None), "owner_only", 403)
    refused(lambda: roles.set_user_role(mgr, root, role_id("support")), "owner_only", 403)


def test_a_role_manager_gives_only_rights_they_hold(ctx, people):
    mgr, alice, adm = people["mgr"], people["alice"], people["adm"]
    roles.set_user_role(mgr, alice, role_id("support"))  # view_messages, view_audit: theirs too
    assert role_of(alice) == "support"
    refused(lambda: roles.set_user_role(mgr, alice, role_id("moderator")), "forbidden", 403)
    refused(lambda: roles.set_user_role(mgr, adm, None), "forbidden", 403)  # takes rights not theirs
    refused(lambda: roles.create_role(mgr, "banners", ["ban"]), "forbidden", 403)
    made = roles.create_role(mgr, "readers", ["view_audit"])
    assert made.rights == ["view_audit"]


def test_nobody_changes_their_own_role(ctx, people):
    mgr = people["mgr"]
    refused(lambda: roles.set_user_role(mgr, mgr, None), "own_role", 403)
    refused(lambda: roles.set_user_role(mgr, mgr, role_id("support")), "own_role", 403)
    refused(
        lambda: roles.update_role(mgr, role_id("managers"), "managers", ["manage_roles"]), "own_role", 403
    )


def test_the_robot_and_deleted_accounts_hold_no_role(app, ctx, people):
    robot = auth_services.create_user("parley-bot", None, is_bot=True)
    db.session.commit()
    root, bob = people["root"], people["bob"]
    refused(lambda: roles.set_user_role(root, robot.id, role_id("support")), "no_role_for_account", 409)
    deletion.delete_user(bob)
    db.session.commit()
    refused(lambda: roles.set_user_role(root, bob, role_id("support")), "no_role_for_account", 409)
    # And a deleted account's old role gives no right (roles are taken before deletion anyway).
    assert rights.rights_of(db.session.get(User, bob)) == frozenset()


def test_setting_the_role_an_account_holds_changes_nothing(ctx, people):
    before = audit_rows()
    roles.set_user_role(people["root"], people["adm"], role_id("admin"))
    roles.set_user_role(people["root"], people["alice"], None)
    assert audit_rows() == before


def test_unknown_roles_and_users_are_not_found(ctx, people):
    root = people["root"]
    refused(lambda: roles.set_user_role(root, people["alice"], 999_999), "not_found", 404)
    refused(lambda: roles.set_user_role(root, 999_999, role_id("support")), "not_found", 404)
    refused(lambda: roles.update_role(root, 999_999, "x", []), "not_found", 404)
    refused(lambda: roles.delete_role(root, 999_999), "not_found", 404)


@pytest.mark.parametrize(
    ("name", "chosen", "code", "field"),
    [
        ("", ["ban"], "invalid_input", "name"),
        ("   ", ["ban"], "invalid_input", "name"),
        ("x" * 65, ["ban"], "invalid_input", "name"),
        ("nul\x00", ["ban"], "invalid_input", "name"),
        ("fliers", ["fly"], "invalid_input", "rights"),
        ("fliers", "ban", "invalid_input", "rights"),
        ("Owner", ["ban"], "role_name_taken", "name"),
        ("MANAGERS", [], "role_name_taken", "name"),
    ],
)
def test_a_custom_role_needs_a_free_name_and_known_rights(ctx, people, name, chosen, code, field):
    status = 409 if code == "role_name_taken" else 400
    refused(lambda: roles.create_role(people["root"], name, chosen), code, status)
    with pytest.raises(ApiError) as caught:
        roles.create_role(people["root"], name, chosen)
    assert field in caught.value.fields
    db.session.rollback()


def test_custom_roles_are_made_changed_and_deleted_audited(ctx, people):
    root = people["root"]
    made = roles.create_role(root, "  night shift ", ["recall", "ban", "ban"])
    assert (made.name, made.rights, made.builtin) == ("night shift", ["ban", "recall"], False)
    assert roles.create_role(root, "x" * 64, []).rights == []  # 64 characters, no right: a viewer
    roles.update_role(root, made.id, "nights", ["mute"])
    roles.delete_role(root, made.id)
    assert db.session.get(AdminRole, made.id) is None
    assert [row[1:] for row in audit_rows() if row[3] == made.id and row[2] == "role"] == [
        ("role_create", "role", made.id, {"name": "night shift", "rights": ["ban", "recall"]}),
        (
            "role_update",
            "role",
            made.id,
            {
                "old": {"name": "night shift", "rights": ["ban", "recall"]},
                "new": {"name": "nights", "rights": ["mute"]},
            },
        ),
        ("role_delete", "role", made.id, {"name": "nights", "rights": ["mute"]}),
    ]


def test_built_in_roles_cannot_be_changed_or_deleted(ctx, people):
    root = people["root"]
    for name in ("owner", "admin", "moderator", "support"):
        refused(lambda name=name: roles.update_role(root, role_id(name), name, ["ban"]), "builtin_role", 409)
        refused(lambda name=name: roles.delete_role(root, role_id(name)), "builtin_role", 409)


def test_a_role_in_use_cannot_be_deleted(ctx, people):
    refused(lambda: roles.delete_role(people["root"], role_id("managers")), "role_in_use", 409)


def test_a_changed_role_changes_its_holders_rights_at_once(ctx, people):
    root, alice = people["root"], people["alice"]
    banners = roles.create_role(root, "banners", ["ban"])
    roles.set_user_role(root, alice, banners.id)
    assert rights.rights_of(db.session.get(User, alice)) == {"ban"}
    roles.update_role(root, banners.id, "banners", ["mute"])
    refused(lambda: moderation.ban_user(alice, people["bob"], "x"), "forbidden", 403)
    moderation.mute_user(alice, people["bob"], "x", 5)


def test_admins_cannot_be_sanctioned_until_their_role_is_taken(ctx, people):
    root, mgr = people["root"], people["mgr"]
    refused(lambda: moderation.ban_user(root, mgr, "x"), "cannot_sanction_admin", 409)
    roles.set_user_role(root, mgr, None)
    moderation.ban_user(root, mgr, "x")


def test_password_resets_take_manage_roles_and_an_owner_for_console_accounts(ctx, people):
    root, mgr, adm, alice = people["root"], people["mgr"], people["adm"], people["alice"]
    hashes = dict(db.session.execute(select(User.id, User.password_hash)).all())
    refused(lambda: moderation.reset_password(adm, alice, "another pass 1"), "forbidden", 403)
    refused(lambda: moderation.reset_password(mgr, adm, "another pass 1"), "forbidden", 403)
    robot = auth_services.create_user("parley-bot", None, is_bot=True)
    db.session.commit()
    refused(lambda: moderation.reset_password(root, robot.id, "another pass 1"), "protected_account", 409)
    assert dict(db.session.execute(select(User.id, User.password_hash)).all()) == {**hashes, robot.id: None}
    moderation.reset_password(mgr, alice, "another pass 1")
    moderation.reset_password(root, adm, "another pass 2")
    assert auth_services.check_password(db.session.get(User, adm, populate_existing=True), "another pass 2")


# --- the same rules through the console ---------------------------------------------------------


def csrf(client) -> str:
    page = client.get("/account").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def test_the_console_says_why_a_role_change_was_refused(app, people, login):
    root = login("root")
    page = f"/admin/user/details/?id={people['root']}"
    response = root.post(f"/admin/user/{people['root']}/role", data={"csrf_token": csrf(root), "role": ""})
    assert response.status_code == 302
    assert "last_owner" in root.get(page).get_data(as_text=True)
    bad = root.post(f"/admin/user/{people['alice']}/role", data={"csrf_token": csrf(root), "role": "999999"})
    assert bad.status_code == 302
    assert "Nothing was done" in root.get(page).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "set_role")) == 0
        assert role_of(people["root"]) == "owner"


def test_the_role_select_offers_every_role_and_marks_the_current_one(app, people, login):
    page = login("root").get(f"/admin/user/details/?id={people['mgr']}").get_data(as_text=True)
    select_box = re.search(r'<select[^>]*name="role".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option (selected )?value="(\d*)">([^<]*)</option>', select_box)
    assert [name for _, _, name in options] == [
        "No role",
        "owner",
        "admin",
        "moderator",
        "support",
        "managers",
    ]
    assert [name for selected, _, name in options if selected] == ["managers"]


def test_the_console_refuses_bad_role_forms_and_saves_nothing(app, people, login):
    root = login("root")
    with app.app_context():
        before = db.session.execute(select(AdminRole.name, AdminRole.rights).order_by(AdminRole.id)).all()
        support, managers = role_id("support"), role_id("managers")
    token = csrf(root)
    assert root.post("/admin/roles/new", data={"csrf_token": token, "name": ""}).status_code == 400
    taken = root.post("/admin/roles/new", data={"csrf_token": token, "name": "support", "rights": "ban"})
    assert taken.status_code == 409 and "role_name_taken" in taken.get_data(as_text=True)
    unknown = root.post("/admin/roles/new", data={"csrf_token": token, "name": "x", "rights": "fly"})
    assert unknown.status_code == 400
    builtin = root.post(
        f"/admin/roles/{support}/edit", data={"csrf_token": token, "name": "x", "rights": "ban"}
    )
    assert builtin.status_code == 409 and "builtin_role" in builtin.get_data(as_text=True)
    assert root.post(f"/admin/roles/{managers}/delete", data={"csrf_token": token}).status_code == 302
    assert "role_in_use" in root.get("/admin/roles/").get_data(as_text=True)
    with app.app_context():
        after = db.session.execute(select(AdminRole.name, AdminRole.rights).order_by(AdminRole.id)).all()
        assert after == before
        assert db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.target_type == "role")) == 1


def test_a_built_in_roles_page_shows_its_rights_without_a_form(app, people, login):
    with app.app_context():
        support = role_id("support")
    page = login("root").get(f"/admin/roles/{support}/edit").get_data(as_text=True)
    assert "view_audit: read the audit log" in page
    assert f'action="/admin/roles/{support}/edit"' not in page


def test_a_custom_role_made_in_the_console_works_at_once(app, people, login, client):
    root = login("root")
    token = csrf(root)
    made = root.post("/admin/roles/new", data={"csrf_token": token, "name": "muters", "rights": ["mute"]})
    assert made.status_code == 302
    with app.app_context():
        muters = role_id("muters")
    root.post(f"/admin/user/{people['alice']}/role", data={"csrf_token": token, "role": str(muters)})
    alice = login("alice")
    assert alice.get("/admin/").status_code == 200
    bob = people["bob"]
    muted = alice.post(f"/admin/user/{bob}/mute", data={"csrf_token": csrf(alice), "minutes": "5"})
    assert muted.status_code == 302
    banned = alice.post(f"/admin/user/{bob}/ban", data={"csrf_token": csrf(alice)})
    assert banned.status_code == 403
    assert (
        client.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD}).status_code == 200
    )


# --- changes of who holds which role happen one after the other (PostgreSQL) --------------------


def _while_another_change_holds_the_roles(app, change: str, params: dict, call) -> dict:
    """Run `call` in a thread while a connection of the test's is in the middle of a role change
    (it holds the roles' lock and has written `change`, uncommitted); commit it once `call`
    waits. Returns `call`'s outcome."""
    outcome = {}

    def run():
        try:
            with app.app_context():
                outcome["result"] = call()
        except ApiError as error:
            outcome["error"] = error

    with app.app_context(), db.engine.connect() as other:
        other.execute(text("SELECT id FROM admin_roles WHERE name = 'owner' FOR UPDATE"))
        other.execute(text(change), params)
        thread = threading.Thread(target=run)
        thread.start()
        until_waiting_on_a_lock(app, thread, outcome)
        other.commit()
    thread.join(30)
    assert not thread.is_alive()
    return outcome


@pytest.mark.postgresql
def test_two_owners_stepping_down_at_once_leave_one(app, people):
    root, alice = people["root"], people["alice"]
    with app.app_context():
        roles.set_user_role(root, alice, role_id("owner"))
    # Alice steps down (uncommitted) while root does too: root's change waits, then finds itself
    # the last owner.
    outcome = _while_another_change_holds_the_roles(
        app,
        "UPDATE users SET admin_role_id = NULL WHERE id = :id",
        {"id": alice},
        lambda: roles.set_user_role(root, root, None),
    )
    assert outcome["error"].code == "last_owner"
    with app.app_context():
        assert (role_of(root), role_of(alice)) == ("owner", None)


@pytest.mark.postgresql
def test_a_role_given_while_it_is_deleted_stays_and_the_delete_is_refused(app, people):
    root, alice = people["root"], people["alice"]
    with app.app_context():
        spare = roles.create_role(root, "spare", ["mute"]).id
    outcome = _while_another_change_holds_the_roles(
        app,
        "UPDATE users SET admin_role_id = :role WHERE id = :id",
        {"role": spare, "id": alice},
        lambda: roles.delete_role(root, spare),
    )
    assert outcome["error"].code == "role_in_use"
    with app.app_context():
        assert role_of(alice) == "spare"
