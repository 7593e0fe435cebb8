"""Deployment settings (app/settings.py): the retention policy and groups' own retention, changed
only with the console right `settings` (or by the server API for a group), validated, audited;
the console's Settings page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import settings
from app.errors import ApiError
from app.extensions import db
from app.models import AuditLog, Group, Setting
from tests.test_admin import csrf_of
from tests.test_media import csrf_token

SERVER_GROUPS = "/api/server/v1/groups"


def code_of(response) -> str | None:
    body = response.get_json(silent=True)
    return body["error"]["code"] if body and "error" in body else None


def stored(app) -> tuple[int, int, object]:
    """What a refused change must leave as it was: setting rows, audit rows, the value."""
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(Setting)),
            db.session.scalar(select(func.count()).select_from(AuditLog)),
            settings.get("retention_days"),
        )


def group_retention(app, group_id: int) -> int | None:
    with app.app_context():
        return db.session.get(Group, group_id).retention_days


@pytest.fixture
def staff(make_user):
    """An owner, an admin and a moderator of the console, and a user without a role."""
    return {
        "owner": make_user("root", is_admin=True),
        "admin": make_user("adele", admin_role="admin"),
        "moderator": make_user("moira", admin_role="moderator"),
        "user": make_user("alice"),
    }


@pytest.fixture
def group(app, staff, make_user, befriend, login):
    friend = make_user("bob")
    befriend(staff["user"], friend)
    response = login("alice").post("/api/v1/groups", json={"name": "Team", "member_ids": [friend]})
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["group"]


# --- the service ---------------------------------------------------------------------------------


def test_defaults_hold_until_changed_and_a_change_is_audited(app, staff):
    with app.app_context():
        assert settings.get("retention_days") == 0
        assert settings.all_values() == {"retention_days": 0}
        assert settings.set_value(staff["admin"], "retention_days", 90) == 90
    with app.app_context():
        assert settings.get("retention_days") == 90
        row = db.session.get(Setting, "retention_days")
        assert (row.value, row.updated_by_id) == (90, staff["admin"])
        entry = db.session.scalar(select(AuditLog))
        assert (entry.action, entry.admin_id, entry.target_type) == (
            "setting_changed",
            staff["admin"],
            "setting",
        )
        assert entry.details == {"key": "retention_days", "old": 0, "new": 90}


@pytest.mark.parametrize("value", [-1, 36501, "30", 1.5, True, None, [30]])
def test_a_bad_retention_is_refused_and_nothing_is_written(app, staff, value):
    before = stored(app)
    with app.app_context(), pytest.raises(ApiError) as refused:
        settings.set_value(staff["owner"], "retention_days", value)
    assert refused.value.code == "invalid_input" and refused.value.status == 400
    assert set(refused.value.fields) == {"retention_days"}
    assert stored(app) == before


def test_an_unknown_setting_is_refused(app, staff):
    before = stored(app)
    with app.app_context(), pytest.raises(ApiError) as refused:
        settings.set_value(staff["owner"], "colour", "blue")
    assert (refused.value.code, set(refused.value.fields)) == ("invalid_input", {"key"})
    assert stored(app) == before


@pytest.mark.parametrize("who", ["moderator", "user", None])
def test_without_the_settings_right_nothing_changes(app, staff, group, who):
    actor = staff[who] if who else None
    before = stored(app)
    with app.app_context():
        for change in (
            lambda: settings.set_value(actor, "retention_days", 30),
            lambda: settings.set_group_retention(actor, group["id"], 5),
        ):
            with pytest.raises(ApiError) as refused:
                change()
            assert (refused.value.code, refused.value.status) == ("forbidden", 403)
            db.session.rollback()
    assert stored(app) == before and group_retention(app, group["id"]) is None


def test_a_group_retention_is_set_cleared_and_checked(app, staff, group):
    with app.app_context():
        assert settings.set_group_retention(staff["owner"], group["id"], 0) == 0
        assert settings.effective_retention(db.session.get(Group, group["id"])) == 0
        settings.set_value(staff["owner"], "retention_days", 30)
        assert settings.effective_retention(None) == 30
        assert settings.set_group_retention(staff["owner"], group["id"], None) is None
        assert settings.effective_retention(db.session.get(Group, group["id"])) == 30
        for bad in (-3, 40000, "7"):
            with pytest.raises(ApiError) as refused:
                settings.set_group_retention(staff["owner"], group["id"], bad)
            assert refused.value.code == "invalid_input"
        with pytest.raises(ApiError) as missing:
            settings.set_group_retention(staff["owner"], 999999, 5)
        assert missing.value.code == "not_found"
        db.session.rollback()
        actions = db.session.execute(
            select(AuditLog.action, AuditLog.target_id, AuditLog.details).order_by(AuditLog.id)
        ).all()
    assert actions == [
        ("group_retention", group["id"], {"old": None, "new": 0}),
        ("setting_changed", None, {"key": "retention_days", "old": 0, "new": 30}),
        ("group_retention", group["id"], {"old": 0, "new": None}),
    ]


def test_members_cannot_set_their_group_retention(app, group, login):
    owner = login("alice")
    response = owner.patch(f"/api/v1/groups/{group['id']}", json={"retention_days": 1})
    assert response.status_code == 400 and code_of(response) == "invalid_input"
    assert group_retention(app, group["id"]) is None


# --- the server API ------------------------------------------------------------------------------


def test_the_server_api_sets_a_group_retention(app, client, api_key, group):
    headers = api_key("groups", "read")
    url = f"{SERVER_GROUPS}/{group['id']}"
    assert client.get(url, headers=headers).get_json()["group"]["retention_days"] is None
    answer = client.patch(url, json={"retention_days": 7}, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["group"]["retention_days"] == 7
    # With other changes at once; null goes back to the deployment's policy.
    answer = client.patch(url, json={"intro": "hello", "retention_days": None}, headers=headers)
    assert answer.get_json()["group"]["retention_days"] is None
    assert answer.get_json()["group"]["intro"] == "hello"
    # Changing something else leaves it alone.
    client.patch(url, json={"retention_days": 0}, headers=headers)
    answer = client.patch(url, json={"intro": "again"}, headers=headers)
    assert answer.get_json()["group"]["retention_days"] == 0
    with app.app_context():
        entries = db.session.execute(
            select(AuditLog.admin_id, AuditLog.details).where(AuditLog.action == "group_retention")
        ).all()
    assert len(entries) == 3 and all(admin is None and "api_key" in details for admin, details in entries)


@pytest.mark.parametrize("value", [-1, 36501, "7", 2.5, True])
def test_the_server_api_refuses_a_bad_group_retention(app, client, api_key, group, value):
    headers = api_key("groups", "read")
    url = f"{SERVER_GROUPS}/{group['id']}"
    response = client.patch(url, json={"retention_days": value, "intro": "changed"}, headers=headers)
    assert response.status_code == 400 and code_of(response) == "invalid_input"
    assert "retention_days" in response.get_json()["error"]["fields"]
    assert group_retention(app, group["id"]) is None
    assert client.get(url, headers=headers).get_json()["group"]["intro"] != "changed"


def test_the_server_api_needs_the_groups_scope(app, client, api_key, group):
    response = client.patch(
        f"{SERVER_GROUPS}/{group['id']}", json={"retention_days": 1}, headers=api_key("read")
    )
    assert response.status_code == 403
    assert group_retention(app, group["id"]) is None


# --- the console ---------------------------------------------------------------------------------

PAGE = "/admin/settings/"


def test_the_settings_page_shows_and_changes_the_policy(app, staff, group, login):
    admin = login("root")
    page = admin.get(PAGE)
    assert page.status_code == 200
    assert "Messages are kept forever." in page.get_data(as_text=True)
    saved = admin.post(
        f"{PAGE}retention", data={"csrf_token": csrf_of(page), "retention_days": "30"}, follow_redirects=True
    )
    text = saved.get_data(as_text=True)
    assert "Retention saved." in text and "deleted after 30 days" in text
    with app.app_context():
        assert settings.get("retention_days") == 30
    saved = admin.post(
        f"{PAGE}group-retention",
        data={"csrf_token": csrf_of(saved), "group_id": str(group["id"]), "retention_days": "0"},
        follow_redirects=True,
    )
    assert "Group retention saved." in saved.get_data(as_text=True)
    assert f'data-group="{group["id"]}"' in saved.get_data(as_text=True)
    assert group_retention(app, group["id"]) == 0
    # Empty: back to the deployment's policy.
    admin.post(
        f"{PAGE}group-retention",
        data={"csrf_token": csrf_of(saved), "group_id": str(group["id"]), "retention_days": ""},
    )
    assert group_retention(app, group["id"]) is None


def test_the_settings_page_shows_refusals_and_saves_nothing(app, staff, group, login):
    admin = login("root")
    token = csrf_of(admin.get(PAGE))
    before = stored(app)
    for data in (
        {"csrf_token": token, "retention_days": "40000"},  # the service's range
        {"csrf_token": token, "retention_days": "soon"},  # not a number
        {"retention_days": "30"},  # no CSRF token
    ):
        answer = admin.post(f"{PAGE}retention", data=data, follow_redirects=True)
        assert answer.status_code in (200, 400)
        assert stored(app) == before
    refused = admin.post(
        f"{PAGE}retention", data={"csrf_token": token, "retention_days": "40000"}, follow_redirects=True
    )
    assert "(invalid_input)" in refused.get_data(as_text=True)
    missing = admin.post(
        f"{PAGE}group-retention",
        data={"csrf_token": token, "group_id": "999999", "retention_days": "3"},
        follow_redirects=True,
    )
    assert "(not_found)" in missing.get_data(as_text=True)
    assert stored(app) == before


def test_the_settings_page_needs_the_settings_right(app, staff, group, login):
    moderator = login("moira")
    assert moderator.get(PAGE).status_code == 403
    token = csrf_token(moderator)  # a valid token of the session: only the right is missing
    answer = moderator.post(f"{PAGE}retention", data={"csrf_token": token, "retention_days": "1"})
    assert answer.status_code == 403
    answer = moderator.post(
        f"{PAGE}group-retention",
        data={"csrf_token": token, "group_id": str(group["id"]), "retention_days": "1"},
    )
    assert answer.status_code == 403
    assert stored(app) == (0, 0, 0) and group_retention(app, group["id"]) is None
    assert login("alice").get(PAGE).status_code == 403
    assert login("adele").get(PAGE).status_code == 200  # the built-in admin role has the right
