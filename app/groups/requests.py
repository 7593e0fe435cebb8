"""Asking to join a group, and the answers of its owner and admins (an open group is joined at
once; an invite-only one refuses). Membership itself changes through app/groups/services.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import presenters, realtime
from app.errors import ApiError, not_found
from app.extensions import db
from app.groups.services import (
    PAGE_MAX,
    _join,
    _lift,
    _removed_among,
    _removed_error,
    get_group,
    membership,
    require_group_role,
)
from app.locales import _l, word
from app.models import Group, GroupJoinRequest, GroupMember, User, utcnow


def request_to_join(user_id: int, group_id: int, message: str) -> tuple[dict, bool]:
    """Join an open group at once, or ask the owner and admins of an approval group."""
    group = get_group(group_id, lock=True)
    if group.dissolved_at is not None or not group.discoverable and membership(group_id, user_id) is None:
        raise not_found("group")
    if membership(group_id, user_id) is not None:
        raise ApiError("already_member", "You are already a member.", 409)
    if _removed_among(group_id, [user_id]):
        raise _removed_error()
    user = db.session.get(User, user_id)
    if group.join_policy == "invite":
        raise ApiError("invite_only", "This group can only be joined by invitation.", 403)
    if group.join_policy == "open":
        _join(group, [user_id], user, "member_joined", f"{user.nickname} joined the group")
        db.session.commit()
        return {"status": "joined", "group": presenters.group(group)}, True
    pending = db.session.scalar(
        select(GroupJoinRequest).where(
            GroupJoinRequest.group_id == group_id,
            GroupJoinRequest.user_id == user_id,
            GroupJoinRequest.status == "pending",
        )
    )
    if pending is not None:
        return presenters.join_request(pending, user, group), False
    request = GroupJoinRequest(group_id=group_id, user_id=user_id, message=message)
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return request_to_join(user_id, group_id, message)
    payload = presenters.join_request(request, user, group)
    realtime.emit_after_commit("group:join_request", payload, [*_moderator_ids(group_id), user_id])
    db.session.commit()
    return payload, True


def _moderator_ids(group_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(GroupMember.user_id).where(GroupMember.group_id == group_id, GroupMember.role != "member")
        )
    )


def answer_join_request(actor_id: int, request_id: int, *, approve: bool) -> dict:
    request = db.session.get(GroupJoinRequest, request_id)
    if request is None:
        raise not_found("join request")
    group, _ = require_group_role(actor_id, request.group_id, "admin", lock=True)
    if request.status != "pending":
        raise ApiError(
            "request_not_pending",
            _l("This request was already %(status)s.", status=word(request.status)),
            409,
        )
    actor = db.session.get(User, actor_id)
    user = db.session.get(User, request.user_id)
    request.status = "accepted" if approve else "rejected"
    request.handled_by_id = actor_id
    request.responded_at = utcnow()
    if approve:
        _lift(group.id, [user.id])
        _join(group, [user.id], actor, "member_joined", f"{user.nickname} joined the group")
    payload = presenters.join_request(request, user, group)
    realtime.emit_after_commit("group:join_request", payload, [*_moderator_ids(group.id), user.id])
    db.session.commit()
    return payload


def withdraw_join_request(user_id: int, request_id: int) -> dict:
    request = db.session.get(GroupJoinRequest, request_id)
    if request is None or request.user_id != user_id:
        raise not_found("join request")
    if request.status != "pending":
        raise ApiError(
            "request_not_pending",
            _l("This request was already %(status)s.", status=word(request.status)),
            409,
        )
    request.status = "withdrawn"
    request.responded_at = utcnow()
    group = db.session.get(Group, request.group_id)
    payload = presenters.join_request(request, db.session.get(User, user_id), group)
    realtime.emit_after_commit("group:join_request", payload, [*_moderator_ids(group.id), user_id])
    db.session.commit()
    return payload


def pending_join_requests(actor_id: int, group_id: int) -> list[dict]:
    group, _ = require_group_role(actor_id, group_id, "admin")
    rows = db.session.execute(
        select(GroupJoinRequest, User)
        .join(User, User.id == GroupJoinRequest.user_id)
        .where(GroupJoinRequest.group_id == group_id, GroupJoinRequest.status == "pending")
        .order_by(GroupJoinRequest.created_at)
        .limit(PAGE_MAX)
    ).all()
    return [presenters.join_request(request, user, group) for request, user in rows]
