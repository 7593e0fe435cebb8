"""Server API keys: who gets in (known, live, allowed address, right scope, within the rate), the
audit trail of every use, and keys made and revoked in the console and by `flask create-api-key`."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, AuditLog, utcnow
from tests.test_admin import csrf_of


@pytest.fixture
def alice(make_user):
    return make_user("alice")


def ask_token(client, headers: dict, user_id: int, **environ):
    """A server API write needing the `users` scope (sign-in tokens)."""
    return client.post(
        f"/api/server/v1/users/{user_id}/sign-in-tokens", json={}, headers=headers, environ_base=environ
    )


def code_of(response) -> str:
    return response.get_json()["error"]["code"]


def api_requests(app) -> list[tuple[int, int]]:
    """(key id, status) of every audited server API request, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "api_request").order_by(AuditLog.id)
        )
        return [(row.target_id, row.details["status"]) for row in rows]


def key_row(app, headers: dict) -> ApiKey:
    digest = hashlib.sha256(headers["Authorization"].split()[1].encode()).hexdigest()
    with app.app_context():
        row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        db.session.expunge(row)
        return row


# --- who gets in ------------------------------------------------------------------------------


def test_a_key_with_the_scope_is_let_through(client, api_key, alice):
    response = ask_token(client, api_key("users"), alice)
    assert response.status_code == 201, response.get_json()


def test_missing_malformed_and_unknown_keys_are_unauthenticated(client, app, alice):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        response = ask_token(client, headers, alice)
        assert response.status_code == 401
        assert code_of(response) == "unauthenticated"
    unknown = ask_token(client, {"Authorization": "Bearer pk_00000000_" + "x" * 43}, alice)
    assert (unknown.status_code, code_of(unknown)) == (401, "unauthenticated")
    assert api_requests(app) == []  # no key, nothing to audit it under


def test_revoked_and_expired_keys_are_unauthenticated(client, app, api_key, alice):
    from app.server_api.keys import revoke_key

    revoked = api_key("users")
    with app.app_context():
        revoke_key(key_row(app, revoked).id)
        db.session.commit()
    expired = api_key("users", expires_at=utcnow() - timedelta(seconds=1))
    for headers in (revoked, expired):
        response = ask_token(client, headers, alice)
        assert (response.status_code, code_of(response)) == (401, "unauthenticated")
    live = api_key("users", expires_at=utcnow() + timedelta(days=1))
    assert ask_token(client, live, alice).status_code == 201


def test_a_key_without_the_scope_is_forbidden(client, api_key, alice):
    for scopes in (("read",), ("messages", "groups", "moderation", "read")):
        response = ask_token(client, api_key(*scopes), alice)
        assert (response.status_code, code_of(response)) == (403, "forbidden")
        assert "users" in response.get_json()["error"]["message"]


def test_the_allow_list_refuses_other_addresses(client, api_key, alice):
    headers = api_key("users", allowed_ips=["192.0.2.0/24", "2001:db8::1"])
    outside = ask_token(client, headers, alice, REMOTE_ADDR="198.51.100.7")
    assert (outside.status_code, code_of(outside)) == (403, "forbidden")
    assert ask_token(client, headers, alice, REMOTE_ADDR="192.0.2.200").status_code == 201
    assert ask_token(client, headers, alice, REMOTE_ADDR="2001:db8::1").status_code == 201
    assert ask_token(client, headers, alice, REMOTE_ADDR="2001:db8::2").status_code == 403


def test_a_key_past_its_rate_is_refused_with_retry_after(make_app, make_user):
    limited = make_app(API_KEY_RATE_LIMIT="2 per minute")
    with limited.app_context():
        from app.server_api.keys import create_key

        _, key = create_key("busy", ["users"])
        db.session.commit()
    alice = make_user("alice")
    client = limited.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert [ask_token(client, headers, alice).status_code for _ in range(2)] == [201, 201]
    refused = ask_token(client, headers, alice)
    assert (refused.status_code, code_of(refused)) == (429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert [status for _, status in api_requests(limited)] == [201, 201, 429]
    # Another key has its own budget.
    with limited.app_context():
        _, other = create_key("other", ["users"])
        db.session.commit()
    assert ask_token(client, {"Authorization": f"Bearer {other}"}, alice).status_code == 201


def test_every_use_of_a_known_key_is_audited_refusals_included(client, app, api_key, alice):
    headers = api_key("users", allowed_ips=["192.0.2.0/24"])
    key_id = key_row(app, headers).id
    ask_token(client, headers, alice, REMOTE_ADDR="192.0.2.1")
    ask_token(client, headers, alice, REMOTE_ADDR="203.0.113.9")  # outside the allow-list
    ask_token(client, headers, 999_999, REMOTE_ADDR="192.0.2.1")  # no such user
    assert api_requests(app) == [(key_id, 201), (key_id, 403), (key_id, 404)]
    row = key_row(app, headers)
    assert row.last_used_ip == "192.0.2.1"
    assert row.last_used_at is not None
    with app.app_context():
        latest = db.session.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))
        assert latest.details["path"] == "/api/server/v1/users/999999/sign-in-tokens"
        assert latest.details["method"] == "POST"


# --- the console ------------------------------------------------------------------------------


@pytest.fixture
def admin(make_user, login):
    make_user("root", is_admin=True)
    return login("root")


NEW_KEY = "/admin/apikeys/create-key/"


def create_in_console(admin, **fields):
    token = csrf_of(admin.get(NEW_KEY))
    data = {"csrf_token": token, "name": "CRM backend", "scopes": ["users", "read"], **fields}
    return admin.post(NEW_KEY, data=data)


def shown_key(page) -> str:
    match = re.search(
        r"<code data-api-key>(pk_[0-9a-f]{8}_[A-Za-z0-9_-]{43})</code>", page.get_data(as_text=True)
    )
    assert match, page.get_data(as_text=True)[:500]
    return match.group(1)


def test_the_console_shows_a_new_key_once_and_keeps_only_its_hash(app, admin, client, alice):
    response = create_in_console(admin, allowed_ips="192.0.2.0/24\n\n 10.0.0.1 \n", expires_on="2999-01-01")
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    key = shown_key(response)
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key.startswith(row.prefix + "_")
        assert (row.name, row.scopes) == ("CRM backend", ["users", "read"])
        assert row.allowed_ips == ["192.0.2.0/24", "10.0.0.1/32"]
        assert row.expires_at.year == 2999
        assert row.created_by_id is not None
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "api_key_created"))
        assert (audit.admin_id, audit.target_id) == (row.created_by_id, row.id)
        assert key not in str(audit.details)
    # Never again: not in the list, not in the session cookie.
    listing = admin.get("/admin/apikeys/").get_data(as_text=True)
    assert "CRM backend" in listing and row.prefix in listing
    assert key not in listing
    cookie = admin.get_cookie("parley_session")
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert key not in str(session)
    # And it works.
    assert (
        ask_token(client, {"Authorization": f"Bearer {key}"}, alice, REMOTE_ADDR="192.0.2.9").status_code
        == 201
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"scopes": []}, "Choose at least one scope"),
        ({"scopes": ["users", "root"]}, "not a valid choice"),
        ({"name": ""}, "This field is required"),
        ({"allowed_ips": "192.0.2.0/24\nnot-an-address"}, "not an address or network"),
        ({"expires_on": "2001-01-01"}, "Choose a day after today"),
    ],
)
def test_a_bad_console_form_makes_no_key(app, admin, fields, problem):
    response = create_in_console(admin, **fields)
    assert response.status_code == 400
    assert problem in response.get_data(as_text=True)
    assert "data-api-key" not in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_a_console_form_without_its_csrf_token_makes_no_key(app, admin):
    response = admin.post(NEW_KEY, data={"name": "x", "scopes": ["users"]})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_revoking_in_the_console_stops_the_key_at_once(app, admin, client, alice):
    key = shown_key(create_in_console(admin))
    headers = {"Authorization": f"Bearer {key}"}
    assert ask_token(client, headers, alice).status_code == 201
    row = key_row(app, headers)
    listing = admin.get("/admin/apikeys/")
    assert f"/admin/apikeys/{row.id}/revoke" in listing.get_data(as_text=True)
    response = admin.post(f"/admin/apikeys/{row.id}/revoke", data={"csrf_token": csrf_of(listing)})
    assert response.status_code == 302
    assert code_of(ask_token(client, headers, alice)) == "unauthenticated"
    assert key_row(app, headers).revoked_at is not None
    again = admin.post(f"/admin/apikeys/{row.id}/revoke", data={"csrf_token": csrf_of(listing)})
    assert "already_revoked" in admin.get(again.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        actions = list(
            db.session.execute(
                select(AuditLog.action, AuditLog.admin_id)
                .where(AuditLog.action.like("api_key_%"))
                .order_by(AuditLog.id)
            )
        )
    assert [action for action, _ in actions] == ["api_key_created", "api_key_revoked"]
    assert actions[1][1] == row.created_by_id


def test_revoking_without_the_csrf_token_changes_nothing(app, api_key, admin):
    headers = api_key("users")
    row = key_row(app, headers)
    assert admin.post(f"/admin/apikeys/{row.id}/revoke", data={}).status_code in (302, 400)
    assert key_row(app, headers).revoked_at is None


def test_non_admins_cannot_reach_the_api_keys_console(app, api_key, client, make_user, login):
    make_user("mallory")
    mallory = login("mallory")
    row = key_row(app, api_key("users"))
    for page in ("/admin/apikeys/", NEW_KEY):
        anonymous = client.get(page)
        assert anonymous.status_code == 302
        assert anonymous.headers["Location"].startswith("/login?next=")
        assert mallory.get(page).status_code == 403
    token = csrf_of(mallory.get("/account"))
    assert mallory.post(f"/admin/apikeys/{row.id}/revoke", data={"csrf_token": token}).status_code == 403
    made = mallory.post(NEW_KEY, data={"csrf_token": token, "name": "mine", "scopes": ["users"]})
    assert made.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 1
        assert db.session.get(ApiKey, row.id).revoked_at is None


# --- the command line -------------------------------------------------------------------------


def test_flask_create_api_key_prints_the_key_once(runner, app, client, alice):
    result = runner.invoke(
        args=["create-api-key", "--name", "ops", "--scopes", "users, read", "--expires-days", "7"]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert re.fullmatch(r"pk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert "shown only this once" in result.stderr
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert row.scopes == ["users", "read"]
        assert timedelta(days=6) < row.expires_at - utcnow() <= timedelta(days=7)
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "api_key_created"))
        assert audit.admin_id is None and audit.details["via"] == "cli"
    assert ask_token(client, {"Authorization": f"Bearer {key}"}, alice).status_code == 201


def test_flask_create_api_key_refuses_unknown_scopes_and_bad_addresses(runner, app):
    unknown = runner.invoke(args=["create-api-key", "--name", "x", "--scopes", "users,root"])
    assert unknown.exit_code == 1
    assert "choose from users, messages, groups, moderation, read" in unknown.output
    bad_ip = runner.invoke(
        args=["create-api-key", "--name", "x", "--scopes", "users", "--allowed-ips", "nope"]
    )
    assert bad_ip.exit_code == 1
    assert "not an address or network" in bad_ip.output
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_the_key_list_sorts_by_each_sortable_column(app, admin, api_key):
    api_key("users", allowed_ips=["192.0.2.0/24"])
    api_key("read", name="reader")
    for index in range(8):
        for desc in ("0", "1"):
            response = admin.get(f"/admin/apikeys/?sort={index}&desc={desc}")
            assert response.status_code == 200, (index, desc)


def test_a_flood_of_refusals_writes_one_row_a_minute_and_no_last_use(
    client, app, api_key, alice, monkeypatch
):
    from app.server_api import keys

    minute = [1000]
    monkeypatch.setattr(keys, "_minute", lambda: minute[0])
    revoked = api_key("users")
    key_id = key_row(app, revoked).id
    with app.app_context():
        keys.revoke_key(key_id)
        db.session.commit()
    for _ in range(5):
        assert ask_token(client, revoked, alice).status_code == 401
    assert api_requests(app) == [(key_id, 401)]
    assert key_row(app, revoked).last_used_at is None
    # The next minute: its first refusal writes a row, and the last minute's count is written.
    minute[0] += 1
    for _ in range(2):
        ask_token(client, revoked, alice)
    assert api_requests(app) == [(key_id, 401), (key_id, 401)]
    with app.app_context():
        counts = [
            row.details["count"]
            for row in db.session.scalars(
                select(AuditLog).where(AuditLog.action == "api_request").order_by(AuditLog.id)
            )
        ]
    assert counts == [5, 1]
    assert key_row(app, revoked).last_used_at is None
    # A request let through still writes its own row and the last use, every time.
    live = api_key("users")
    for _ in range(2):
        assert ask_token(client, live, alice).status_code == 201
    assert [status for _, status in api_requests(app)] == [401, 401, 201, 201]
    assert key_row(app, live).last_used_at is not None


def test_a_throttled_flood_writes_one_row_a_minute(make_app, make_user, monkeypatch):
    from app.server_api import keys

    monkeypatch.setattr(keys, "_minute", lambda: 7)
    limited = make_app(API_KEY_RATE_LIMIT="1 per minute")
    with limited.app_context():
        _, key = keys.create_key("busy", ["users"])
        db.session.commit()
    alice = make_user("alice")
    client = limited.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    statuses = [ask_token(client, headers, alice).status_code for _ in range(6)]
    assert statuses == [201] + [429] * 5
    assert [status for _, status in api_requests(limited)] == [201, 429]
