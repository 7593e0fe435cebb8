"""The HTML pages: sign-in, registration, account and devices, all behind CSRF tokens."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD


def csrf_from(response) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', response.data)
    assert match, response.data[:500]
    return match.group(1).decode()


def test_register_page_creates_an_account(client):
    page = client.get("/register")
    response = client.post(
        "/register",
        data={"csrf_token": csrf_from(page), "username": "alice", "nickname": "Alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    account = client.get("/account")
    assert b"Signed in as <strong>Alice</strong>" in account.data


def test_register_page_shows_a_taken_username(client, make_user):
    make_user("alice")
    page = client.get("/register")
    response = client.post(
        "/register", data={"csrf_token": csrf_from(page), "username": "ALICE", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert b"already taken" in response.data


def test_form_posts_without_a_csrf_token_are_refused(client, make_user):
    make_user("alice")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert b"CSRF" in response.data
    assert client.get("/api/v1/auth/me").status_code == 401


def test_login_page_signs_in_and_follows_only_local_next(client, make_user):
    make_user("alice")
    page = client.get("/login")
    response = client.post(
        "/login?next=//evil.example/steal",
        data={"csrf_token": csrf_from(page), "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/account"))})
    page = client.get("/login")
    response = client.post(
        "/login?next=/account",
        data={"csrf_token": csrf_from(page), "username": "alice", "password": PASSWORD},
    )
    assert response.headers["Location"] == "/account"


def test_login_page_wrong_password(client, make_user):
    make_user("alice")
    page = client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page), "username": "alice", "password": "nope nope"}
    )
    assert response.status_code == 401
    assert b"Wrong username or password." in response.data


def test_pages_need_a_session(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/account")


@pytest.fixture
def signed_in(client, make_user):
    make_user("alice")
    page = client.get("/login")
    client.post("/login", data={"csrf_token": csrf_from(page), "username": "alice", "password": PASSWORD})
    return client


def test_account_page_edits_the_profile_and_escapes_it(signed_in):
    page = signed_in.get("/account")
    response = signed_in.post(
        "/account",
        data={
            "csrf_token": csrf_from(page),
            "profile-nickname": "<b>Al</b>",
            "profile-signature": "hi",
            "profile-avatar_url": "",
        },
    )
    assert response.status_code == 302
    shown = signed_in.get("/account").data
    assert b"&lt;b&gt;Al&lt;/b&gt;" in shown
    assert b"<b>Al</b>" not in shown
    assert signed_in.get("/api/v1/auth/me").get_json()["user"]["nickname"] == "<b>Al</b>"


def test_account_page_signs_out_another_device(signed_in, login):
    other = login("alice")
    page = signed_in.get("/account")
    other_id = other.get("/api/v1/auth/me").get_json()["device"]["id"]
    response = signed_in.post(f"/account/devices/{other_id}/sign-out", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert other.get("/api/v1/auth/me").status_code == 401
    assert signed_in.get("/api/v1/auth/me").status_code == 200


def test_account_page_changes_the_password(signed_in, login):
    other = login("alice")
    page = signed_in.get("/account")
    response = signed_in.post(
        "/account",
        data={
            "csrf_token": csrf_from(page),
            "password-current_password": PASSWORD,
            "password-new_password": "brand new secret",
        },
    )
    assert response.status_code == 302
    assert other.get("/api/v1/auth/me").status_code == 401
    login("alice", "brand new secret")


def test_logout_form(signed_in):
    page = signed_in.get("/account")
    assert signed_in.post("/logout", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert signed_in.get("/api/v1/auth/me").status_code == 401
