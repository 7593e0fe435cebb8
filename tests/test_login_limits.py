"""Password sign-in limits: failures count per (username, address), with a per-username
ceiling that never refuses an address that has not failed; the API and the form share them."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.test_pages import csrf_from

WRONG = "wrong password"


def attempt(app, username: str, password: str, address: str):
    return app.test_client().post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def codes(app, username: str, password: str, addresses: list[str]) -> list[int]:
    return [attempt(app, username, password, address).status_code for address in addresses]


def form_sign_in(app, username: str, password: str, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    page = client.get("/login")
    return client.post(
        "/login", data={"csrf_token": csrf_from(page), "username": username, "password": password}
    )


def test_failures_from_many_addresses_do_not_lock_the_owner_out(app, make_user):
    make_user("alice")
    strangers = [f"10.9.0.{number}" for number in range(1, 12)]
    assert codes(app, "alice", WRONG, strangers) == [401] * 11
    assert attempt(app, "alice", PASSWORD, "10.9.1.1").status_code == 200
    assert form_sign_in(app, "alice", PASSWORD, "10.9.1.2").status_code == 302


def test_failures_per_username_and_address_are_limited(app, make_user, monkeypatch):
    make_user("alice")
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "100 per minute")
    monkeypatch.setitem(app.config, "LOGIN_FAILURE_LIMIT", "3 per minute")
    assert codes(app, "alice", WRONG, ["10.9.2.1"] * 4) == [401, 401, 401, 429]
    refused = attempt(app, "alice", PASSWORD, "10.9.2.1")
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # a minute window, rounded up
    # The same address may still sign in to another account; the owner from elsewhere too.
    make_user("bob")
    assert attempt(app, "bob", PASSWORD, "10.9.2.1").status_code == 200
    assert attempt(app, "ALICE", PASSWORD, "10.9.2.2").status_code == 200


def test_past_the_account_ceiling_only_addresses_that_failed_are_refused(app, make_user, monkeypatch):
    make_user("alice")
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_FAILURE_LIMIT", "3 per hour")
    assert codes(app, "alice", WRONG, ["10.9.3.1", "10.9.3.2", "10.9.3.3"]) == [401] * 3
    # An address that already failed gets no more guesses, even with the right password...
    assert attempt(app, "alice", PASSWORD, "10.9.3.1").status_code == 429
    # ...an address that never failed gets one: a wrong guess there closes it too.
    assert codes(app, "alice", WRONG, ["10.9.3.4", "10.9.3.4"]) == [401, 429]
    # The owner, from an address of their own, signs in.
    assert attempt(app, "alice", PASSWORD, "10.9.3.5").status_code == 200


def test_successful_sign_ins_are_not_failures(app, make_user, monkeypatch):
    make_user("alice")
    monkeypatch.setitem(app.config, "LOGIN_FAILURE_LIMIT", "2 per minute")
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_FAILURE_LIMIT", "2 per minute")
    assert codes(app, "alice", PASSWORD, ["10.9.4.1"] * 5) == [200] * 5


def test_the_sign_in_form_shares_the_limits_with_the_api(app, make_user, monkeypatch):
    make_user("alice")
    monkeypatch.setitem(app.config, "LOGIN_FAILURE_LIMIT", "2 per minute")
    assert codes(app, "alice", WRONG, ["10.9.5.1"] * 2) == [401, 401]
    refused = form_sign_in(app, "alice", PASSWORD, "10.9.5.1")
    assert refused.status_code == 429
    assert b"Too many sign-in attempts" in refused.data
    # Failures on the form count for the API as well.
    assert [form_sign_in(app, "alice", WRONG, "10.9.5.2").status_code for _ in range(2)] == [401, 401]
    assert attempt(app, "alice", PASSWORD, "10.9.5.2").status_code == 429
    assert form_sign_in(app, "alice", PASSWORD, "10.9.5.3").status_code == 302


def test_loading_the_sign_in_page_is_not_an_attempt(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "2 per minute")
    client = app.test_client()
    assert [client.get("/login").status_code for _ in range(4)] == [200] * 4


@pytest.mark.parametrize("username", ["\ud800", "a\udfffb", "nul\x00", "x" * 65])
def test_unstorable_usernames_are_refused_before_any_counter(make_app, redis_url, username):
    """Lone surrogates would not encode into a Redis key; NUL cannot be stored."""
    application = make_app(REDIS_URL=redis_url)
    response = attempt(application, username, PASSWORD, "10.9.6.1")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_any_username_makes_a_safe_limiter_key(make_app, redis_url, monkeypatch):
    """Keys are digests: even text that reaches the counters directly cannot break Redis."""
    from app.auth import login_limits
    from app.errors import ApiError

    application = make_app(REDIS_URL=redis_url, LOGIN_FAILURE_LIMIT="1 per minute")
    with application.test_request_context(environ_base={"REMOTE_ADDR": "10.9.7.1"}):
        for name in ["\ud800", "a b/c:d", "\x00"]:
            monkeypatch.setattr(login_limits.services, "authenticate", _wrong_password)
            with pytest.raises(ApiError) as first:
                login_limits.authenticate(name, WRONG)
            assert first.value.code == "invalid_credentials"
            with pytest.raises(ApiError) as second:
                login_limits.authenticate(name, WRONG)
            assert second.value.code == "rate_limited"


def _wrong_password(username: str, password: str):
    from app.errors import ApiError

    raise ApiError("invalid_credentials", "Wrong username or password.", 401)
