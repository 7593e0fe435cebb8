"""With REDIS_URL set, rate limits live in Redis and hold across processes."""

from __future__ import annotations

from tests.conftest import PASSWORD


def test_login_limit_is_shared_by_two_processes_through_redis(make_app, redis_url):
    settings = {"REDIS_URL": redis_url, "LOGIN_RATE_LIMIT": "3 per minute"}
    first, second = make_app(**settings), make_app(**settings)
    assert first.config["RATELIMIT_STORAGE_URI"] == redis_url
    codes = []
    for attempt in range(4):
        app = first if attempt % 2 == 0 else second
        response = app.test_client().post(
            "/api/v1/auth/login",
            json={"username": "shared-limit", "password": PASSWORD},
            environ_base={"REMOTE_ADDR": f"10.1.0.{attempt}"},
        )
        codes.append(response.status_code)
    assert codes == [401, 401, 401, 429]
