"""A user deleting their own account (app/auth/self_delete.py): with their password, or — an
account that signs in with GitHub alone — after a fresh GitHub sign-in (Parley's real Flask-Dance
code against the fake GitHub); refused without it, with a wrong password (counted like failed
sign-ins), for console accounts and for accounts a company manages. After it every device is
signed out, the messages stay as "Deleted user", and the data exports are gone.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import gevent
import pytest
from sqlalchemy import func, select

from app.auth import self_delete
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.export import archive
from app.export import services as exports
from app.extensions import db
from app.models import DeviceSession, OAuthIdentity, User
from app.models.operations import UserExport
from tests.chat_helpers import new_client_msg_id
from tests.conftest import PASSWORD
from tests.fake_github import (
    CLIENT_ID,
    CLIENT_SECRET,
    OCTOCAT,
    authorize,
    csrf_token,
    dance,
    github_fixture,  # noqa: F401  (the fixture `github`)
    github_user,
)


def code(response) -> str:
    return response.get_json()["error"]["code"]


def delete(client, **body):
    return client.post("/api/v1/auth/me/delete", json=body)


def account(app, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        db.session.expunge(user)
        return user


def live_devices(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(DeviceSession)
            .where(DeviceSession.user_id == user_id, DeviceSession.revoked_at.is_(None))
        )


@pytest.fixture
def alice_and_bob(app, make_user, login, befriend):
    """Alice on two devices, a friend of Bob's, with a message to him and a ready data export."""
    alice, bob = make_user("alice"), make_user("bob")
    befriend(alice, bob)
    phone, laptop, bob_client = login("alice"), login("alice"), login("bob")
    with app.app_context():
        conversation = open_direct(alice, bob)[0]["id"]
        send_message(alice, conversation, new_client_msg_id(), {"type": "txt", "msg": "hello from alice"})
        row = exports.request_export(alice)
        export_id = row.id
    gevent.sleep(0)  # the build job runs (it was queued due now)
    with app.app_context():
        for _ in range(500):
            if db.session.get(UserExport, export_id).state != "pending":
                break
            db.session.rollback()
            gevent.sleep(0.01)
        assert db.session.get(UserExport, export_id).state == "ready"
        path = archive.zip_path(export_id)
    assert path.is_file()
    return {
        "alice": alice,
        "bob": bob,
        "phone": phone,
        "laptop": laptop,
        "bob_client": bob_client,
        "conversation": conversation,
        "export": path,
    }


def test_deleting_with_the_password_signs_out_everywhere_and_keeps_the_messages(app, alice_and_bob):
    world = alice_and_bob
    history = f"/api/v1/conversations/{world['conversation']}/messages"
    messages = world["bob_client"].get(history).get_json()["messages"]
    [before] = [item for item in messages if item["type"] == "txt"]
    assert before["sender"]["deleted"] is False
    assert delete(world["phone"], password=PASSWORD).status_code == 204
    for device in (world["phone"], world["laptop"]):
        response = device.get("/api/v1/auth/me")
        assert response.status_code == 401 and code(response) == "unauthenticated"
    assert live_devices(app, world["alice"]) == 0
    user = account(app, world["alice"])
    assert user.deleted_at is not None and user.nickname == "Deleted user" and user.password_hash is None
    page = world["bob_client"].get(f"/api/v1/conversations/{world['conversation']}/messages").get_json()
    [message] = [item for item in page["messages"] if item["type"] == "txt"]
    assert message["body"]["msg"] == "hello from alice"
    assert message["sender"]["nickname"] == "Deleted user" and message["sender"]["deleted"] is True
    # The exports went with it, files and rows.
    assert not world["export"].exists()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UserExport)) == 0
    refused = app.test_client().post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 401


def test_a_wrong_or_missing_password_is_refused_and_changes_nothing(app, alice_and_bob):
    world = alice_and_bob
    for body in ({"password": "not the password"}, {}):
        response = delete(world["phone"], **body)
        assert response.status_code == 403
        assert code(response) == "wrong_password"
        assert "password" in response.get_json()["error"]["fields"]
    user = account(app, world["alice"])
    assert user.deleted_at is None and user.username == "alice"
    assert live_devices(app, world["alice"]) == 2
    assert world["export"].is_file()
    assert world["laptop"].get("/api/v1/auth/me").status_code == 200


def test_wrong_passwords_are_limited_like_sign_ins(app, alice_and_bob, monkeypatch):
    world = alice_and_bob
    monkeypatch.setitem(app.config, "LOGIN_FAILURE_LIMIT", "2 per 15 minutes")
    for _ in range(2):
        assert code(delete(world["phone"], password="guess")) == "wrong_password"
    response = delete(world["phone"], password=PASSWORD)  # even the right one: no password is checked
    assert response.status_code == 429 and code(response) == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert account(app, world["alice"]).deleted_at is None


def test_bad_input_and_signed_out_requests_are_refused(app, alice_and_bob):
    world = alice_and_bob
    response = delete(world["phone"], password=PASSWORD, user_id=world["bob"])
    assert response.status_code == 400 and code(response) == "invalid_input"
    assert app.test_client().post("/api/v1/auth/me/delete", json={"password": PASSWORD}).status_code == 401
    assert account(app, world["alice"]).deleted_at is None
    assert account(app, world["bob"]).deleted_at is None


@pytest.mark.parametrize("role", [{"is_admin": True}, {"admin_role": "moderator"}])
def test_console_accounts_cannot_delete_themselves(app, make_user, login, role):
    user_id = make_user("root", **role)
    client = login("root")
    response = delete(client, password=PASSWORD)
    assert response.status_code == 409 and code(response) == "protected_account"
    assert account(app, user_id).deleted_at is None
    assert client.get("/api/v1/auth/me").status_code == 200


def test_an_account_a_company_manages_is_deleted_by_the_company(app, client, api_key, make_user):
    user_id = make_user("corp")
    with app.app_context():
        user = db.session.get(User, user_id)
        user.password_hash, user.external_id = None, "emp-1"
        db.session.commit()
    issued = client.post(f"/api/server/v1/users/{user_id}/sign-in-tokens", json={}, headers=api_key("users"))
    device = app.test_client()
    assert device.post("/api/v1/auth/token", json={"token": issued.get_json()["token"]}).status_code == 200
    # What the client reads to show a note instead of a way to confirm.
    mine = device.get("/api/v1/auth/me").get_json()["user"]
    assert (mine["has_password"], mine["has_github"]) == (False, False)
    response = delete(device)
    assert response.status_code == 409 and code(response) == "cannot_reconfirm"
    assert account(app, user_id).deleted_at is None


def test_the_account_page_deletes_with_the_password(app, alice_and_bob):
    phone = alice_and_bob["phone"]
    page = phone.get("/account").get_data(as_text=True)
    assert 'id="delete"' in page and 'name="delete-password"' in page
    assert phone.post("/account/delete", data={"delete-password": PASSWORD}).status_code == 400  # csrf_failed
    assert account(app, alice_and_bob["alice"]).deleted_at is None
    token = re.search(r'id="delete-csrf_token" name="delete-csrf_token" type="hidden" value="([^"]+)"', page)
    wrong = phone.post("/account/delete", data={"delete-csrf_token": token.group(1), "delete-password": "x"})
    assert "The password is wrong." in phone.get(wrong.headers["Location"]).get_data(as_text=True)
    response = phone.post(
        "/account/delete", data={"delete-csrf_token": token.group(1), "delete-password": PASSWORD}
    )
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
    assert account(app, alice_and_bob["alice"]).deleted_at is not None
    assert alice_and_bob["laptop"].get("/api/v1/auth/me").status_code == 401


# --- GitHub-only accounts ----------------------------------------------------------------------


@pytest.fixture
def octocat(make_app, github):
    """An account made by signing in with GitHub (no password), signed in on the GitHub-enabled app."""
    gh_app = make_app(
        GITHUB_CLIENT_ID=CLIENT_ID,
        GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        GITHUB_BASE_URL=github.url,
        GITHUB_TIMEOUT="3",
    )
    client = gh_app.test_client()
    assert dance(client, github).status_code == 302
    user_id = client.get("/api/v1/auth/me").get_json()["user"]["id"]
    return gh_app, client, user_id


def confirm(client, github) -> str:
    """The account page's "Confirm with GitHub", through the whole dance; the page it ends on."""
    page = client.get("/account").get_data(as_text=True)
    assert "Confirm with GitHub" in page
    started = client.post("/account/confirm/github", data={"csrf_token": csrf_token(page)})
    assert started.status_code == 302 and urlsplit(started.headers["Location"]).path == "/auth/github/login"
    to_github = client.get(started.headers["Location"])
    back = client.get(authorize(to_github.headers["Location"]))
    assert back.status_code == 302
    return client.get(back.headers["Location"]).get_data(as_text=True)


def test_a_github_only_account_is_deleted_after_a_fresh_github_sign_in(octocat, github):
    gh_app, client, user_id = octocat
    response = delete(client)
    assert response.status_code == 403 and code(response) == "reconfirm_required"
    page = confirm(client, github)
    assert "Confirmed with GitHub" in page
    assert delete(client).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401
    user = account(gh_app, user_id)
    assert user.deleted_at is not None and user.nickname == "Deleted user"
    with gh_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OAuthIdentity)) == 0


def test_a_github_confirmation_runs_out(octocat, github, monkeypatch):
    gh_app, client, user_id = octocat
    confirm(client, github)
    later = time.time() + gh_app.config["DELETE_RECONFIRM_SECONDS"] + 1
    monkeypatch.setattr(self_delete.time, "time", lambda: later)
    response = delete(client)
    assert response.status_code == 403 and code(response) == "reconfirm_required"
    assert account(gh_app, user_id).deleted_at is None


def test_a_confirmation_dance_finished_too_late_confirms_nothing(octocat, github, monkeypatch):
    gh_app, client, user_id = octocat
    page = client.get("/account").get_data(as_text=True)
    started = client.post("/account/confirm/github", data={"csrf_token": csrf_token(page)})
    to_github = client.get(started.headers["Location"])
    later = time.time() + gh_app.config["DELETE_RECONFIRM_SECONDS"] + 1
    monkeypatch.setattr(self_delete.time, "time", lambda: later)
    back = client.get(authorize(to_github.headers["Location"]))
    assert "Confirmed with GitHub" not in client.get(back.headers["Location"]).get_data(as_text=True)
    assert code(delete(client)) == "reconfirm_required"
    assert account(gh_app, user_id).deleted_at is None


def test_a_confirmation_with_another_github_account_confirms_nothing_and_links_nothing(octocat, github):
    gh_app, client, user_id = octocat
    github.user = github_user(OCTOCAT + 1, "someone-else")
    page = confirm(client, github)
    assert "not the one linked to this account" in page
    assert code(delete(client)) == "reconfirm_required"
    with gh_app.app_context():
        logins = list(db.session.scalars(select(OAuthIdentity.provider_login)))
    assert logins == ["octocat"]
    assert account(gh_app, user_id).deleted_at is None


def test_a_confirmation_on_one_device_does_not_serve_another(octocat, github):
    gh_app, client, user_id = octocat
    other = gh_app.test_client()
    assert dance(other, github).status_code == 302  # signs in again: a second device
    confirm(client, github)
    assert code(delete(other)) == "reconfirm_required"
    assert delete(client).status_code == 204


def test_a_plain_github_dance_while_signed_in_still_links_and_confirms_nothing(
    app, make_app, github, make_user
):
    gh_app = make_app(
        GITHUB_CLIENT_ID=CLIENT_ID,
        GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        GITHUB_BASE_URL=github.url,
        GITHUB_TIMEOUT="3",
    )
    make_user("alice")
    client = gh_app.test_client()
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
    )
    back = dance(client, github)
    assert urlsplit(back.headers["Location"]).path == "/account"
    with gh_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OAuthIdentity)) == 1
    # Alice has a password: the GitHub sign-in is no confirmation for her.
    assert code(delete(client)) == "wrong_password"
