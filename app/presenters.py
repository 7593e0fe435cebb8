"""The JSON shapes of Parley's objects, shared by REST routes and socket events."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from app.models import (
    Conversation,
    ConversationMember,
    DeviceSession,
    FriendRequest,
    Group,
    GroupJoinRequest,
    GroupMember,
    GroupRemoval,
    Message,
    OAuthIdentity,
    PushSubscription,
    Upload,
    User,
)
from app.moderation import rights


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def user_public(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "signature": user.signature,
        "is_bot": user.is_bot,
        # A deleted account's messages stay, from "Deleted user": clients show their own words.
        "deleted": user.deleted_at is not None,
    }


def user_self(user: User) -> dict:
    held = rights.rights_of(user)
    return {
        **user_public(user),
        "is_admin": user.is_admin,
        # The console role's name and rights (None and [] without one): what the console allows.
        "admin_role": user.admin_role.name if user.is_admin and user.admin_role is not None else None,
        "admin_rights": [right for right in rights.RIGHTS if right in held],
        "locale": user.locale,
        "has_password": user.password_hash is not None,
        # A GitHub account is linked (it signs in, and confirms deleting the account).
        "has_github": any(row.provider == "github" for row in user.identities),
        "notification_previews": user.notification_previews,
        "created_at": iso(user.created_at),
    }


def device(session: DeviceSession, current_id: int | None) -> dict:
    return {
        "id": session.id,
        "name": session.name,
        "ip": session.ip,
        "method": session.method,
        "created_at": iso(session.created_at),
        "last_seen_at": iso(session.last_seen_at),
        "current": session.id == current_id,
    }


def push_subscription(row: PushSubscription, session: DeviceSession, current_id: int | None) -> dict:
    """A device's push status on the Me page (never its endpoint or keys)."""
    return {
        "device_id": session.id,
        "device_name": session.name,
        "current": session.id == current_id,
        "created_at": iso(row.created_at),
        "last_success_at": iso(row.last_success_at),
    }


def identity(row: OAuthIdentity) -> dict:
    return {"provider": row.provider, "login": row.provider_login, "linked_at": iso(row.created_at)}


class RowSender(NamedTuple):
    """A message's sender read as labelled columns of a page's statement (`sender_*`)."""

    id: int
    username: str
    nickname: str
    avatar_url: str | None
    deleted_at: datetime | None


def row_sender(row) -> RowSender | None:
    """The sender of a row with `sender_id`, `sender_username`, `sender_nickname`,
    `sender_avatar_url` and `sender_deleted_at`; None when the outer join found nobody."""
    if row.sender_username is None:
        return None
    return RowSender(
        row.sender_id, row.sender_username, row.sender_nickname, row.sender_avatar_url, row.sender_deleted_at
    )


def sender(user: User | None) -> dict | None:
    if user is None:
        return None
    return {
        "id": user.id,
        "username": user.username,
        "nickname": user.nickname,
        "avatar_url": user.avatar_url,
        "deleted": user.deleted_at is not None,
    }


RECALL_TEXTS = {
    "sender": "This message was withdrawn",
    "group_admin": "Removed by a group admin",
    "admin": "Removed by an administrator",
}


def _recalled_body(row: Message) -> dict:
    by = row.recalled_as or ("sender" if row.recalled_by_id == row.sender_id else "admin")
    return {
        "type": row.type,
        "recalled": True,
        "by": by,
        "by_id": row.recalled_by_id,
        "text": RECALL_TEXTS[by],
    }


def reactions(summary: list | None) -> list[dict]:
    """[{"emoji", "count", "user_ids"}] in the order the emoji first appeared."""
    return [
        {"emoji": item["emoji"], "count": len(item["user_ids"]), "user_ids": item["user_ids"]}
        for item in summary or ()
    ]


def message(row: Message, author: User | None) -> dict:
    """A message as every member sees it. A recalled one keeps only its place: no body, quote,
    mentions or reactions."""
    recalled = row.recalled_at is not None
    return {
        "id": row.id,
        "conversation_id": row.conversation_id,
        "seq": row.seq,
        "sender": sender(author),
        "type": row.type,
        "body": _recalled_body(row) if recalled else row.body,
        "client_msg_id": row.client_msg_id,
        "created_at": iso(row.created_at),
        "edited_at": iso(row.edited_at),
        "edit_count": row.edit_count or 0,
        "recalled": recalled,
        "reply": None if recalled else row.reply,
        "mentions": [] if recalled else row.mentions or [],
        "mention_all": False if recalled else bool(row.mention_all),
        "reactions": [] if recalled else reactions(row.reactions),
        "forwarded": bool(row.forwarded),
    }


def group_brief(group: Group) -> dict:
    return {
        "id": group.id,
        "name": group.name,
        "avatar_url": group.avatar_url,
        "member_count": group.member_count,
        "dissolved": group.dissolved_at is not None,
        "muted_all": group.muted_all,
        "members_mention_all": bool(group.members_mention_all),
    }


def conversation(
    member: ConversationMember,
    row: Conversation,
    group: Group | None,
    peer: User | None,
    last: Message | None,
    last_sender: User | None,
    *,
    unread: int,
    online: bool,
    peer_read_seq: int | None = None,
    unread_mentions: int = 0,
    mention_seq: int | None = None,
    my_role: str | None = None,
    my_muted_until: datetime | None = None,
) -> dict:
    if group is not None:
        name, avatar = group.name, group.avatar_url
    elif peer is not None:
        name, avatar = peer.nickname, peer.avatar_url
    else:
        name, avatar = "", None
    return {
        "id": row.id,
        "kind": row.kind,
        "name": name,
        "avatar_url": avatar,
        "peer": user_public(peer) if peer is not None else None,
        "online": online,
        "group": group_brief(group) if group is not None else None,
        "last_message": message(last, last_sender) if last is not None else None,
        "last_seq": member.left_seq if member.left_seq is not None else row.last_seq,
        "read_seq": member.read_seq,
        "peer_read_seq": peer_read_seq,
        "unread": unread,
        "unread_mentions": unread_mentions,
        "mention_seq": mention_seq,
        "pinned": member.pinned,
        "muted": member.muted,
        "active": member.active,
        "last_activity_at": iso(row.last_activity_at),
        "pins": _pins_in_window(member, row),
        # In a group: your role (null once you are out) and the end of your mute there (null
        # when none is in force), for the composer to say why it is closed (PROTOCOL.md).
        "my_role": my_role,
        "my_muted_until": iso(my_muted_until),
    }


def _pins_in_window(member: ConversationMember, row: Conversation) -> list[dict]:
    """The conversation's pins ({"seq", "by", "at"}, newest first) the member's window covers."""
    highest = member.left_seq if member.left_seq is not None else row.last_seq
    return [pin for pin in row.pins or () if member.joined_seq < pin["seq"] <= highest]


def friend_request(row: FriendRequest, sender: User, recipient: User) -> dict:
    return {
        "id": row.id,
        "from": user_public(sender),
        "to": user_public(recipient),
        "message": row.message,
        "status": row.status,
        "created_at": iso(row.created_at),
        "responded_at": iso(row.responded_at),
    }


def friend(user: User, remark: str | None, since: datetime, *, online: bool, visible: bool = True) -> dict:
    """`visible`: whether the viewer may see this friend's presence (not across a block)."""
    return {
        "user": user_public(user),
        "remark": remark,
        "online": online and visible,
        "last_seen_at": None if online or not visible else iso(user.last_seen_at),
        "since": iso(since),
    }


def group(row: Group) -> dict:
    return {
        **group_brief(row),
        "conversation_id": row.conversation_id,
        "intro": row.intro,
        "announcement": row.announcement,
        "join_policy": row.join_policy,
        "discoverable": row.discoverable,
        "owner_id": row.owner_id,
        "member_limit": row.member_limit,
        "created_at": iso(row.created_at),
        "dissolved_at": iso(row.dissolved_at),
        "dissolved_reason": row.dissolved_reason,
    }


def group_member(member: GroupMember, user: User, *, online: bool) -> dict:
    return {
        "user": user_public(user),
        "role": member.role,
        "muted_until": iso(member.muted_until),
        "joined_at": iso(member.joined_at),
        "online": online,
    }


def group_removal(row: GroupRemoval, user: User) -> dict:
    return {"user": user_public(user), "removed_by_id": row.removed_by_id, "removed_at": iso(row.created_at)}


def join_request(row: GroupJoinRequest, user: User, group_row: Group) -> dict:
    return {
        "id": row.id,
        "group": group_brief(group_row),
        "user": user_public(user),
        "message": row.message,
        "status": row.status,
        "created_at": iso(row.created_at),
        "responded_at": iso(row.responded_at),
    }


def upload(row: Upload) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "mime": row.mime,
        "ext": row.ext,
        "size": row.size,
        "w": row.width,
        "h": row.height,
        "duration": row.duration,
        "name": row.original_name,
        "url": row.url,
        "thumb": row.thumb_url,
        "created_at": iso(row.created_at),
    }


def typing(conversation_id: int, user: User) -> dict:
    return {"conversation_id": conversation_id, "user_id": user.id, "nickname": user.nickname}
