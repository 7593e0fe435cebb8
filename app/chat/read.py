"""Read state: each member's read position, unread counts, and who has read a message."""

from __future__ import annotations

from sqlalchemy import func, select, update

from app import presenters, realtime
from app.chat.access import blocked_pair_clause, require_member, visible_message
from app.chat.stream import next_stream_pos
from app.errors import not_found
from app.extensions import db
from app.models import Conversation, ConversationMember, MessageMention, User


def mark_read(user_id: int, conversation_id: int, seq: int) -> dict:
    """Move the read position up to `seq` (never backwards, never past the last message)."""
    member = require_member(user_id, conversation_id, active=False)
    conversation = db.session.get(Conversation, conversation_id)
    visible_last = member.left_seq if member.left_seq is not None else conversation.last_seq
    target = min(seq, visible_last)
    if target <= member.read_seq:
        return {
            "conversation_id": conversation_id,
            "read_seq": member.read_seq,
            "unread": unread_count(member, conversation),
            "unread_mentions": unread_mentions(member, conversation),
        }
    db.session.execute(
        update(ConversationMember)
        .where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.user_id == user_id,
            ConversationMember.read_seq < target,
        )
        # A chat deleted from the list and brought back by a new message stays once read.
        .values(read_seq=target, **({"hidden": False} if member.active else {}))
    )
    pos = next_stream_pos()
    db.session.execute(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id)
        .values(stream_pos=pos)
    )
    db.session.refresh(member)
    state = {
        "conversation_id": conversation_id,
        "read_seq": member.read_seq,
        "unread": unread_count(member, conversation),
        "unread_mentions": unread_mentions(member, conversation),
    }
    receipt = {"conversation_id": conversation_id, "user_id": user_id, "read_seq": member.read_seq}
    # The reader's own devices always learn their read position; the peer gets a receipt only
    # while neither of them blocked the other.
    own = {**receipt, "unread": state["unread"], "unread_mentions": state["unread_mentions"]}
    realtime.emit_after_commit("conversation:read", own, [user_id])
    if conversation.kind == "direct":
        peers = db.session.scalars(
            select(ConversationMember.user_id).where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.active.is_(True),
                ConversationMember.user_id != user_id,
                ~blocked_pair_clause(ConversationMember.user_id, user_id),
            )
        ).all()
        realtime.emit_after_commit("receipt:read", receipt, list(peers))
    db.session.commit()
    return state


def seen_seq(member: ConversationMember, conversation: Conversation) -> int:
    """Up to where nothing counts as unread: read, from before joining, or purged."""
    return max(member.read_seq, member.joined_seq, conversation.purged_seq or 0)


def unread_count(member: ConversationMember, conversation: Conversation) -> int:
    last = member.left_seq if member.left_seq is not None else conversation.last_seq
    return max(0, last - seen_seq(member, conversation))


def unread_mentions(member: ConversationMember, conversation: Conversation) -> int:
    """How many messages the member has not read yet call them (by name or @all)."""
    last = member.left_seq if member.left_seq is not None else conversation.last_seq
    seen = seen_seq(member, conversation)
    if last <= seen:
        return 0
    return db.session.scalar(
        select(func.count())
        .select_from(MessageMention)
        .where(
            MessageMention.user_id == member.user_id,
            MessageMention.conversation_id == member.conversation_id,
            MessageMention.seq > seen,
            MessageMention.seq <= last,
        )
    )


def readers(user_id: int, conversation_id: int, seq: int) -> dict:
    """Who has read message `seq`, derived from the members' read positions.

    Only for a message inside the caller's window: a former member learns nothing of what came
    after they left, a new member nothing of what came before they joined."""
    member = require_member(user_id, conversation_id, active=False)
    message = visible_message(member, seq)
    if message is None:
        raise not_found("message")
    rows = db.session.execute(
        select(User, ConversationMember.read_seq)
        .join(ConversationMember, ConversationMember.user_id == User.id)
        .where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.active.is_(True),
            ConversationMember.joined_seq < seq,
            User.id != message.sender_id,
            # People who blocked each other share no read receipts, either way.
            ~blocked_pair_clause(User.id, user_id),
        )
        .order_by(User.id)
    ).all()
    read = [presenters.user_public(user) for user, read_seq in rows if read_seq >= seq]
    unread = [presenters.user_public(user) for user, read_seq in rows if read_seq < seq]
    return {"seq": seq, "read_by": read, "unread_by": unread}
