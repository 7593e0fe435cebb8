"""Who may do what in a conversation: membership, the right to speak, blocks, and the window of
messages a member may see. Every chat service checks access here; nothing here writes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.orm import aliased

from app import speak_cache
from app.errors import ApiError, not_found
from app.extensions import db
from app.models import (
    Block,
    Conversation,
    ConversationMember,
    Friendship,
    Group,
    GroupMember,
    Message,
    MessageHide,
    Sanction,
    User,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class Speaker:
    """The sender as a message shows them, and whether they are the robot."""

    id: int
    username: str
    nickname: str
    avatar_url: str | None
    is_bot: bool
    # Who sends is never a deleted account; the field makes a Speaker present like a User.
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """The other member of a direct conversation."""

    id: int
    is_bot: bool


@dataclass(frozen=True, slots=True)
class ConversationRef:
    id: int
    kind: str


@dataclass(frozen=True, slots=True)
class GroupState:
    id: int
    muted_all: bool
    dissolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class SendContext:
    """Everything the right to speak in a conversation depends on, for one sender, as plain
    values (no ORM rows): it outlives its transaction in this process's right-to-speak cache
    (app/speak_cache.py). Mutes are kept as their end and judged with the clock at each use."""

    conversation: ConversationRef
    sender: Speaker
    active: bool
    group: GroupState | None
    role: str | None
    member_muted_until: datetime | None
    site_muted_forever: bool
    site_muted_until: datetime | None
    peer: Peer | None
    friends: bool
    blocked: bool
    peer_active: bool


def _site_mutes(user_id_column, now):
    """Whether a site mute without end holds the user, and when the last one with an end ends."""
    holds = (Sanction.user_id == user_id_column, Sanction.kind == "mute", Sanction.lifted_at.is_(None))
    forever = select(Sanction.id).where(*holds, Sanction.expires_at.is_(None)).exists()
    until = select(func.max(Sanction.expires_at)).where(*holds, Sanction.expires_at > now).scalar_subquery()
    return forever, until


def require_member(user_id: int, conversation_id: int, *, active: bool = True) -> ConversationMember:
    """The user's membership of the conversation; unknown conversations and strangers get 404."""
    member = db.session.get(ConversationMember, (conversation_id, user_id))
    if member is None:
        raise not_found("conversation")
    if active and not member.active:
        raise ApiError("not_member", "You are no longer a member of this conversation.", 403)
    return member


def locked_member(user_id: int, conversation_id: int) -> ConversationMember:
    """The user's membership row (former members too), locked until the transaction ends — the
    lock order: conversation, members, stream counter — so two devices acting at once queue up.
    Unknown conversations and strangers get 404."""
    member = db.session.scalar(
        select(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id)
        .with_for_update()
    )
    if member is None:
        raise not_found("conversation")
    return member


def visible_message(member: ConversationMember, seq: int) -> Message | None:
    """Message `seq` of the member's conversation if they can see it: inside their window (a
    former member learns nothing of what came after they left, a new member nothing of what came
    before they joined) and not deleted for them. None otherwise."""
    lowest, highest = visible_window(member, db.session.get(Conversation, member.conversation_id))
    if not lowest < seq <= highest:
        return None
    message = db.session.scalar(
        select(Message).where(Message.conversation_id == member.conversation_id, Message.seq == seq)
    )
    if message is None or db.session.get(MessageHide, (member.user_id, message.id)) is not None:
        return None
    return message


@functools.cache
def _send_context_query():
    """The statement of `send_context`, built once: constructing this many-join statement
    costs several times the CPU the database needs to run it, on every message sent."""
    user_id = bindparam("user_id")
    peer_member = aliased(ConversationMember)
    peer = aliased(User)
    friends = (
        select(Friendship.id)
        .where(
            or_(
                and_(Friendship.user_a_id == user_id, Friendship.user_b_id == peer.id),
                and_(Friendship.user_a_id == peer.id, Friendship.user_b_id == user_id),
            )
        )
        .exists()
    )
    site_muted_forever, site_muted_until = _site_mutes(ConversationMember.user_id, bindparam("now"))
    # Plain columns in SendContext's order: no ORM entity is built for a send.
    return (
        select(
            Conversation.id,
            Conversation.kind,
            User.id,
            User.username,
            User.nickname,
            User.avatar_url,
            User.is_bot,
            ConversationMember.active,
            Group.id,
            Group.muted_all,
            Group.dissolved_at,
            GroupMember.role,
            GroupMember.muted_until,
            site_muted_forever,
            site_muted_until,
            peer.id,
            peer.is_bot,
            friends,
            blocked_pair_clause(peer.id, user_id),
            peer_member.active,
        )
        .join(Conversation, Conversation.id == ConversationMember.conversation_id)
        .join(User, User.id == ConversationMember.user_id)
        .outerjoin(Group, Group.conversation_id == Conversation.id)
        .outerjoin(
            GroupMember,
            and_(GroupMember.group_id == Group.id, GroupMember.user_id == ConversationMember.user_id),
        )
        .outerjoin(
            peer_member,
            and_(
                Conversation.kind == "direct",
                peer_member.conversation_id == Conversation.id,
                peer_member.user_id != user_id,
            ),
        )
        .outerjoin(peer, peer.id == peer_member.user_id)
        .where(
            ConversationMember.conversation_id == bindparam("conversation_id"),
            ConversationMember.user_id == user_id,
        )
    )


def send_context(user_id: int, conversation_id: int) -> SendContext:
    """Everything the right to speak depends on: from this process's cache, else in one query
    (the services that change any of it drop the cached entries, on every process)."""
    context, stamp = speak_cache.get(user_id, conversation_id)
    if context is None:
        context = _load_send_context(user_id, conversation_id)
        speak_cache.put(user_id, conversation_id, stamp, context)
    return context


def _load_send_context(user_id: int, conversation_id: int) -> SendContext:
    row = db.session.execute(
        _send_context_query(), {"user_id": user_id, "conversation_id": conversation_id, "now": utcnow()}
    ).first()
    if row is None:
        raise not_found("conversation")
    (c_id, kind, u_id, username, nickname, avatar_url, is_bot, active) = row[:8]
    (g_id, muted_all, dissolved_at, role, member_muted_until, forever, until) = row[8:15]
    (peer_id, peer_is_bot, friends, blocked, peer_active) = row[15:]
    return SendContext(
        conversation=ConversationRef(c_id, kind),
        sender=Speaker(u_id, username, nickname, avatar_url, is_bot),
        active=active,
        group=None if g_id is None else GroupState(g_id, muted_all, dissolved_at),
        role=role,
        member_muted_until=member_muted_until,
        site_muted_forever=bool(forever),
        site_muted_until=until,
        peer=None if peer_id is None else Peer(peer_id, peer_is_bot),
        friends=bool(friends),
        blocked=bool(blocked),
        peer_active=bool(peer_active),
    )


def check_can_speak(context: SendContext) -> None:
    """Refuse a send the context does not allow; mutes are compared with the clock now."""
    if context.conversation.kind == "notice":
        # Only the server API writes there (app/notices.py); reading and forwarding out are fine.
        raise ApiError("read_only", "Notices are read-only; nobody can write into them.", 403)
    now = utcnow()
    if context.site_muted_forever or (
        context.site_muted_until is not None and context.site_muted_until > now
    ):
        raise ApiError("muted", "You are muted and cannot send messages.", 403)
    group = context.group
    if group is not None and group.dissolved_at is not None:
        raise ApiError("group_dissolved", "This group was dissolved; it is read-only.", 403)
    if not context.active:
        raise ApiError("not_member", "You are no longer a member of this conversation.", 403)
    if context.peer is not None and not (context.peer.is_bot or context.sender.is_bot):
        if context.blocked:
            raise ApiError("blocked", "You cannot message this user.", 403)
        if not context.friends:
            raise ApiError("not_friends", "You can only message your friends.", 403)
    if group is not None:
        if group.muted_all and context.role == "member":
            raise ApiError("group_muted", "Only the owner and admins can speak in this group now.", 403)
        if context.member_muted_until is not None and context.member_muted_until > now:
            raise ApiError("member_muted", "You are muted in this group.", 403)


_members = ConversationMember.__table__
# Built once: it runs for every group message sent.
_ACTIVE_MEMBER_IDS = select(_members.c.user_id).where(
    _members.c.conversation_id == bindparam("conversation_id"), _members.c.active.is_(True)
)


def active_member_ids(conversation_id: int) -> list[int]:
    return list(db.session.connection().scalars(_ACTIVE_MEMBER_IDS, {"conversation_id": conversation_id}))


def visible_window(member: ConversationMember, conversation: Conversation) -> tuple[int, int]:
    """The seqs a member may see: after the point they joined (and after what the retention
    policy purged), up to the point they left (the conversation's last message while they are
    still in)."""
    highest = member.left_seq if member.left_seq is not None else conversation.last_seq
    return max(member.joined_seq, conversation.purged_seq or 0), highest


def visible_window_bounds(user_id, conversation_id):
    """`visible_window` as two scalar subqueries (lowest, highest) for the user and conversation
    given as values or bound parameters, to put inside the statement that reads the messages.
    Both are NULL for someone who is not a member, so nothing compares true against them."""
    member = (ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id)
    joined, purged = ConversationMember.joined_seq, Conversation.purged_seq
    lowest = (
        select(case((purged > joined, purged), else_=joined))
        .select_from(ConversationMember)
        .join(Conversation, Conversation.id == ConversationMember.conversation_id)
        .where(*member)
        .scalar_subquery()
    )
    highest = (
        select(func.coalesce(ConversationMember.left_seq, Conversation.last_seq))
        .join(Conversation, Conversation.id == ConversationMember.conversation_id)
        .where(*member)
        .scalar_subquery()
    )
    return lowest, highest


def are_friends(user_id: int, other_id: int) -> bool:
    low, high = sorted((user_id, other_id))
    query = select(Friendship.id).where(Friendship.user_a_id == low, Friendship.user_b_id == high)
    return db.session.scalar(query) is not None


def is_blocked_pair(user_id: int, other_id: int) -> bool:
    return bool(db.session.scalar(select(blocked_pair_clause(user_id, other_id))))


def blocked_pair_clause(one, other):
    """True when either of two users (columns or values) blocked the other."""
    return (
        select(Block.user_id)
        .where(
            or_(
                and_(Block.user_id == one, Block.blocked_user_id == other),
                and_(Block.user_id == other, Block.blocked_user_id == one),
            )
        )
        .exists()
    )
