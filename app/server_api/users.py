"""Server API: users — create one or import a batch (with the company's `external_id`), read,
update the profile, ban/unban, mute/unmute, delete (anonymise).

Writes go through app/auth/accounts.py (create, import), app/auth/services.py (profile),
app/moderation/services.py (bans and mutes, with the key as the actor) and
app/auth/deletion.py. Answers show users with `accounts.present`.
"""

from __future__ import annotations

from datetime import timedelta

from flask import jsonify, request
from pydantic import Field

from app.auth import accounts, deletion
from app.auth import services as auth
from app.errors import ApiError
from app.media.avatars import AvatarUrl
from app.models import utcnow
from app.moderation import services as moderation
from app.server_api import bp
from app.server_api.keys import current_key, requires
from app.validation import Payload, parse_json, validate

# The same rules as a user's own profile (ProfileIn in app/auth/routes.py); avatars follow
# app/media/avatars.py, checked by the services (any avatar upload may be named here).
LOCALE_PATTERN = r"^(en|zh-CN)$"
# Ten years: a longer ban or mute is one without an end (leave `minutes` out).
MAX_MINUTES = 10 * 365 * 24 * 60


class UserIn(Payload):
    """A user to create. Without `username`, one is made from `external_id`; without
    `password`, the user signs in only through the company (sign-in tokens, JWTs)."""

    external_id: str = Field(min_length=1, max_length=64, pattern=accounts.EXTERNAL_ID_PATTERN)
    username: str | None = Field(default=None, max_length=32)
    nickname: str | None = Field(default=None, min_length=1, max_length=64)
    avatar_url: AvatarUrl | None = None
    signature: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=128)
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)


class ImportIn(Payload):
    """Up to 500 users, each an object as `POST /users` takes; each row is checked on its own
    and reported by its index."""

    # Rows are objects here (each is validated as UserIn on its own, so a bad row does not
    # refuse the batch); the document still shows UserIn's schema for them.
    users: list[dict] = Field(
        min_length=1,
        max_length=accounts.IMPORT_MAX,
        json_schema_extra={"items": UserIn.model_json_schema()},
    )


class UserPatch(Payload):
    nickname: str | None = Field(default=None, min_length=1, max_length=64)
    avatar_url: AvatarUrl | None = None
    signature: str = Field(default="", max_length=200)
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)


class SanctionIn(Payload):
    """`minutes` left out: until lifted."""

    reason: str = Field(default="", max_length=500)
    minutes: int | None = Field(default=None, ge=1, le=MAX_MINUTES)


class LiftIn(Payload):
    reason: str = Field(default="", max_length=500)


def _user_answer(user, status: int = 200):
    return jsonify(user=accounts.present(user)), status


def _live(user_id: int):
    return accounts.require_live(accounts.get_user(user_id))


@bp.post("/users")
@requires("users")
def create_user():
    data = parse_json(UserIn)
    user = accounts.create_account(data.model_dump())
    return _user_answer(user, 201)


@bp.post("/users/import")
@requires("users")
def import_users():
    data = parse_json(ImportIn)
    rows: list[dict] = []
    refused: dict[int, ApiError] = {}
    for index, raw in enumerate(data.users):
        try:
            rows.append(validate(UserIn, raw).model_dump())
        except ApiError as error:
            refused[index] = error
            rows.append(raw)
    created, existing, errors = accounts.import_accounts(rows, refused)
    states = accounts.SanctionState()  # new accounts have no bans or mutes
    return jsonify(
        created=[accounts.present(user, states) for _, user in sorted(created.items())],
        existing=[
            {"index": index, "id": user.id, "external_id": user.external_id}
            for index, user in sorted(existing.items())
        ],
        errors=[
            {"index": index, "external_id": _external_id(data.users[index]), "error": error.to_dict()}
            for index, error in sorted(errors.items())
        ],
    )


def _external_id(row) -> str | None:
    value = row.get("external_id") if isinstance(row, dict) else None
    return value if isinstance(value, str) else None


@bp.get("/users/<int:user_id>")
@requires("read", "users")
def get_user(user_id: int):
    return _user_answer(accounts.get_user(user_id))


@bp.get("/users/by-external-id/<external_id>")
@requires("read", "users")
def get_user_by_external_id(external_id: str):
    return _user_answer(accounts.get_by_external_id(external_id))


@bp.patch("/users/<int:user_id>")
@requires("users")
def update_user(user_id: int):
    data = parse_json(UserPatch)
    user = accounts.require_manageable(_live(user_id))
    changes = data.model_dump(exclude_unset=True)
    if "nickname" in changes and changes["nickname"] is None:
        changes.pop("nickname")
    auth.update_profile(user, changes, by_server=True)
    return _user_answer(user)


@bp.delete("/users/<int:user_id>")
@requires("users")
def delete_user(user_id: int):
    deletion.delete_user(user_id)
    return "", 204


@bp.post("/users/<int:user_id>/ban")
@requires("moderation")
def ban_user(user_id: int):
    data = parse_json(SanctionIn)
    _live(user_id)
    expires_at = utcnow() + timedelta(minutes=data.minutes) if data.minutes else None
    moderation.ban_user(None, user_id, data.reason, expires_at, api_key_id=current_key().id)
    return _user_answer(accounts.get_user(user_id))


@bp.delete("/users/<int:user_id>/ban")
@requires("moderation")
def unban_user(user_id: int):
    data = parse_json(LiftIn) if request.content_length else LiftIn()  # a reason, or no body
    moderation.unban(None, user_id, data.reason, api_key_id=current_key().id)
    return _user_answer(accounts.get_user(user_id))


@bp.post("/users/<int:user_id>/mute")
@requires("moderation")
def mute_user(user_id: int):
    data = parse_json(SanctionIn)
    _live(user_id)
    moderation.mute_user(None, user_id, data.reason, data.minutes, api_key_id=current_key().id)
    return _user_answer(accounts.get_user(user_id))


@bp.delete("/users/<int:user_id>/mute")
@requires("moderation")
def unmute_user(user_id: int):
    data = parse_json(LiftIn) if request.content_length else LiftIn()  # a reason, or no body
    moderation.unmute(None, user_id, data.reason, api_key_id=current_key().id)
    return _user_answer(accounts.get_user(user_id))
