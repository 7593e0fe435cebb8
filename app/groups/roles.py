"""Roles and mutes in a group: promoting and demoting admins, handing over ownership, muting
the whole group or one member. Each writes a system message and drops the right-to-speak cache."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from app import presenters, speak_cache
from app.chat.conversations import announce_update
from app.chat.send import append_message
from app.errors import ApiError, not_found
from app.extensions import db
from app.groups.services import (
    RANKS,
    _actor,
    _announce_group,
    _name,
    get_group,
    membership,
    require_group_role,
    system_body,
)
from app.models import GroupMember, User, utcnow


def set_role(
    actor_id: int | None, group_id: int, user_id: int, role: str, *, by_server: bool = False
) -> dict:
    """The owner (or the server) promotes members to admin or demotes admins; "owner" transfers."""
    if role == "owner":
        transfer(actor_id, group_id, user_id, by_server=by_server)
        user = db.session.get(User, user_id)
        return presenters.group_member(membership(group_id, user_id), user, online=False)
    group, _ = require_group_role(actor_id, group_id, "owner", lock=True, by_server=by_server)
    target = membership(group_id, user_id)
    if target is None:
        raise not_found("member")
    if target.role == "owner":
        raise ApiError("forbidden", "Transfer ownership instead.", 403)
    if target.role != role:
        target.role = role
        speak_cache.drop_conversation(group.conversation_id)
        actor = _actor(actor_id)
        user = db.session.get(User, user_id)
        verb = "made" if role == "admin" else "removed"
        text = f"{_name(actor)} {verb} {user.nickname} {'an admin' if role == 'admin' else 'as admin'}"
        append_message(
            group.conversation_id, None, system_body(f"role_{role}", actor, text, user_ids=[user_id])
        )
        announce_update(group.conversation_id, [user_id])  # `my_role`: may they speak in a muted group
        _announce_group(group)
    db.session.commit()
    return presenters.group_member(target, db.session.get(User, user_id), online=False)


def transfer(actor_id: int | None, group_id: int, user_id: int, *, by_server: bool = False) -> dict:
    """The owner (or the server) hands the group to a member; the old owner stays as an admin."""
    group, owner = require_group_role(actor_id, group_id, "owner", lock=True, by_server=by_server)
    target = membership(group_id, user_id)
    if target is None or user_id == actor_id:
        raise not_found("member")
    if by_server:
        if user_id == group.owner_id:
            db.session.commit()
            return presenters.group(group)
        owner = membership(group_id, group.owner_id)
    owner.role = "admin"
    target.role = "owner"
    group.owner_id = user_id
    speak_cache.drop_conversation(group.conversation_id)
    actor = _actor(actor_id)
    user = db.session.get(User, user_id)
    append_message(
        group.conversation_id,
        None,
        system_body(
            "owner_changed", actor, f"{_name(actor)} made {user.nickname} the owner", user_ids=[user_id]
        ),
    )
    announce_update(group.conversation_id, [owner.user_id, user_id])
    _announce_group(group)
    db.session.commit()
    return presenters.group(group)


def mute_all(
    actor_id: int | None, group_id: int, muted: bool, *, site_admin: bool = False, by_server: bool = False
) -> dict:
    group, _ = require_group_role(
        actor_id, group_id, "admin", lock=True, site_admin=site_admin, by_server=by_server
    )
    if group.muted_all != muted:
        group.muted_all = muted
        speak_cache.drop_conversation(group.conversation_id)
        actor = _actor(actor_id)
        text = f"{_name(actor)} {'muted' if muted else 'unmuted'} the group"
        append_message(
            group.conversation_id, None, system_body("group_muted" if muted else "group_unmuted", actor, text)
        )
        _announce_group(group)
    db.session.commit()
    return presenters.group(group)


def mute_member(
    actor_id: int | None, group_id: int, user_id: int, minutes: int, *, by_server: bool = False
) -> dict:
    """Mute one member for `minutes` (0 lifts it); admins mute members, the owner anyone else,
    the server anyone."""
    group, actor_member = require_group_role(actor_id, group_id, "admin", lock=True, by_server=by_server)
    target = membership(group_id, user_id)
    if target is None:
        raise not_found("member")
    if actor_member is not None and RANKS[target.role] >= RANKS[actor_member.role]:
        raise ApiError("forbidden", "You cannot mute this member.", 403)
    target.muted_until = utcnow() + timedelta(minutes=minutes) if minutes else None
    speak_cache.drop_conversation(group.conversation_id)
    actor = _actor(actor_id)
    user = db.session.get(User, user_id)
    text = (
        f"{_name(actor)} muted {user.nickname} for {minutes} min"
        if minutes
        else f"{_name(actor)} unmuted {user.nickname}"
    )
    append_message(group.conversation_id, None, system_body("member_muted", actor, text, user_ids=[user_id]))
    announce_update(group.conversation_id, [user_id])  # `my_muted_until`: the composer closes or opens
    db.session.commit()
    return presenters.group_member(target, user, online=False)


def end_member_mutes(since: datetime, now: datetime) -> int:
    """Clear member mutes that ended by `now` (sends honour the end already; the members list
    stops showing a past time) and tell each group of those that ended after `since` — the
    periodic job's window (app/jobs/periodic.py) — as a lift is told, with a system message. Each
    group's lock comes first, as for a mute. The caller commits; returns how many were told."""
    ended = (GroupMember.muted_until.is_not(None), GroupMember.muted_until <= now)
    candidates = db.session.execute(
        select(GroupMember.group_id, GroupMember.user_id, GroupMember.muted_until)
        .where(*ended)
        .order_by(GroupMember.group_id, GroupMember.user_id)
    ).all()
    told = 0
    for group_id, user_id, until in candidates:
        try:
            group = get_group(group_id, lock=True)
        except ApiError:
            continue  # deleted meanwhile, with its members
        cleared = db.session.execute(
            update(GroupMember)
            .where(GroupMember.group_id == group_id, GroupMember.user_id == user_id, *ended)
            .values(muted_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not cleared:
            continue  # muted again meanwhile
        speak_cache.drop_conversation(group.conversation_id)
        announce_update(group.conversation_id, [user_id])
        if until <= since or group.dissolved_at is not None:
            continue
        user = db.session.get(User, user_id)
        body = system_body("member_muted", None, f"The mute of {user.nickname} has ended", user_ids=[user_id])
        append_message(group.conversation_id, None, body)
        told += 1
    return told
