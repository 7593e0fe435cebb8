"""Deleting an account: anonymise it, keep its messages.

The row stays (messages, read positions and group history point at it) but says nothing of the
person any more: nickname "Deleted user", no avatar or signature, username `deleted-<id>` (the
old one is free again), no external id, password or linked identities. Every device is signed
out and its sockets dropped, then its device rows (address, browser, name) are deleted; its push
subscriptions and unused sign-in tokens go; a deleted
account cannot sign in again by any way (`auth.services.start_device_session` and `load_device`
refuse it). Its friendships, blocks (both ways) and pending friend and join requests are
removed; the notes of its answered friend and join requests are blanked (the rows stay: they
are the other side's and the groups' history). It leaves its groups through the groups
services after its nickname is replaced but before the rest is anonymised (the
`group.member_left` webhook events keep the external id the company knows the person by):
an owner hands a group to its longest-standing admin (else member) first, or dissolves it when
alone. The files it uploaded
are removed: messages that carried them keep their place and show a missing file
(`/media/<id>` answers 404); an avatar a group still uses stays with the group. Its data
exports (app/export) are removed, files and rows.

Deleting again finishes whatever a first, interrupted deletion left; it changes nothing more.
The server API calls this (`DELETE /api/server/v1/users/<id>`), and so does a user deleting
their own account (app/auth/self_delete.py, after confirming it is them).
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import and_, case, delete, or_, select, update

from app import realtime, speak_cache
from app.auth import services as auth
from app.errors import ApiError, not_found
from app.export import services as exports
from app.extensions import db
from app.groups import roles as group_roles
from app.groups import services as groups
from app.media.services import MEDIA_URL
from app.media.storage import get_storage
from app.models import (
    Block,
    DeviceSession,
    FriendRequest,
    Friendship,
    Group,
    GroupJoinRequest,
    GroupMember,
    OAuthIdentity,
    PushSubscription,
    SignInToken,
    Upload,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

DELETED_NICKNAME = "Deleted user"
UPLOAD_BATCH = 500


def deleted_username(user_id: int) -> str:
    """`deleted-<id>`; should someone have registered that name, it gets a random suffix."""
    name = f"deleted-{user_id}"
    holder = auth.find_user_by_username(name)
    if holder is None or holder.id == user_id:
        return name
    return f"{name}-{secrets.token_hex(3)}"


def delete_user(user_id: int) -> User:
    """Anonymise the account and undo its ties (see the module's docstring); safe to repeat."""
    user = db.session.get(User, user_id)
    if user is None:
        raise not_found("user")
    if user.is_admin or user.is_bot:
        raise ApiError(
            "protected_account",
            "Administrators and the robot cannot be deleted (remove the role first).",
            409,
        )
    # Groups first, while the account still carries its external id: the company matches the
    # `group.member_left` webhook events by it. The nickname goes before, so the groups' system
    # messages say "Deleted user left the group". Left again after anonymising, for a group
    # joined meanwhile (the account's sockets are dropped only then).
    if user.nickname != DELETED_NICKNAME:
        user.nickname = DELETED_NICKNAME
        db.session.commit()
    _leave_groups(user_id)
    _anonymise(user)
    _leave_groups(user_id)
    _remove_uploads(user_id)
    exports.remove_user_exports(user_id)
    return user


def _anonymise(user: User) -> None:
    """One transaction: the account forgets the person and every tie that lets it act."""
    user_id = user.id
    if user.deleted_at is None:  # deleting again keeps the name it got
        user.username = deleted_username(user_id)
        user.username_key = user.username.lower()
    user.nickname = DELETED_NICKNAME
    user.avatar_url = None
    user.signature = ""
    user.locale = None
    user.deleted_at = user.deleted_at or utcnow()
    user.password_hash = None
    user.external_id = None
    db.session.execute(delete(OAuthIdentity).where(OAuthIdentity.user_id == user_id))
    db.session.execute(delete(SignInToken).where(SignInToken.user_id == user_id))
    db.session.execute(delete(PushSubscription).where(PushSubscription.user_id == user_id))
    _remove_social(user_id)
    db.session.execute(
        delete(GroupJoinRequest).where(
            GroupJoinRequest.user_id == user_id, GroupJoinRequest.status == "pending"
        )
    )
    db.session.execute(
        update(FriendRequest)
        .where(
            FriendRequest.status != "pending",
            FriendRequest.message != "",
            or_(FriendRequest.from_user_id == user_id, FriendRequest.to_user_id == user_id),
        )
        .values(message="")
    )
    db.session.execute(
        update(GroupJoinRequest)
        .where(GroupJoinRequest.user_id == user_id, GroupJoinRequest.message != "")
        .values(message="")
    )
    speak_cache.drop_user(user_id)
    realtime.disconnect_user_after_commit(user_id)  # sockets of devices revoked earlier too
    auth.revoke_all_devices(user_id)  # commits all of it, then drops every device's sockets
    # Revoked first (sockets dropped, pushes forgotten), then gone: the address, browser and
    # device name are the person's. A later request with an old cookie finds no device.
    db.session.execute(delete(DeviceSession).where(DeviceSession.user_id == user_id))
    db.session.commit()


def _remove_social(user_id: int) -> None:
    """Friendships, blocks in both directions and pending friend requests; the caller commits."""
    friends = db.session.execute(
        delete(Friendship)
        .where(or_(Friendship.user_a_id == user_id, Friendship.user_b_id == user_id))
        .returning(Friendship.user_a_id, Friendship.user_b_id)
    ).all()
    blocks = db.session.execute(
        delete(Block)
        .where(or_(Block.user_id == user_id, Block.blocked_user_id == user_id))
        .returning(Block.user_id, Block.blocked_user_id)
    ).all()
    db.session.execute(
        delete(FriendRequest).where(
            FriendRequest.status == "pending",
            or_(FriendRequest.from_user_id == user_id, FriendRequest.to_user_id == user_id),
        )
    )
    for a, b in {*friends, *blocks}:
        speak_cache.drop_pair(a, b)
    for a, b in friends:
        other = b if a == user_id else a
        realtime.emit_after_commit("friend:removed", {"user_ids": [user_id, other]}, [other])


def _leave_groups(user_id: int) -> None:
    """Leave every live group through the groups services (one commit each); an owner first
    hands the group on, or dissolves it when nobody else is in it."""
    rows = db.session.execute(
        select(GroupMember.group_id, GroupMember.role)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id == user_id, Group.dissolved_at.is_(None))
        .order_by(GroupMember.group_id)
    ).all()
    for group_id, role in rows:
        try:
            if role == "owner":
                successor = _successor(group_id, user_id)
                if successor is None:
                    groups.dissolve(user_id, group_id)
                    continue
                group_roles.transfer(user_id, group_id, successor)
            groups.leave(user_id, group_id)
        except ApiError as error:  # changed meanwhile (dissolved, left): nothing left to do there
            db.session.rollback()
            log.warning("deleting user %s: group %s: %s", user_id, group_id, error.code)


def _successor(group_id: int, user_id: int) -> int | None:
    """The member a leaving owner's group passes to: its longest-standing admin, else member."""
    return db.session.scalar(
        select(GroupMember.user_id)
        .where(GroupMember.group_id == group_id, GroupMember.user_id != user_id)
        .order_by(case((GroupMember.role == "admin", 0), else_=1), GroupMember.joined_at, GroupMember.user_id)
        .limit(1)
    )


def _remove_uploads(user_id: int) -> None:
    """Delete the user's uploads and then their files; an avatar a group shows is kept."""
    uploads = db.session.execute(select(Upload.id, Upload.kind).where(Upload.owner_id == user_id)).all()
    avatars = [upload_id for upload_id, kind in uploads if kind == "avatar"]
    kept: set[str] = set()
    if avatars:
        patterns = [Group.avatar_url.like(f"%/media/{upload_id}%") for upload_id in avatars]
        for url in db.session.scalars(select(Group.avatar_url).where(or_(*patterns))):
            kept.update(MEDIA_URL.findall(url))
    ids = [upload_id for upload_id, _ in uploads if upload_id not in kept]
    storage = get_storage()
    for start in range(0, len(ids), UPLOAD_BATCH):
        gone = db.session.execute(
            delete(Upload)
            .where(and_(Upload.id.in_(ids[start : start + UPLOAD_BATCH]), Upload.owner_id == user_id))
            .returning(Upload.storage_key, Upload.thumb_key)
        ).all()
        db.session.commit()  # the rows first: a file is never served after its row is gone
        for storage_key, thumb_key in gone:
            storage.delete(storage_key)
            if thumb_key:
                storage.delete(thumb_key)
