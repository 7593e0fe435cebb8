"""With REDIS_URL set, rate limits live in Redis and hold across processes."""

from __future__ import annotations

from tests.conftest import PASSWORD


def _attempts(first, second, count: int, address: str, username: str = "shared-limit") -> list[int]:
    codes = []
    for attempt in range(count):
        app = first if attempt % 2 == 0 else second
        response = app.test_client().post(
            "/api/v1/auth/login",
            json={"username": username, "password": PASSWORD},
            environ_base={"REMOTE_ADDR": address},
        )
        codes.append(response.status_code)
    return codes


def test_login_limit_per_address_is_shared_by_two_processes_through_redis(make_app, redis_url):
    settings = {"REDIS_URL": redis_url, "LOGIN_RATE_LIMIT": "3 per minute"}
    first, second = make_app(**settings), make_app(**settings)
    assert first.config["RATELIMIT_STORAGE_URI"] == redis_url
    assert _attempts(first, second, 4, "10.1.0.1") == [401, 401, 401, 429]


def test_login_failures_per_account_and_address_are_shared_through_redis(make_app, redis_url):
    settings = {
        "REDIS_URL": redis_url,
        "LOGIN_RATE_LIMIT": "100 per minute",
        "LOGIN_FAILURE_LIMIT": "3 per minute",
    }
    first, second = make_app(**settings), make_app(**settings)
    assert _attempts(first, second, 4, "10.1.0.2") == [401, 401, 401, 429]
    # The same account from another address, and another account from this one, still try.
    assert _attempts(first, second, 1, "10.1.0.3") == [401]
    assert _attempts(first, second, 1, "10.1.0.2", "someone-else") == [401]
