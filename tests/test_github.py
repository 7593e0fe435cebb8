"""GitHub sign-in: Parley's real Flask-Dance code against a local fake GitHub.

The dance is driven as a browser would: Parley's /auth/github/login sends the browser to the fake's
authorize page, which sends it back to /auth/github/authorized with a code and the state.
Accounts are matched by GitHub's numeric user id only: never by a login.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from app.auth import services
from app.auth.github import github_urls
from app.errors import ApiError
from app.extensions import db
from app.models import DeviceSession, OAuthIdentity, Sanction, User
from config import Config, ConfigError
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
    start,
)


@pytest.fixture
def gh_app(make_app, github):
    """Parley configured with GitHub credentials, pointed at the fake like a GitHub Enterprise server."""
    return make_app(
        GITHUB_CLIENT_ID=CLIENT_ID,
        GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        GITHUB_BASE_URL=github.url,
        # Short, for the tests of a GitHub that hangs; not so short that a pause of the test
        # process (a long garbage collection on a loaded machine) reads as GitHub timing out.
        GITHUB_TIMEOUT="3",
    )


@pytest.fixture
def visitor(gh_app):
    """A signed-out visitor."""
    return gh_app.test_client()


@pytest.fixture
def password_login(gh_app):
    """A visitor signed in with a password on the GitHub-enabled app."""

    def sign_in(username: str):
        client = gh_app.test_client()
        response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
        return client

    return sign_in


def follow(client, response) -> str:
    """The page a redirect leads to (flashed messages included)."""
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get(response.headers["Location"]).get_data(as_text=True)


def me(client) -> dict:
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def counts(app) -> tuple[int, int, int]:
    with app.app_context():
        return tuple(
            db.session.scalar(select(func.count()).select_from(model))
            for model in (User, OAuthIdentity, DeviceSession)
        )


def identity_of(app, github_id: int = OCTOCAT) -> OAuthIdentity | None:
    with app.app_context():
        row = services.find_identity("github", str(github_id))
        if row is not None:
            db.session.expunge(row)
        return row


# --- sign-up and sign-in ---------------------------------------------------------------------


def test_a_first_github_sign_in_makes_an_account_and_a_github_device_session(gh_app, visitor, github):
    response = dance(visitor, github)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"

    answer = me(visitor)
    assert answer["user"]["username"] == "octocat"
    assert answer["user"]["nickname"] == "The Octocat"
    assert answer["user"]["avatar_url"] == f"https://avatars.githubusercontent.com/u/{OCTOCAT}?v=4"
    assert answer["user"]["has_password"] is False and answer["user"]["has_github"] is True
    assert answer["device"]["method"] == "github"
    devices = visitor.get("/api/v1/auth/devices").get_json()["devices"]
    assert [(device["method"], device["current"]) for device in devices] == [("github", True)]

    identity = identity_of(gh_app)
    assert (identity.user_id, identity.provider_login) == (answer["user"]["id"], "octocat")
    assert identity.token is None
    assert github.calls == [
        "GET /login/oauth/authorize",
        "POST /login/oauth/access_token",
        "GET /api/v3/user",
    ]


def test_the_github_token_is_kept_neither_in_the_cookie_nor_shown(gh_app, visitor, github):
    dance(visitor, github)
    [token] = github.tokens
    cookie = visitor.get_cookie("parley_session").value
    session = gh_app.session_interface.get_signing_serializer(gh_app).loads(cookie)
    assert token not in repr(session)
    assert not any(key.startswith("github_oauth") for key in session)
    for path in ("/account", "/api/v1/auth/me", "/api/v1/auth/identities", "/api/v1/auth/devices"):
        assert token not in visitor.get(path).get_data(as_text=True)


def test_a_returning_user_renamed_at_github_gets_the_same_account(gh_app, visitor, github):
    dance(visitor, github)
    first = me(visitor)["user"]

    github.user = github_user(OCTOCAT, "octo-renamed", "Octo Renamed")
    laptop = gh_app.test_client()
    dance(laptop, github)
    again = me(laptop)["user"]

    assert again["id"] == first["id"]
    assert again["username"] == "octocat"  # the Parley account is not renamed
    assert identity_of(gh_app).provider_login == "octo-renamed"
    assert counts(gh_app) == (1, 1, 2)  # one account, two devices
    devices = laptop.get("/api/v1/auth/devices").get_json()["devices"]
    assert sorted(device["method"] for device in devices) == ["github", "github"]


def test_a_taken_username_makes_a_new_numbered_account_and_leaves_the_local_one_alone(
    gh_app, visitor, github, make_user, password_login
):
    local_id = make_user("admin", is_admin=True)
    github.user = github_user(1, "admin", None)
    dance(visitor, github)

    account = me(visitor)["user"]
    assert account["id"] != local_id
    assert (account["username"], account["nickname"], account["is_admin"]) == ("admin-2", "admin", False)
    with gh_app.app_context():
        local = db.session.get(User, local_id)
        assert local.identities == []
        assert (local.username, local.nickname, local.is_admin) == ("admin", "admin", True)
    assert me(password_login("admin"))["user"]["id"] == local_id

    # Letter case does not make a name free: "ADMIN" is taken too.
    github.user = github_user(2, "ADMIN", "Shouty")
    other = gh_app.test_client()
    dance(other, github)
    assert me(other)["user"]["username"] == "ADMIN-3"


@pytest.mark.parametrize(
    ("login", "username"),
    [
        ("a", "a-github"),
        ("x" * 39, "x" * 32),
        ("ünïcode", "n-code"),
    ],
)
def test_a_github_login_becomes_a_valid_username(gh_app, login, username):
    with gh_app.app_context():
        user = services.create_user_from_identity("github", "77", login, None, None)
        assert user.username == username
        assert user.nickname == login


def test_numbered_usernames_stay_within_32_characters(gh_app, make_user):
    make_user("y" * 32)
    with gh_app.app_context():
        user = services.create_user_from_identity("github", "78", "y" * 39, None, None)
        assert user.username == "y" * 30 + "-2"


def test_a_banned_account_cannot_sign_in_with_github(gh_app, visitor, github):
    dance(visitor, github)
    user_id = me(visitor)["user"]["id"]
    with gh_app.app_context():
        db.session.add(Sanction(user_id=user_id, kind="ban", reason="spam"))
        db.session.commit()

    again = gh_app.test_client()
    response = dance(again, github)
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert "This account is banned." in follow(again, response)
    assert again.get("/api/v1/auth/me").status_code == 401
    assert counts(gh_app) == (1, 1, 1)


# --- link and unlink ---------------------------------------------------------------------


def test_a_signed_in_user_links_github_and_then_signs_in_with_it(gh_app, github, make_user, password_login):
    alice_id = make_user("alice")
    alice = password_login("alice")
    response = dance(alice, github)
    assert urlsplit(response.headers["Location"]).path == "/account"
    page = follow(alice, response)
    assert "GitHub account @octocat linked." in page
    assert "Unlink GitHub" in page
    listing = alice.get("/api/v1/auth/identities").get_json()
    assert listing["available"] == ["github"]
    [identity] = listing["identities"]
    assert (identity["provider"], identity["login"]) == ("github", "octocat")
    assert identity["linked_at"].endswith("Z")
    assert counts(gh_app) == (1, 1, 1)  # linking opens no device session

    phone = gh_app.test_client()
    dance(phone, github)
    assert me(phone)["user"]["id"] == alice_id
    assert me(phone)["device"]["method"] == "github"


def test_an_identity_linked_to_another_account_cannot_be_linked(gh_app, github, make_user, password_login):
    dance(gh_app.test_client(), github)  # octocat's own account
    owner_id = identity_of(gh_app).user_id
    make_user("alice")
    alice = password_login("alice")

    page = follow(alice, dance(alice, github))
    assert "That GitHub account is linked to another Parley account." in page
    assert me(alice)["user"]["username"] == "alice"  # still alice: no switch of account
    assert alice.get("/api/v1/auth/identities").get_json()["identities"] == []
    assert identity_of(gh_app).user_id == owner_id
    with gh_app.app_context(), pytest.raises(ApiError) as refused:
        services.link_identity(me(alice)["user"]["id"], "github", str(OCTOCAT), "octocat")
    assert refused.value.code == "identity_linked_elsewhere"


def test_the_self_payload_says_whether_github_is_linked(gh_app, github, make_user, password_login):
    make_user("alice")
    alice = password_login("alice")
    assert me(alice)["user"]["has_github"] is False
    github.deny = True  # a dance that links nothing changes nothing
    follow(alice, dance(alice, github))
    assert me(alice)["user"]["has_github"] is False
    github.deny = False
    dance(alice, github)
    assert (me(alice)["user"]["has_password"], me(alice)["user"]["has_github"]) == (True, True)
    assert alice.delete("/api/v1/auth/identities/github").status_code == 204
    assert me(alice)["user"]["has_github"] is False


def test_one_github_identity_per_account(gh_app, github, make_user, password_login):
    alice_id = make_user("alice")
    alice = password_login("alice")
    dance(alice, github)
    github.user = github_user(99, "second-self", None)

    page = follow(alice, dance(alice, github))
    assert "This account is linked to another GitHub account; unlink it first." in page
    assert identity_of(gh_app, 99) is None
    assert identity_of(gh_app).user_id == alice_id
    with gh_app.app_context(), pytest.raises(ApiError) as refused:
        services.link_identity(alice_id, "github", "99", "second-self")
    assert refused.value.code == "provider_already_linked"


def test_unlinking_the_only_way_to_sign_in_is_refused_until_a_password_is_set(gh_app, visitor, github):
    dance(visitor, github)
    response = visitor.delete("/api/v1/auth/identities/github")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "last_sign_in_method"
    assert identity_of(gh_app) is not None

    response = visitor.post("/api/v1/auth/password", json={"new_password": "a new password 1"})
    assert response.status_code == 200
    assert visitor.delete("/api/v1/auth/identities/github").status_code == 204
    assert visitor.get("/api/v1/auth/identities").get_json()["identities"] == []
    assert identity_of(gh_app) is None

    # The next GitHub sign-in no longer reaches that account: it makes a new one.
    user_id = me(visitor)["user"]["id"]
    other = gh_app.test_client()
    dance(other, github)
    assert me(other)["user"]["id"] != user_id


def test_unlinking_nothing_is_not_found(gh_app, make_user, password_login):
    make_user("alice")
    alice = password_login("alice")
    for path in ("/api/v1/auth/identities/github", "/api/v1/auth/identities/myspace"):
        response = alice.delete(path)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_the_account_page_unlinks_with_a_csrf_token_only(gh_app, github, make_user, password_login):
    make_user("alice")
    alice = password_login("alice")
    dance(alice, github)

    assert alice.post("/account/identities/github/unlink").status_code == 400  # csrf_failed
    assert identity_of(gh_app) is not None

    page = alice.get("/account").get_data(as_text=True)
    assert "@octocat" in page
    response = alice.post("/account/identities/github/unlink", data={"csrf_token": csrf_token(page)})
    page = follow(alice, response)
    assert "GitHub account unlinked." in page
    assert identity_of(gh_app) is None
    assert "Link GitHub" in page
    assert 'href="/auth/github/login"' in page


def test_the_account_page_refuses_to_unlink_the_last_way_in(gh_app, visitor, github):
    dance(visitor, github)
    page = visitor.get("/account").get_data(as_text=True)
    response = visitor.post("/account/identities/github/unlink", data={"csrf_token": csrf_token(page)})
    assert "Set a password first: GitHub is this account&#39;s only way to sign in." in follow(
        visitor, response
    )
    assert identity_of(gh_app) is not None


# --- state, errors, timeouts ------------------------------------------------------------------


def test_a_callback_with_a_forged_state_is_refused(gh_app, visitor, github):
    url = start(visitor, github)
    callback = urlsplit(authorize(url))
    query = parse_qs(callback.query)
    forged = urlencode({"code": query["code"][0], "state": "forged-state"})

    response = visitor.get(f"{callback.path}?{forged}")
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert "was not started from this browser" in follow(visitor, response)
    assert counts(gh_app) == (0, 0, 0)
    assert "POST /login/oauth/access_token" not in github.calls
    # The genuine callback is spent too: the state is used once.
    assert urlsplit(visitor.get(f"{callback.path}?{callback.query}").headers["Location"]).path == "/login"
    assert counts(gh_app) == (0, 0, 0)


def test_a_callback_without_state_is_refused(gh_app, visitor, github):
    callback = urlsplit(authorize(start(visitor, github)))
    code = parse_qs(callback.query)["code"][0]
    response = visitor.get(f"{callback.path}?code={code}")
    assert "was not started from this browser" in follow(visitor, response)
    assert counts(gh_app) == (0, 0, 0)


def test_an_attackers_callback_cannot_link_their_github_to_a_signed_in_victim(
    gh_app, github, make_user, password_login
):
    """Login CSRF: the attacker's own code and state, replayed in the victim's visitor."""
    attacker = gh_app.test_client()
    attackers_callback = authorize(start(attacker, github))
    make_user("victim")
    victim = password_login("victim")

    response = victim.get(attackers_callback)  # the victim never started a dance
    assert urlsplit(response.headers["Location"]).path == "/account"
    assert "was not started from this browser" in follow(victim, response)
    start(victim, github)  # nor does a dance of the victim's own accept the attacker's state
    assert "was not started from this browser" in follow(victim, victim.get(attackers_callback))
    assert identity_of(gh_app) is None
    assert "POST /login/oauth/access_token" not in github.calls


@pytest.mark.parametrize(
    ("knob", "message"),
    [
        ("deny", "GitHub sign-in was cancelled: The user has denied your application access."),
        ("token_error", "GitHub refused the sign-in (bad_verification_code); nothing was changed."),
        ("user_status", "GitHub did not answer as expected; nothing was changed."),
        ("hang_token", "GitHub could not be reached in time; nothing was changed."),
        ("hang_user", "GitHub could not be reached in time; nothing was changed."),
    ],
)
def test_a_github_failure_shows_a_clear_message_and_changes_nothing(gh_app, visitor, github, knob, message):
    if knob == "deny":
        github.deny = True
    elif knob == "token_error":
        github.token_error = "bad_verification_code"
    elif knob == "user_status":
        github.user_status = 502
    else:
        github.hang.add(knob.removeprefix("hang_"))

    response = dance(visitor, github)
    assert urlsplit(response.headers["Location"]).path == "/login"
    page = follow(visitor, response)
    assert message in page
    assert "Sign in with GitHub" in page
    assert counts(gh_app) == (0, 0, 0)
    assert visitor.get("/api/v1/auth/me").status_code == 401


def test_github_answering_something_that_is_not_a_user_is_refused(gh_app, visitor, github):
    github.user = {"id": "583231", "login": "octocat"}  # a string id is not GitHub's shape
    assert "GitHub did not answer as expected" in follow(visitor, dance(visitor, github))
    assert counts(gh_app) == (0, 0, 0)


def test_github_going_away_mid_dance_shows_a_clear_message(gh_app, visitor, github):
    callback = authorize(start(visitor, github))
    github.stop()
    assert "GitHub could not be reached in time" in follow(visitor, visitor.get(callback))
    assert counts(gh_app) == (0, 0, 0)


def test_a_failed_link_leaves_the_user_signed_in_on_the_account_page(
    gh_app, github, make_user, password_login
):
    make_user("alice")
    alice = password_login("alice")
    github.token_error = "bad_verification_code"
    response = dance(alice, github)
    assert urlsplit(response.headers["Location"]).path == "/account"
    assert "GitHub refused the sign-in" in follow(alice, response)
    assert me(alice)["user"]["username"] == "alice"
    assert identity_of(gh_app) is None


# --- configuration ---------------------------------------------------------------------------


def test_without_credentials_there_are_no_github_routes_and_no_button(client, login, make_user):
    assert client.get("/auth/github/login").status_code == 404
    assert client.get("/auth/github/authorized?code=x&state=y").status_code == 404
    assert "Sign in with GitHub" not in client.get("/login").get_data(as_text=True)
    make_user("alice")
    alice = login("alice")
    assert "GitHub" not in alice.get("/account").get_data(as_text=True)
    assert alice.get("/api/v1/auth/identities").get_json() == {"identities": [], "available": []}


def test_with_credentials_the_sign_in_page_has_the_button(visitor, make_user, password_login):
    assert 'href="/auth/github/login"' in visitor.get("/login").get_data(as_text=True)
    make_user("alice")
    page = password_login("alice").get("/account").get_data(as_text=True)
    assert "Link GitHub" in page


def test_github_urls_are_github_com_or_an_enterprise_server():
    assert github_urls(None) == (
        "https://api.github.com/",
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
    )
    assert github_urls("https://git.example.com/") == (
        "https://git.example.com/api/v3/",
        "https://git.example.com/login/oauth/authorize",
        "https://git.example.com/login/oauth/access_token",
    )


@pytest.mark.parametrize(("value"), ["soon", "0", "121"])
def test_a_malformed_github_timeout_stops_start_up(tmp_path, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "GITHUB_TIMEOUT": value})
    assert caught.value.name == "GITHUB_TIMEOUT"


def test_production_refuses_oauth_over_plain_http(tmp_path):
    env = {"INSTANCE_PATH": str(tmp_path), "PARLEY_ENV": "production", "SECRET_KEY": "k" * 40}
    with pytest.raises(ConfigError) as caught:
        Config.from_env({**env, "OAUTHLIB_INSECURE_TRANSPORT": "1"})
    assert caught.value.name == "OAUTHLIB_INSECURE_TRANSPORT"
    assert Config.from_env(env).GITHUB_TIMEOUT == 10
