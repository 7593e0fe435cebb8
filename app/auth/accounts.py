"""Accounts a company's backend makes through the server API: each carries the company's own id
(`external_id`), is created one at a time or imported in batches, and is shown to the server
API with its moderation state.

Every account is still made by `auth.services.create_user` (which screens names once more and
announces `user.registered`). An import checks every row first — the fields, repeats inside
the batch, and with one query each the external ids and usernames already taken — and then
creates the good rows in one transaction: a row is written whole or not at all, and a retry of
the same batch finds its rows "existing" instead of failing. Everything slow or refusable is done
by the check, before the first write: nicknames are screened (a blocked one is that row's
`content_blocked`) and passwords hashed (argon2, off the event loop), so the write transaction
holds SQLite's write lock only for the inserts.

A username made from an external id that contains `@` (an e-mail address) is opaque, `u-` and
random hex: usernames are public (contact search), a company's ids for its people need not be.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select

from app import presenters, wordfilter
from app.auth import services as auth
from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import N_, _l
from app.media import avatars
from app.models import Sanction, User, utcnow

# What a company's id for a user may be (the server API's field, a sign-in JWT's `sub`).
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9_.@:-]{1,64}$"
EXTERNAL_ID_RULE = N_("1 to 64 of A-Z a-z 0-9 _ . @ : -")
IMPORT_MAX = 500
# Creating a batch starts over (with the rows left) when a row fails while it is written:
# another request took its name meanwhile, or a later check refused it.
IMPORT_RETRIES = 3
# Fields a row may set besides its external id, username and password.
PROFILE_FIELDS = ("avatar_url", "signature", "locale")


def external_id_taken() -> ApiError:
    return ApiError(
        "external_id_taken", "A user with that external id exists.", 409, {"external_id": "already taken"}
    )


def protected_account() -> ApiError:
    return ApiError(
        "protected_account",
        "Administrators and the robot cannot be signed in, changed or used through the server API.",
        409,
    )


def require_manageable(user: User) -> User:
    """A user a company's key may act as or change: not an administrator (a key would reach the
    console) and not the robot."""
    if user.is_admin or user.is_bot:
        raise protected_account()
    return user


def find_by_external_id(external_id: str) -> User | None:
    return db.session.scalar(select(User).where(User.external_id == external_id))


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return user


def get_by_external_id(external_id: str) -> User:
    user = find_by_external_id(external_id)
    if user is None:
        raise not_found("user")
    return user


def require_live(user: User) -> User:
    """A user the server API may still change: not deleted."""
    if user.deleted_at is not None:
        raise ApiError("user_deleted", "This user was deleted.", 409)
    return user


# --- presenting ------------------------------------------------------------------------------


@dataclass
class SanctionState:
    banned: bool = False
    muted: bool = False
    muted_until: datetime | None = None


def sanction_states(user_ids: list[int]) -> dict[int, SanctionState]:
    """The bans and mutes in force for these users, in one query."""
    states: dict[int, SanctionState] = {}
    if not user_ids:
        return states
    now = utcnow()
    rows = db.session.execute(
        select(Sanction.user_id, Sanction.kind, Sanction.expires_at).where(
            Sanction.user_id.in_(user_ids),
            Sanction.lifted_at.is_(None),
            or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
        )
    )
    for user_id, kind, expires_at in rows:
        state = states.setdefault(user_id, SanctionState())
        if kind == "ban":
            state.banned = True
        else:
            state.muted = True
            # Several mutes cannot be in force at once (a new one lifts the old), but be safe.
            if expires_at is not None and (state.muted_until is None or expires_at > state.muted_until):
                state.muted_until = expires_at
    return states


def mute_of(user_id: int) -> dict:
    """The site mute in force for a user, in the shape `account:sanction` tells it: what the
    chat client needs at start to close its composers (`/auth/me`, the app page)."""
    state = sanction_states([user_id]).get(user_id, SanctionState())
    until = presenters.iso(state.muted_until) if state.muted else None
    return {"kind": "mute", "active": state.muted, "expires_at": until}


def present(user: User, state: SanctionState | None = None) -> dict:
    """A user as the server API shows it. `state` left out: read now."""
    if state is None:
        state = sanction_states([user.id]).get(user.id, SanctionState())
    return {
        "id": user.id,
        "external_id": user.external_id,
        "username": user.username,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "signature": user.signature,
        "locale": user.locale,
        "created_at": presenters.iso(user.created_at),
        "is_bot": user.is_bot,
        "banned": state.banned,
        "muted": state.muted,
        "muted_until": presenters.iso(state.muted_until) if state.muted else None,
        "deleted": user.deleted_at is not None,
    }


# --- creating ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a batch will do: rows to create (index → row, with the username each gets),
    rows already present (index → user), and rows refused (index → error)."""

    create: dict[int, dict] = field(default_factory=dict)
    existing: dict[int, User] = field(default_factory=dict)
    errors: dict[int, ApiError] = field(default_factory=dict)


def _username_error(code: str, message: str, problem: str) -> ApiError:
    return ApiError(code, message, 409, {"username": problem})


def _candidates(external_id: str):
    """Usernames for an account without one, best first: the external id made valid (numbered
    when taken), or, when it holds an `@`, opaque random ones (`u-` + hex) that publish nothing."""
    if "@" in external_id:
        for _ in range(auth.USERNAME_TRIES + 1):
            yield "u-" + secrets.token_hex(5)
        return
    yield from auth._username_candidates(external_id, "user")


def _derived_username(candidates, taken: set[str], checked: set[str]) -> str | None:
    """The first free candidate, or None. `checked`: names already looked up (the free ones
    are not in `taken`)."""
    for candidate in candidates:
        key = candidate.lower()
        if key in taken:
            continue
        if key not in checked and auth.username_taken(candidate):  # the first choice was taken: rare
            taken.add(key)
            continue
        return candidate
    return None


def _nickname(row: dict, supplied: bool) -> str:
    """The row's nickname screened (the username stands in for a missing one). `supplied`: it
    came from a sign-in JWT, which nobody can correct, so a refusal falls back instead."""
    if supplied:
        return auth.supplied_nickname(row.get("nickname"), row["username"])
    nickname = row.get("nickname")
    field = "nickname" if nickname else "username"
    return wordfilter.screen_text(field, (nickname or row["username"])[:64], 64)


def plan(
    rows: list[dict],
    errors: dict[int, ApiError] | None = None,
    *,
    supplied: bool = False,
    hashes: dict[int, str] | None = None,
) -> Plan:
    """Check rows (each already validated as the route's payload model, as a dict) against each
    other and the database. A repeat of an earlier row's external id or username is an error on
    the later row; a row whose external id exists is "existing", not created again. Rows to
    create come back with their nickname screened and their password hashed (`password_hash`;
    `hashes` keeps them by index across the plans of one batch)."""
    result = Plan(errors=dict(errors or {}))
    candidates = {index: row for index, row in enumerate(rows) if index not in result.errors}
    external_ids = sorted({row["external_id"] for row in candidates.values()})
    found = {}
    if external_ids:
        found = {
            user.external_id: user
            for user in db.session.scalars(select(User).where(User.external_id.in_(external_ids)))
        }
    named = {row["username"].lower() for row in candidates.values() if row.get("username")}
    derived = {
        index: _candidates(row["external_id"]) for index, row in candidates.items() if not row.get("username")
    }
    firsts = {index: next(names) for index, names in derived.items()}
    checked = named | {name.lower() for name in firsts.values()}
    taken = set()
    if checked:
        taken = set(db.session.scalars(select(User.username_key).where(User.username_key.in_(checked))))
    seen_ids: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    pending_derived = []
    for index, row in candidates.items():
        external_id = row["external_id"]
        if external_id in seen_ids:
            result.errors[index] = ApiError(
                "duplicate_in_batch",
                _l("Row %(row)s has the same external id.", row=seen_ids[external_id]),
                409,
                {"external_id": _l("repeats row %(row)s", row=seen_ids[external_id])},
            )
            continue
        seen_ids[external_id] = index
        if external_id in found:
            result.existing[index] = found[external_id]
            continue
        try:
            if row.get("password") is not None:
                auth.validate_password(row["password"])
            if row.get("username"):
                auth.validate_username(row["username"])
            # The signature as a profile edit screens it (create_user screens the nickname).
            row = candidates[index] = wordfilter.screen_fields(row, ("signature",), {"signature": 200})
            if row.get("avatar_url") is not None:  # the server API may name any avatar upload
                picture = avatars.check(row["avatar_url"], actor_id=None, by_server=True)
                row = candidates[index] = {**row, "avatar_url": picture}
        except ApiError as error:
            result.errors[index] = error
            continue
        username = row.get("username")
        if not username:
            pending_derived.append(index)
            continue
        key = username.lower()
        if key in seen_names:
            result.errors[index] = ApiError(
                "duplicate_in_batch",
                _l("Row %(row)s has the same username.", row=seen_names[key]),
                409,
                {"username": _l("repeats row %(row)s", row=seen_names[key])},
            )
            continue
        if key in taken:
            result.errors[index] = _username_error(
                "username_taken", "That username is taken.", "already taken"
            )
            continue
        seen_names[key] = index
        result.create[index] = {**row, "username": username}
    # Named rows first: a derived name never takes the name another row asked for.
    taken |= set(seen_names)
    for index in pending_derived:
        row = candidates[index]
        username = _derived_username(itertools.chain([firsts[index]], derived[index]), taken, checked)
        if username is None:
            result.errors[index] = _username_error(
                "username_taken", "No free username could be made from the external id.", "send one"
            )
            continue
        taken.add(username.lower())
        result.create[index] = {**row, "username": username}
    for index, row in sorted(result.create.items()):
        try:
            row["nickname"] = _nickname(row, supplied)
        except ApiError as error:
            del result.create[index]
            result.errors[index] = error
    result.create = dict(sorted(result.create.items()))
    _hash_passwords(result.create, {} if hashes is None else hashes)
    return result


def _hash_passwords(create: dict[int, dict], hashes: dict[int, str]) -> None:
    """Replace each row's password by its argon2 hash (`auth.hash_password` runs off the event
    loop). Done before any write: hashing 500 passwords takes about a minute."""
    for index, row in create.items():
        password = row.pop("password", None)
        if password is None:
            continue
        if index not in hashes:
            hashes[index] = auth.hash_password(password)
        row["password_hash"] = hashes[index]


def _create_one(row: dict) -> User:
    """Add one account to the session (not committed)."""
    user = auth.create_user(
        row["username"],
        None,
        row.get("nickname"),
        external_id=row["external_id"],
        password_hash=row.get("password_hash"),
    )
    for name in PROFILE_FIELDS:
        if row.get(name) is not None:
            setattr(user, name, row[name])
    return user


def create_account(row: dict, *, supplied: bool = False) -> User:
    """One account for the server API: `external_id_taken` (409) if its external id exists.
    `supplied`: the nickname came from a sign-in JWT (see `_nickname`)."""
    result = plan([row], supplied=supplied)
    if result.existing:
        raise external_id_taken()
    if result.errors:
        raise result.errors[0]
    try:
        user = _create_one(result.create[0])
        db.session.commit()
    except ApiError:
        db.session.rollback()
        if find_by_external_id(row["external_id"]) is not None:  # made meanwhile by another request
            raise external_id_taken() from None
        raise
    return user


def import_accounts(rows: list[dict], errors: dict[int, ApiError]) -> tuple[dict, dict, dict]:
    """Create a batch's good rows in one transaction. `errors`: rows the route refused already.
    Returns (created index → user, existing index → user, errors index → ApiError)."""
    refused = dict(errors)
    hashes: dict[int, str] = {}
    for _attempt in range(IMPORT_RETRIES + 1):
        result = plan(rows, refused, hashes=hashes)
        created: dict[int, User] = {}
        failed = None
        for index, row in result.create.items():
            try:
                created[index] = _create_one(row)
            except ApiError as error:
                failed = index, error
                break
        if failed is None:
            made = {index: user.id for index, user in created.items()}
            found = {index: user.id for index, user in result.existing.items()}
            db.session.commit()
            # Read back in one query (the commit expired them; one by one would be a query each).
            ids = [*made.values(), *found.values()]
            users = {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(ids)))}
            return (
                {index: users[user_id] for index, user_id in made.items()},
                {index: users[user_id] for index, user_id in found.items()},
                result.errors,
            )
        db.session.rollback()
        index, error = failed
        # Taken by another request meanwhile: the next plan sees it (existing or taken); any
        # other refusal belongs to the row.
        if error.code != "username_taken":
            refused[index] = error
    raise ApiError("conflict", "Other requests kept changing these users; send the batch again.", 409)
