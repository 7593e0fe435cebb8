"""Accounts over the JSON API: register, log in and out, profile, password, devices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import DeviceSession, Sanction, User, utcnow
from tests.conftest import PASSWORD


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def error_of(response) -> dict:
    return response.get_json()["error"]


def test_register_creates_account_and_signs_in(client, app):
    response = client.post(
        "/api/v1/auth/register",
        json={"username": "Alice", "password": PASSWORD, "nickname": "爱丽丝 😀"},
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["user"]["username"] == "Alice"
    assert body["user"]["nickname"] == "爱丽丝 😀"
    assert body["user"]["has_password"] is True
    assert body["device"]["name"] == "Chrome on Linux"
    assert client.get("/api/v1/auth/me").get_json()["user"]["username"] == "Alice"
    with app.app_context():
        stored = db.session.scalar(select(User).where(User.username_key == "alice"))
        assert stored.password_hash.startswith("$argon2")
        assert PASSWORD not in stored.password_hash


def test_session_cookie_is_httponly_and_samesite_lax(client):
    response = client.post("/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice"])
def test_username_is_unique_whatever_its_case(client, make_user, app, taken):
    make_user("alice")
    response = client.post("/api/v1/auth/register", json={"username": taken, "password": PASSWORD})
    assert response.status_code == 409
    assert error_of(response)["code"] == "username_taken"
    assert error_of(response)["fields"] == {"username": "already taken"}
    assert user_count(app) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": "alice", "password": 12345678}, "password"),
        ({"username": ["alice"], "password": PASSWORD}, "username"),
        ({"username": "alice", "password": "short"}, "password"),
        ({"username": "a" * 33, "password": PASSWORD}, "username"),
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "al ice", "password": PASSWORD}, "username"),
        ({"username": "<script>", "password": PASSWORD}, "username"),
        ({"username": "alice", "password": "x" * 129}, "password"),
        ({"username": "alice", "password": PASSWORD, "nickname": "n" * 65}, "nickname"),
        ({"username": "alice", "password": PASSWORD, "is_admin": True}, "is_admin"),
    ],
)
def test_register_rejects_bad_fields_and_writes_nothing(client, app, payload, field):
    response = client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert field in error["fields"]
    assert user_count(app) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        ("{not json", "application/json", "invalid_json"),
        ("[1, 2]", "application/json", "invalid_input"),
        ('{"username": "alice", "password": "correct horse"}', "text/plain", "csrf_failed"),
        ("username=alice&password=correct+horse", "application/x-www-form-urlencoded", "csrf_failed"),
    ],
)
def test_register_rejects_malformed_and_cross_site_bodies(client, app, data, content_type, code):
    response = client.post("/api/v1/auth/register", data=data, content_type=content_type)
    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert user_count(app) == 0


def test_login_succeeds_with_any_letter_case_of_the_username(client, make_user):
    make_user("alice")
    response = client.post("/api/v1/auth/login", json={"username": "ALICE", "password": PASSWORD})
    assert response.status_code == 200
    assert response.get_json()["user"]["username"] == "alice"


def test_login_gives_one_answer_for_unknown_user_and_wrong_password(client, make_user):
    make_user("alice")
    wrong = client.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong password"})
    unknown = client.post("/api/v1/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert error_of(wrong) == error_of(unknown)
    assert error_of(wrong)["code"] == "invalid_credentials"
    assert client.get("/api/v1/auth/me").status_code == 401


def test_login_of_a_banned_account_is_refused(client, make_user, app):
    user_id = make_user("alice")
    with app.app_context():
        db.session.add(Sanction(user_id=user_id, kind="ban", reason="spam"))
        db.session.commit()
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert error_of(response)["code"] == "account_banned"


def test_an_expired_ban_no_longer_blocks_login(client, make_user, app):
    user_id = make_user("alice")
    with app.app_context():
        db.session.add(Sanction(user_id=user_id, kind="ban", expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    response = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200


def test_a_ban_refuses_the_very_next_request_of_a_signed_in_device(login, make_user, app):
    user_id = make_user("alice")
    device = login("alice")
    assert device.get("/api/v1/auth/me").status_code == 200
    with app.app_context():
        db.session.add(Sanction(user_id=user_id, kind="ban"))
        db.session.commit()
    assert device.get("/api/v1/auth/me").status_code == 401


def test_login_is_rate_limited_per_ip_across_usernames(client):
    codes = [
        client.post("/api/v1/auth/login", json={"username": f"u{i}", "password": PASSWORD}).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]


def test_logout_ends_the_device_session(login, make_user, app):
    make_user("alice")
    device = login("alice")
    assert device.post("/api/v1/auth/logout", json={}).status_code == 204
    assert device.get("/api/v1/auth/me").status_code == 401
    with app.app_context():
        assert db.session.scalar(select(DeviceSession.revoked_at)) is not None


def test_requests_without_a_session_are_401(client):
    for method, path in [("get", "/api/v1/auth/me"), ("get", "/api/v1/auth/devices")]:
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthenticated"
    assert client.patch("/api/v1/auth/me", json={"nickname": "x"}).status_code == 401


def test_edit_profile(login, make_user):
    make_user("alice")
    device = login("alice")
    response = device.patch(
        "/api/v1/auth/me",
        json={"nickname": "Al", "signature": "你好", "avatar_url": "https://example.org/a.png"},
    )
    assert response.status_code == 200
    user = response.get_json()["user"]
    assert (user["nickname"], user["signature"], user["avatar_url"]) == (
        "Al",
        "你好",
        "https://example.org/a.png",
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"nickname": ""},
        {"nickname": "x" * 65},
        {"signature": "s" * 201},
        {"avatar_url": "javascript:alert(1)"},
        {"avatar_url": 5},
        {"username": "mallory"},
        {"is_admin": True},
        {"locale": "fr"},
    ],
)
def test_edit_profile_rejects_bad_input_and_changes_nothing(login, make_user, payload):
    make_user("alice")
    device = login("alice")
    before = device.get("/api/v1/auth/me").get_json()["user"]
    response = device.patch("/api/v1/auth/me", json=payload)
    assert response.status_code == 400
    # A string that is no acceptable avatar is `invalid_avatar` (app/media/avatars.py).
    code = "invalid_avatar" if isinstance(payload.get("avatar_url"), str) else "invalid_input"
    assert error_of(response)["code"] == code
    assert device.get("/api/v1/auth/me").get_json()["user"] == before


def test_change_password_signs_out_the_other_devices(login, make_user, client):
    make_user("alice")
    phone, laptop = login("alice"), login("alice")
    response = phone.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a much newer secret"},
    )
    assert response.status_code == 200
    assert response.get_json() == {"signed_out_devices": 1}
    assert phone.get("/api/v1/auth/me").status_code == 200
    assert laptop.get("/api/v1/auth/me").status_code == 401
    old = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    login("alice", "a much newer secret")


def test_change_password_needs_the_current_one(login, make_user):
    make_user("alice")
    phone, laptop = login("alice"), login("alice")
    response = phone.post(
        "/api/v1/auth/password", json={"current_password": "wrong", "new_password": "another secret"}
    )
    assert response.status_code == 401
    assert error_of(response)["fields"] == {"current_password": "wrong password"}
    short = phone.post("/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 400
    assert laptop.get("/api/v1/auth/me").status_code == 200
    login("alice")


def test_devices_are_listed_and_one_can_be_signed_out(login, make_user):
    make_user("alice")
    phone = login("alice", user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1")
    laptop = login("alice", user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/120.0")
    devices = phone.get("/api/v1/auth/devices").get_json()["devices"]
    assert {d["name"] for d in devices} == {"Safari on iPhone", "Firefox on Windows"}
    current = [d for d in devices if d["current"]]
    assert [d["name"] for d in current] == ["Safari on iPhone"]
    other = next(d for d in devices if not d["current"])
    assert phone.delete(f"/api/v1/auth/devices/{other['id']}").status_code == 204
    assert laptop.get("/api/v1/auth/me").status_code == 401
    assert [d["name"] for d in phone.get("/api/v1/auth/devices").get_json()["devices"]] == [
        "Safari on iPhone"
    ]
    again = phone.delete(f"/api/v1/auth/devices/{other['id']}")
    assert again.status_code == 404


def test_another_users_device_cannot_be_signed_out(login, make_user, app):
    make_user("alice")
    make_user("bob")
    alice, bob = login("alice"), login("bob")
    bob_device = bob.get("/api/v1/auth/devices").get_json()["devices"][0]["id"]
    response = alice.delete(f"/api/v1/auth/devices/{bob_device}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert bob.get("/api/v1/auth/me").status_code == 200


def test_sign_out_all_other_devices(login, make_user):
    make_user("alice")
    devices = [login("alice") for _ in range(3)]
    response = devices[0].post("/api/v1/auth/devices/sign-out-others", json={})
    assert response.get_json() == {"signed_out_devices": 2}
    assert [d.get("/api/v1/auth/me").status_code for d in devices] == [200, 401, 401]


def test_an_expired_device_session_is_refused(login, make_user, app):
    make_user("alice")
    device = login("alice")
    with app.app_context():
        db.session.execute(update(DeviceSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert device.get("/api/v1/auth/me").status_code == 401


def test_activity_slides_the_session_expiry(login, make_user, app):
    make_user("alice")
    device = login("alice")
    stale = utcnow() - timedelta(minutes=5)
    with app.app_context():
        db.session.execute(
            update(DeviceSession).values(last_seen_at=stale, expires_at=utcnow() + timedelta(hours=1))
        )
        db.session.commit()
    assert device.get("/api/v1/auth/me").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(DeviceSession))
        assert row.last_seen_at > stale
        assert row.expires_at > utcnow() + timedelta(days=29)


def test_a_forged_cookie_without_a_device_token_is_refused(app, make_user):
    user_id = make_user("alice")
    forged = app.test_client()
    with forged.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["device_token"] = "made-up"
    assert forged.get("/api/v1/auth/me").status_code == 401


def test_behind_a_trusted_proxy_the_client_address_comes_from_its_header(make_app, make_user):
    make_user("alice")
    proxied = make_app(TRUSTED_PROXIES="1").test_client()
    response = proxied.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
    )
    assert response.get_json()["device"]["ip"] == "203.0.113.9"


def test_without_trusted_proxies_forwarded_headers_are_ignored(client, make_user):
    make_user("alice")
    response = client.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert response.get_json()["device"]["ip"] == "127.0.0.1"
