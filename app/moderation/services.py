"""What administrators do: bans, mutes, password resets, group actions, message recalls and the
robot's switch (console roles: app/moderation/roles.py). Each takes effect at once on every
process and writes an audit row.

Each asks the acting account for its right first (app/moderation/rights.py): ban/unban `ban`;
mute/unmute and a group's mute `mute`; recall `recall`; dissolving a group and removing a member
`dissolve`; a password reset `manage_roles` (it hands the account to whoever sets the password,
and an account with a console role only to an owner); the robot's switch `bot_switch`. Without
it: 403 `forbidden`, nothing done.

The admin console calls these and nothing else; they reuse the same services users' own
actions go through (device sign-out, group dissolve, kick...). The server API bans and mutes
through the same functions with an API key as the actor (`api_key_id`, `admin_id` None): the
route has checked the key's `moderation` scope, the audit row names the key.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from blinker import signal
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased

from app import presenters, realtime, speak_cache
from app.auth import services as auth
from app.chat.actions import recall as recall_core
from app.chat.actions.common import lock_conversation
from app.errors import ApiError, not_found
from app.extensions import db
from app.groups import roles as group_roles
from app.groups import services as groups
from app.locales import _l, word
from app.models import AuditLog, Message, Sanction, User, utcnow
from app.moderation import rights

# Sent with (user id, admin_id=..., api_key_id=..., reason=..., expires_at=...) when a user is
# banned, before the commit: the `user.banned` webhook event (app/webhooks/events.py).
user_banned = signal("parley.user-banned")


def audit(
    admin_id: int | None, action: str, target_type: str, target_id: int | None, reason: str = "", **details
):
    db.session.add(
        AuditLog(
            admin_id=admin_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            details=details or None,
        )
    )


def _require_actor(admin_id: int | None, api_key_id: int | None, right: str) -> dict:
    """An account holding `right`, or a server API key (its route checked the scope); the audit
    details that name a key."""
    if api_key_id is not None:
        return {"api_key": api_key_id}
    rights.require(admin_id, right)
    return {}


def _target(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise not_found("user")
    return user


def active_sanctions(user_id: int, kind: str) -> list[Sanction]:
    now = utcnow()
    return list(
        db.session.scalars(
            select(Sanction).where(
                Sanction.user_id == user_id,
                Sanction.kind == kind,
                Sanction.lifted_at.is_(None),
                or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
            )
        )
    )


def _sanction(
    admin_id: int | None,
    user_id: int,
    kind: str,
    reason: str,
    expires_at: datetime | None,
    api_key_id: int | None,
) -> dict:
    """Put a ban or mute in force (replacing the current one); returns the audit details."""
    by = _require_actor(admin_id, api_key_id, kind)
    user = _target(user_id)
    if user_id == admin_id:
        raise ApiError("cannot_sanction_self", "You cannot do that to your own account.", 400)
    if user.is_admin:
        raise ApiError("cannot_sanction_admin", "Remove the admin role first.", 409)
    if user.is_bot:  # the robot speaks for the service; a ban or mute of it means nothing
        raise ApiError("cannot_sanction_robot", "The robot cannot be banned or muted.", 409)
    if expires_at is not None and expires_at <= utcnow():
        raise ApiError(
            "invalid_input", "Some fields are invalid.", 400, {"expires_at": "must be in the future"}
        )
    for current in active_sanctions(user_id, kind):
        current.lifted_at = utcnow()
        current.lifted_by_id = admin_id
    db.session.add(
        Sanction(user_id=user_id, kind=kind, reason=reason, created_by_id=admin_id, expires_at=expires_at)
    )
    speak_cache.drop_user(user_id)
    return by


def ban_user(
    admin_id: int | None,
    user_id: int,
    reason: str,
    expires_at: datetime | None = None,
    *,
    api_key_id: int | None = None,
) -> None:
    """Ban: every device is signed out and its sockets dropped now; sign-in is refused."""
    by = _sanction(admin_id, user_id, "ban", reason, expires_at, api_key_id)
    audit(admin_id, "ban", "user", user_id, reason, expires_at=presenters.iso(expires_at), **by)
    user_banned.send(user_id, admin_id=admin_id, api_key_id=api_key_id, reason=reason, expires_at=expires_at)
    db.session.flush()
    auth.revoke_all_devices(user_id)  # commits all of it, then drops every socket of the user


def unban(admin_id: int | None, user_id: int, reason: str = "", *, api_key_id: int | None = None) -> int:
    return _lift(admin_id, user_id, "ban", reason, api_key_id)


def mute_user(
    admin_id: int | None, user_id: int, reason: str, minutes: int | None, *, api_key_id: int | None = None
) -> None:
    """Mute site-wide: sends are refused with `muted` at once, open sockets included."""
    expires_at = utcnow() + timedelta(minutes=minutes) if minutes else None
    by = _sanction(admin_id, user_id, "mute", reason, expires_at, api_key_id)
    audit(admin_id, "mute", "user", user_id, reason, expires_at=presenters.iso(expires_at), **by)
    realtime.emit_after_commit(
        "account:sanction",
        {"kind": "mute", "active": True, "expires_at": presenters.iso(expires_at)},
        [user_id],
    )
    db.session.commit()


def unmute(admin_id: int | None, user_id: int, reason: str = "", *, api_key_id: int | None = None) -> int:
    lifted = _lift(admin_id, user_id, "mute", reason, api_key_id)
    realtime.emit_to_users(
        "account:sanction", {"kind": "mute", "active": False, "expires_at": None}, [user_id]
    )
    return lifted


def announce_ended_mutes(since: datetime, now: datetime) -> int:
    """Tell each user whose site mute ended in `(since, now]` — the periodic job's window
    (app/jobs/periodic.py) — as a lift is told (`account:sanction`, after the caller's commit).
    Someone muted again since is not told; the mute's row stays as it is (its end is history)."""
    later = aliased(Sanction)
    still_muted = (
        select(later.id)
        .where(
            later.user_id == Sanction.user_id,
            later.kind == "mute",
            later.lifted_at.is_(None),
            or_(later.expires_at.is_(None), later.expires_at > now),
        )
        .exists()
    )
    ended = db.session.scalars(
        select(Sanction.user_id)
        .where(
            Sanction.kind == "mute",
            Sanction.lifted_at.is_(None),
            Sanction.expires_at > since,
            Sanction.expires_at <= now,
            ~still_muted,
        )
        .distinct()
        .order_by(Sanction.user_id)
    ).all()
    for user_id in ended:
        speak_cache.drop_user(user_id)
    if ended:
        lifted = {"kind": "mute", "active": False, "expires_at": None}
        realtime.emit_after_commit("account:sanction", lifted, ended)
    return len(ended)


def _lift(admin_id: int | None, user_id: int, kind: str, reason: str, api_key_id: int | None = None) -> int:
    by = _require_actor(admin_id, api_key_id, kind)
    _target(user_id)
    current = active_sanctions(user_id, kind)
    if not current:
        code = {"ban": "not_banned", "mute": "not_muted"}[kind]
        raise ApiError(code, _l("The user is not %(state)s.", state=word(code[4:])), 409)
    for sanction in current:
        sanction.lifted_at = utcnow()
        sanction.lifted_by_id = admin_id
    speak_cache.drop_user(user_id)
    audit(admin_id, f"un{kind}", "user", user_id, reason, **by)
    db.session.commit()
    return len(current)


def reset_password(admin_id: int, user_id: int, new_password: str) -> None:
    """Set a new password and sign the user out everywhere. Whoever sets it can sign in as the
    user, so it takes `manage_roles`, and an account with a console role only an owner."""
    actor = rights.require(admin_id, "manage_roles")
    user = _target(user_id)
    if user.is_admin and not rights.is_owner(actor):
        raise ApiError(
            "forbidden", "Only an owner may reset the password of an account with a console role.", 403
        )
    if user.is_bot or user.deleted_at is not None:
        raise ApiError("protected_account", "The robot and deleted accounts have no password to reset.", 409)
    auth.validate_password(new_password)
    user.password_hash = auth.hash_password(new_password)
    audit(admin_id, "reset_password", "user", user_id)
    db.session.flush()
    auth.revoke_all_devices(user_id)


def dissolve_group(admin_id: int, group_id: int, reason: str) -> None:
    rights.require(admin_id, "dissolve")
    audit(admin_id, "dissolve_group", "group", group_id, reason)
    groups.dissolve(admin_id, group_id, reason, site_admin=True)


def mute_group(admin_id: int, group_id: int, muted: bool, reason: str = "") -> None:
    rights.require(admin_id, "mute")
    audit(admin_id, "mute_group" if muted else "unmute_group", "group", group_id, reason)
    group_roles.mute_all(admin_id, group_id, muted, site_admin=True)


def remove_group_member(admin_id: int, group_id: int, user_id: int, reason: str = "") -> None:
    """Take a member out of a group: a group action, like dissolving it (right `dissolve`)."""
    rights.require(admin_id, "dissolve")
    audit(admin_id, "remove_member", "group", group_id, reason, user_id=user_id)
    groups.kick(admin_id, group_id, user_id, site_admin=True)


def recall_message(admin_id: int, message_id: int, reason: str) -> None:
    """Remove a message everywhere, through the same core as members' recalls
    (app/chat/actions/recall.py): devices get `message:recalled` now, sync hands the recalled
    version to devices that were away, its mentions, pin and quotes follow."""
    rights.require(admin_id, "recall")
    message = db.session.get(Message, message_id)
    if message is None:
        raise not_found("message")
    conversation = lock_conversation(message.conversation_id)
    db.session.refresh(message)  # as it is under the lock (a recall may have just committed)
    recall_core.apply_recall(conversation, message, admin_id, "admin")
    audit(admin_id, "recall_message", "message", message_id, reason, conversation_id=message.conversation_id)
    db.session.commit()


def set_bot_enabled(admin_id: int, enabled: bool) -> dict:
    """Switch the robot on or off for every process."""
    from app.bots import service as bots

    rights.require(admin_id, "bot_switch")
    audit(admin_id, "bot_on" if enabled else "bot_off", "bot", None)
    db.session.commit()
    return bots.set_enabled(enabled)
