"""A user deleting their own account, after confirming it is them.

An account with a password confirms with it (a wrong one is 403 `wrong_password`, counted like a
failed sign-in: past `LOGIN_FAILURE_LIMIT` for the account, 429 `rate_limited`, and no password is
checked). An account that signs in with GitHub alone confirms with a fresh GitHub sign-in: the
account page starts the dance with the intent recorded in the session; when GitHub answers with
the identity linked to this account (app/auth/github.py), the session records when, for this
device, and a deletion within `DELETE_RECONFIRM_SECONDS` goes through (`reconfirm_required`
otherwise). An account with neither (made and signed in by a company's backend) is deleted by
that backend through the server API (`cannot_reconfirm`). Console accounts (any role) and the
robot cannot delete themselves (`protected_account`).

The deletion itself is app/auth/deletion.py's `delete_user` (anonymised, signed out everywhere,
messages kept as "Deleted user", uploads and exports removed).
"""

from __future__ import annotations

import time

from flask import current_app, session

from app import ratelimit
from app.auth import deletion, services
from app.auth.session import current_device
from app.errors import ApiError
from app.models import User

INTENT_KEY = "github_reconfirm"
CONFIRMED_KEY = "github_reconfirmed"
FAILURE_SCOPE = "delete-fail"


def start_github_confirmation(user: User) -> None:
    """The next GitHub dance of this browser (within DELETE_RECONFIRM_SECONDS) confirms the
    account instead of linking."""
    session[INTENT_KEY] = {"user": user.id, "at": time.time()}


def wants_github_confirmation(user: User) -> bool:
    """Whether this dance was started to confirm `user` (the intent is used up either way)."""
    intent = session.pop(INTENT_KEY, None)
    return isinstance(intent, dict) and intent.get("user") == user.id and _fresh(intent.get("at"))


def _fresh(at) -> bool:
    limit = current_app.config["DELETE_RECONFIRM_SECONDS"]
    return isinstance(at, int | float) and 0 <= time.time() - at <= limit


def record_github_confirmation(user: User, github_id: str) -> None:
    """GitHub answered with `github_id`: it must be the identity linked to this account."""
    identity = services.user_identity(user.id, "github")
    if identity is None or identity.provider_user_id != github_id:
        raise ApiError(
            "reconfirm_mismatch",
            "That GitHub account is not the one linked to this account; nothing was confirmed.",
            403,
        )
    device = current_device()
    session[CONFIRMED_KEY] = {"user": user.id, "device": device.id if device else None, "at": time.time()}


def github_confirmed(user: User) -> bool:
    """Whether this device confirmed the account with GitHub within DELETE_RECONFIRM_SECONDS."""
    confirmed = session.get(CONFIRMED_KEY)
    device = current_device()
    if not isinstance(confirmed, dict) or device is None:
        return False
    mine = confirmed.get("user") == user.id and confirmed.get("device") == device.id
    return mine and _fresh(confirmed.get("at"))


def needs(user: User) -> str:
    """How the account confirms a deletion: "password", "github", or "none" (cannot)."""
    if user.password_hash is not None:
        return "password"
    if services.user_identity(user.id, "github") is not None:
        return "github"
    return "none"


def delete_own_account(user: User, password: str) -> None:
    """Check who asks (see the module's docstring), then delete the account."""
    if user.is_admin or user.is_bot:
        raise ApiError(
            "protected_account",
            "An account with a console role cannot delete itself; an owner must remove the role first.",
            409,
        )
    way = needs(user)
    if way == "password":
        _check_password(user, password)
    elif way == "github":
        if not github_confirmed(user):
            raise ApiError(
                "reconfirm_required",
                "Confirm with GitHub first; then delete your account within a few minutes.",
                403,
            )
    else:
        raise ApiError(
            "cannot_reconfirm",
            "This account is managed by your organisation; ask it to delete the account.",
            409,
        )
    session.pop(CONFIRMED_KEY, None)
    deletion.delete_user(user.id)


def _check_password(user: User, password: str) -> None:
    rate = current_app.config["LOGIN_FAILURE_LIMIT"]
    key = str(user.id)
    if not ratelimit.test(rate, FAILURE_SCOPE, key):
        raise ApiError(
            "rate_limited",
            "Too many wrong passwords; wait a moment and try again.",
            429,
            retry_after=ratelimit.retry_after(rate, FAILURE_SCOPE, key),
        )
    if not services.check_password(user, password):
        ratelimit.hit(rate, FAILURE_SCOPE, key)
        raise ApiError("wrong_password", "The password is wrong.", 403, {"password": "wrong password"})
