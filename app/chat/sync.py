"""Catch-up: everything that changed for a user after a cursor (a stream position)."""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from app import presenters
from app.chat.conversations import conversation_summaries, listed
from app.chat.plays import mark_played, plays_between
from app.chat.stream import current_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.models import Conversation, ConversationMember, Message, MessageHide, User

SYNC_PAGE_MAX = 500


def parse_cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 19:
        raise ApiError("invalid_cursor", "The sync cursor is malformed.", 400, {"cursor": "not a cursor"})
    return int(raw)


def sync(user_id: int, cursor: int, limit: int = SYNC_PAGE_MAX) -> dict:
    """Everything that changed for the user after `cursor`: new (or changed) messages in their
    conversations in stream order (not those deleted for the user), the current summary of each
    conversation touched (`{"id", "hidden": true}` for one taken off their list), and the
    messages the user deleted for themselves (`hidden`).

    Replaying pages until `has_more` is false leaves a client in the state a fresh load gives.
    """
    high = current_stream_pos()
    member = ConversationMember
    rows = db.session.execute(
        select(Message, User)
        .join(
            member,
            and_(member.conversation_id == Message.conversation_id, member.user_id == user_id),
        )
        .outerjoin(User, User.id == Message.sender_id)
        .where(
            Message.stream_pos > cursor,
            Message.stream_pos <= high,
            Message.seq > member.joined_seq,
            or_(member.left_seq.is_(None), Message.seq <= member.left_seq),
            # Not the ones the user deleted for themselves.
            ~select(MessageHide.message_id)
            .where(MessageHide.user_id == user_id, MessageHide.message_id == Message.id)
            .exists(),
        )
        .order_by(Message.stream_pos)
        .limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    upto = rows[-1][0].stream_pos if has_more else high
    summaries = conversation_summaries([user_id], changed_after=cursor, changed_upto=upto)
    # Conversations taken off the user's list in this range (left, or deleted from the list on
    # some device): the same `{"id", "hidden": true}` item the live `conversation:update` carries.
    gone = db.session.scalars(
        select(member.conversation_id)
        .join(Conversation, Conversation.id == member.conversation_id)
        .where(
            member.user_id == user_id,
            ~listed(member),
            member.stream_pos > cursor,
            member.stream_pos <= upto,
        )
        .order_by(member.conversation_id)
    ).all()
    summaries += [{"id": conversation_id, "hidden": True} for conversation_id in gone]
    # Messages deleted for the user in this page's range (a batch shares one position).
    hides = MessageHide
    hidden = db.session.execute(
        select(hides.conversation_id, hides.seq)
        .where(hides.user_id == user_id, hides.stream_pos > cursor, hides.stream_pos <= upto)
        .order_by(hides.stream_pos, hides.conversation_id, hides.seq)
    ).all()
    messages = mark_played(user_id, [presenters.message(message, sender) for message, sender in rows])
    return {
        "messages": messages,
        "conversations": summaries,
        "hidden": [{"conversation_id": conversation_id, "seq": seq} for conversation_id, seq in hidden],
        # Voice messages the user played in this page's range (on some device).
        "played": plays_between(user_id, cursor, upto),
        "cursor": str(upto),
        "has_more": has_more,
    }
