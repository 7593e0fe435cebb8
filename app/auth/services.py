"""Accounts, their outside sign-in identities and device sessions: every write about who a user is
and where they are signed in."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from blinker import signal
from flask import current_app
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app import presenters, realtime, speak_cache, wordfilter
from app.concurrency import off_loop
from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import _l
from app.media import avatars
from app.models import DeviceSession, OAuthIdentity, Sanction, User, utcnow
from app.moderation import rights
from app.moderation.rights import OWNER
from app.push import services as push

# Sent with (user) when a person's account is made (not the robot's), before the commit: the
# `user.registered` webhook event (app/webhooks/events.py).
user_registered = signal("parley.user-registered")

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 128
# How stale a device's last-seen time may get before a request writes it again.
TOUCH_INTERVAL = timedelta(minutes=1)


def _hasher() -> tuple[PasswordHasher, str]:
    """The app's argon2 hasher, and a hash to verify against when the user does not exist
    (so an unknown user and a wrong password take the same time)."""
    state = current_app.extensions.get("parley.hasher")
    if state is None:
        hasher = PasswordHasher(
            time_cost=current_app.config["PASSWORD_HASH_TIME_COST"],
            memory_cost=current_app.config["PASSWORD_HASH_MEMORY_KIB"],
        )
        state = current_app.extensions["parley.hasher"] = (hasher, hasher.hash(secrets.token_hex(8)))
    return state


def hash_password(password: str) -> str:
    hasher, _ = _hasher()
    return off_loop(hasher.hash, password)


def check_password(user: User | None, password: str) -> bool:
    hasher, dummy = _hasher()
    stored = user.password_hash if user is not None and user.password_hash else dummy
    try:
        ok = off_loop(hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and user is not None and user.password_hash is not None


def validate_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise ApiError(
            "invalid_input",
            "Some fields are invalid.",
            400,
            {"username": "3-32 letters, digits, '.', '_' or '-', starting with a letter or digit"},
        )
    return username


def validate_password(password: str, field: str = "password") -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ApiError(
            "invalid_input",
            "Some fields are invalid.",
            400,
            {field: _l("must be %(min)s to %(max)s characters", min=PASSWORD_MIN, max=PASSWORD_MAX)},
        )
    return password


def find_user_by_username(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username_key == username.lower()))


def username_taken(username: str) -> bool:
    return find_user_by_username(username) is not None


def ban_clause(user_id_column, now=None):
    """SQL condition: a ban is in force for the user in `user_id_column` at `now` (a value or a
    bound parameter; the clock when left out)."""
    if now is None:
        now = utcnow()
    return (
        select(Sanction.id)
        .where(
            Sanction.user_id == user_id_column,
            Sanction.kind == "ban",
            Sanction.lifted_at.is_(None),
            or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
        )
        .exists()
    )


def is_banned(user: User) -> bool:
    return bool(db.session.scalar(select(ban_clause(user.id))))


def _role_id(name: str | None) -> int | None:
    return rights.role_named(name).id if name is not None else None


def create_user(
    username: str,
    password: str | None,
    nickname: str | None = None,
    *,
    is_admin: bool = False,
    admin_role: str | None = None,
    is_bot: bool = False,
    external_id: str | None = None,
    password_hash: str | None = None,
) -> User:
    """Create an account; a taken username (in any letter case) is a 409. `external_id`: the
    company's own id of a user made through the server API (app/auth/accounts.py);
    `password_hash`: a password hashed beforehand (an import hashes before it writes);
    `admin_role`: a console role by name (`is_admin=True` is the `owner` role)."""
    validate_username(username)
    if password is not None:
        validate_password(password)
    # The nickname shown to others, screened by the word filter (masked or refused); without
    # one, the username stands in and is screened in its place.
    nickname = wordfilter.screen_text("nickname" if nickname else "username", (nickname or username)[:64], 64)
    user = User(
        username=username,
        username_key=username.lower(),
        nickname=nickname,
        password_hash=hash_password(password) if password is not None else password_hash,
        admin_role_id=_role_id(OWNER if is_admin else admin_role),
        is_bot=is_bot,
        external_id=external_id,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(
            "username_taken", "That username is taken.", 409, {"username": "already taken"}
        ) from None
    if not is_bot:
        user_registered.send(user)
    return user


# The nickname of last resort for an account whose supplied nickname and username are refused.
FALLBACK_NICKNAME = "User"


def supplied_nickname(nickname: str | None, username: str) -> str:
    """A nickname an outside party supplied (a GitHub profile, a company's sign-in JWT), screened.
    Nobody can correct it, so a reject-list hit does not refuse the account (its sign-in would
    fail forever): the username stands in, and if that is refused too, `FALLBACK_NICKNAME`."""
    for field, text in (("nickname", nickname), ("username", username)):
        if not text:
            continue
        try:
            return wordfilter.screen_text(field, text[:64], 64)
        except ApiError as error:
            if error.code != "content_blocked":
                raise
    return FALLBACK_NICKNAME


def register(username: str, password: str, nickname: str | None = None) -> User:
    if username_taken(username):
        raise ApiError("username_taken", "That username is taken.", 409, {"username": "already taken"})
    user = create_user(username, password, nickname)
    db.session.commit()
    return user


def authenticate(username: str, password: str) -> User:
    """The user these credentials belong to; one error for unknown user and wrong password."""
    user = find_user_by_username(username)
    if not check_password(user, password):
        raise ApiError("invalid_credentials", "Wrong username or password.", 401)
    if is_banned(user):
        raise ApiError("account_banned", "This account is banned.", 403)
    return user


# --- device sessions -------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_AGENTS = [
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("python-requests", "Python requests"),
    ("python", "Python client"),
    ("node", "Node client"),
    ("curl/", "curl"),
]
_SYSTEMS = [
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
]


def device_name(user_agent: str) -> str:
    """A short human name for a device from its user agent, e.g. "Chrome on Linux"."""
    agent = next((name for marker, name in _AGENTS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if agent and system:
        return f"{agent} on {system}"
    return agent or system or "Unknown device"


def start_device_session(
    user: User, user_agent: str, ip: str | None, method: str = "password"
) -> tuple[DeviceSession, str]:
    """Open a new device session; returns it with the secret token for the cookie. Every way of
    signing in ends here, so a deleted account (app/auth/deletion.py) is refused here."""
    if user.deleted_at is not None:
        raise ApiError("unauthenticated", "This account was deleted.", 401)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    device = DeviceSession(
        user_id=user.id,
        token_hash=token_hash(token),
        name=device_name(user_agent),
        user_agent=user_agent[:400],
        ip=ip,
        method=method,
        created_at=now,
        last_seen_at=now,
        expires_at=now + current_app.config["DEVICE_SESSION_LIFETIME"],
    )
    db.session.add(device)
    user.last_seen_at = now
    db.session.commit()
    return device, token


@functools.cache
def _device_query():
    """The statement of `load_device`, built once (it runs for every request and socket connect):
    the device session with its user, in one round trip, and only while the session is live and
    the account not banned. The user comes with the device (`device.user`), so the sign-in never
    reads it again."""
    return (
        select(DeviceSession)
        .join(DeviceSession.user)
        .options(contains_eager(DeviceSession.user))
        .where(
            DeviceSession.token_hash == bindparam("token_hash"),
            DeviceSession.user_id == bindparam("user_id"),
            *_live(bindparam("now")),
        )
    )


def _live(now) -> tuple:
    """What keeps a device session (joined with its user) live at `now`: not revoked, not
    expired, the account neither deleted nor banned."""
    return (
        DeviceSession.revoked_at.is_(None),
        DeviceSession.expires_at > now,
        User.deleted_at.is_(None),
        ~ban_clause(DeviceSession.user_id, now),
    )


def live_device_ids(device_ids: Iterable[int]) -> set[int]:
    """Which of these device sessions are still live (not revoked, expired, banned or deleted)."""
    ids = list(set(device_ids))
    if not ids:
        return set()
    statement = select(DeviceSession.id).join(DeviceSession.user)
    return set(db.session.scalars(statement.where(DeviceSession.id.in_(ids), *_live(utcnow()))))


def load_device(user_id: int, token: str) -> DeviceSession | None:
    """The live device session for this cookie, its user loaded with it (`device.user`), or None
    if revoked, expired, banned or deleted."""
    now = utcnow()
    device = db.session.scalar(
        _device_query(), {"token_hash": token_hash(token), "user_id": user_id, "now": now}
    )
    if device is None:
        return None
    if now - device.last_seen_at > TOUCH_INTERVAL:
        _touch(device, now)
    return device


def _touch(device: DeviceSession, now: datetime) -> None:
    """Slide the session's expiry forward; written at most once a minute per device. The rows
    just read stay loaded through the commit (their new values are the ones written), so the
    request does not read the device or its user again."""
    device.last_seen_at = now
    device.expires_at = now + current_app.config["DEVICE_SESSION_LIFETIME"]
    device.user.last_seen_at = now
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def list_devices(user: User) -> list[DeviceSession]:
    return list(
        db.session.scalars(
            select(DeviceSession)
            .where(
                DeviceSession.user_id == user.id,
                DeviceSession.revoked_at.is_(None),
                DeviceSession.expires_at > utcnow(),
            )
            .order_by(DeviceSession.last_seen_at.desc(), DeviceSession.id.desc())
        )
    )


def revoke_device(user: User, device_id: int) -> None:
    """Sign one of the user's own devices out; another user's device is a 404."""
    device = db.session.get(DeviceSession, device_id)
    if device is None or device.user_id != user.id or device.revoked_at is not None:
        raise not_found("device")
    end_device_session(device)


def revoke_all_devices(user_id: int, keep_device_id: int | None = None) -> int:
    """Sign out every device of the user except `keep_device_id`; returns how many."""
    query = select(DeviceSession.id).where(
        DeviceSession.user_id == user_id, DeviceSession.revoked_at.is_(None)
    )
    if keep_device_id is not None:
        query = query.where(DeviceSession.id != keep_device_id)
    device_ids = list(db.session.scalars(query))
    if device_ids:
        db.session.execute(
            update(DeviceSession).where(DeviceSession.id.in_(device_ids)).values(revoked_at=utcnow())
        )
        push.forget_devices(device_ids)
        realtime.disconnect_devices_after_commit(device_ids)
    db.session.commit()
    return len(device_ids)


def end_device_session(device: DeviceSession) -> None:
    """Sign one device out: its next request is refused and its sockets are dropped."""
    device.revoked_at = utcnow()
    push.forget_devices([device.id])  # a signed-out device gets no more pushes
    realtime.disconnect_devices_after_commit([device.id])
    db.session.commit()


# --- profile -----------------------------------------------------------------------------


def update_profile(user: User, changes: dict, *, by_server: bool = False) -> User:
    """Change the user's own profile (or, `by_server`, the server API changes it). Every device
    of the user gets `me:update` after the commit."""
    changes = wordfilter.screen_fields(changes, ("nickname", "signature"), {"nickname": 64, "signature": 200})
    if "avatar_url" in changes:
        changes = {
            **changes,
            "avatar_url": avatars.check(
                changes["avatar_url"], actor_id=user.id, current=user.avatar_url, by_server=by_server
            ),
        }
    for name in ("nickname", "avatar_url", "signature", "locale", "notification_previews"):
        if name in changes:
            setattr(user, name, changes[name])
    # A send carries its sender's nickname and avatar from the right-to-speak cache.
    speak_cache.drop_user(user.id)
    realtime.emit_after_commit("me:update", presenters.user_self(user), [user.id])
    db.session.commit()
    return user


def change_password(user: User, current: str, new: str, keep_device_id: int | None) -> int:
    """Set a new password and sign out every other device; returns how many were signed out."""
    if user.password_hash is not None and not check_password(user, current):
        raise ApiError(
            "invalid_credentials",
            "The current password is wrong.",
            401,
            {"current_password": "wrong password"},
        )
    validate_password(new, "new_password")
    user.password_hash = hash_password(new)
    db.session.flush()
    return revoke_all_devices(user.id, keep_device_id)


def set_password(user: User, new: str) -> None:
    validate_password(new)
    user.password_hash = hash_password(new)
    db.session.commit()


# --- outside sign-in identities ----------------------------------------------------------

# Providers an account can be linked to, with the name users know them by.
PROVIDERS = {"github": "GitHub"}
# Numbered usernames to try ("octocat-2" … "octocat-21") before a random suffix.
USERNAME_TRIES = 20


def find_identity(provider: str, provider_user_id: str) -> OAuthIdentity | None:
    """The identity with this provider's own user id: the only key Parley matches on."""
    return db.session.scalar(
        select(OAuthIdentity).where(
            OAuthIdentity.provider == provider, OAuthIdentity.provider_user_id == provider_user_id
        )
    )


def user_identity(user_id: int, provider: str) -> OAuthIdentity | None:
    return db.session.scalar(
        select(OAuthIdentity).where(OAuthIdentity.user_id == user_id, OAuthIdentity.provider == provider)
    )


def list_identities(user_id: int) -> list[OAuthIdentity]:
    return list(
        db.session.scalars(
            select(OAuthIdentity).where(OAuthIdentity.user_id == user_id).order_by(OAuthIdentity.provider)
        )
    )


def identity_sign_in(provider: str, provider_user_id: str, login: str) -> User | None:
    """The account linked to this outside identity, or None for an identity never seen; the
    provider login is refreshed (it may have been renamed), banned accounts are refused."""
    identity = find_identity(provider, provider_user_id)
    if identity is None:
        return None
    if is_banned(identity.user):
        raise ApiError("account_banned", "This account is banned.", 403)
    identity.provider_login = login
    db.session.commit()
    return identity.user


def _username_candidates(login: str, provider: str):
    """Valid usernames for a new account named after an outside login, best first."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", login).lstrip("_.-")[:32]
    if len(base) < 3:
        base = f"{base}-{provider}" if base else provider
    yield base
    suffixes = [f"-{number}" for number in range(2, USERNAME_TRIES + 2)] + ["-" + secrets.token_hex(4)]
    for suffix in suffixes:
        yield base[: 32 - len(suffix)] + suffix


def create_user_from_identity(
    provider: str, provider_user_id: str, login: str, nickname: str | None, avatar_url: str | None
) -> User:
    """A new password-less account for the first sign-in of an outside identity. Its username is
    the outside login, numbered when taken: an existing account of that name is never joined."""
    for username in _username_candidates(login, provider):
        if username_taken(username):
            continue
        try:
            user = create_user(username, None, supplied_nickname(nickname or login, username))
        except ApiError as error:  # taken in the meantime
            if error.code != "username_taken":
                raise
            continue
        user.avatar_url = avatar_url
        db.session.add(
            OAuthIdentity(
                user_id=user.id, provider=provider, provider_user_id=provider_user_id, provider_login=login
            )
        )
        try:
            db.session.commit()
        except IntegrityError:  # the same identity's first sign-in, twice at once: the other won
            db.session.rollback()
            return identity_sign_in(provider, provider_user_id, login)
        return user
    raise ApiError("username_taken", "No free username could be made from that login.", 409)


def link_identity(user_id: int, provider: str, provider_user_id: str, login: str) -> OAuthIdentity:
    """Link an outside identity to an account: one per provider per account, and an identity
    linked to another account stays with it."""
    name = PROVIDERS[provider]
    identity = find_identity(provider, provider_user_id)
    if identity is not None and identity.user_id != user_id:
        raise ApiError(
            "identity_linked_elsewhere",
            _l("That %(provider)s account is linked to another Parley account.", provider=name),
            409,
        )
    if identity is None:
        if user_identity(user_id, provider) is not None:
            raise ApiError(
                "provider_already_linked",
                _l("This account is linked to another %(provider)s account; unlink it first.", provider=name),
                409,
            )
        identity = OAuthIdentity(user_id=user_id, provider=provider, provider_user_id=provider_user_id)
        db.session.add(identity)
    identity.provider_login = login
    try:
        db.session.commit()
    except IntegrityError:  # linked elsewhere in the meantime
        db.session.rollback()
        raise ApiError(
            "identity_linked_elsewhere",
            _l("That %(provider)s account is linked to another Parley account.", provider=name),
            409,
        ) from None
    return identity


def unlink_identity(user_id: int, provider: str) -> None:
    """Remove a linked identity, unless it is the account's last way to sign in."""
    identity = user_identity(user_id, provider)
    if identity is None:
        raise not_found("linked account")
    others = [row for row in list_identities(user_id) if row.id != identity.id]
    if identity.user.password_hash is None and not others:
        raise ApiError(
            "last_sign_in_method",
            _l(
                "Set a password first: %(provider)s is this account's only way to sign in.",
                provider=PROVIDERS[provider],
            ),
            409,
        )
    db.session.delete(identity)
    db.session.commit()
