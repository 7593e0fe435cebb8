"""Password sign-in limits, shared by the JSON API and the HTML form.

Three counters, none of which lets a stranger lock someone out:

- every attempt per client address (`LOGIN_RATE_LIMIT`), whatever the username;
- failed attempts per (username, address) (`LOGIN_FAILURE_LIMIT`);
- failed attempts per username from every address (`LOGIN_ACCOUNT_FAILURE_LIMIT`). Past it,
  an address that has already failed on this account is refused, while an address that has
  not may still try: the owner signing in from their own address is never refused because of
  someone else's failures; an attacker gets one more guess per new address.

Only wrong passwords (and unknown usernames) count as failures. Usernames are hashed into the
keys, so any text makes a valid Redis key.
"""

from __future__ import annotations

from flask import current_app
from flask_limiter.util import get_remote_address

from app import metrics, ratelimit
from app.auth import services
from app.errors import ApiError
from app.models import User


def _refused(rate: str, scope: str, *keys: str) -> ApiError:
    return ApiError(
        "rate_limited",
        "Too many sign-in attempts; wait a moment and try again.",
        429,
        retry_after=ratelimit.retry_after(rate, scope, *keys),
    )


@metrics.counts_sign_in("password")
def authenticate(username: str, password: str) -> User:
    """`services.authenticate` behind the sign-in limits; raises `rate_limited` (429) when over."""
    config = current_app.config
    address = get_remote_address() or "unknown"
    account = ratelimit.safe_key(username.strip().lower())
    per_address, per_pair, per_account = (
        config["LOGIN_RATE_LIMIT"],
        config["LOGIN_FAILURE_LIMIT"],
        config["LOGIN_ACCOUNT_FAILURE_LIMIT"],
    )
    if not ratelimit.hit(per_address, "login-ip", address):
        raise _refused(per_address, "login-ip", address)
    if not ratelimit.test(per_pair, "login-fail", account, address):
        raise _refused(per_pair, "login-fail", account, address)
    if not ratelimit.test(per_account, "login-fail-account", account) and ratelimit.used(
        per_pair, "login-fail", account, address
    ):
        raise _refused(per_account, "login-fail-account", account)
    try:
        return services.authenticate(username, password)
    except ApiError as error:
        if error.code == "invalid_credentials":
            ratelimit.hit(per_pair, "login-fail", account, address)
            ratelimit.hit(per_account, "login-fail-account", account)
        raise
