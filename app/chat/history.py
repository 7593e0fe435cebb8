"""History: a member's messages of one conversation, page by page by seq."""

from __future__ import annotations

from sqlalchemy import select

from app import presenters
from app.chat.access import require_member, visible_window
from app.extensions import db
from app.models import Conversation, Message, User

HISTORY_PAGE_MAX = 100


def history(
    user_id: int,
    conversation_id: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> dict:
    """A page of messages by seq, oldest first, within what the member may see."""
    member = require_member(user_id, conversation_id, active=False)
    lowest, highest = visible_window(member, db.session.get(Conversation, conversation_id))
    query = (
        select(Message, User)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Message.conversation_id == conversation_id, Message.seq > lowest, Message.seq <= highest)
    )
    if after_seq is not None:
        query = query.where(Message.seq > after_seq)
        if before_seq is not None:
            query = query.where(Message.seq < before_seq)
        rows = db.session.execute(query.order_by(Message.seq).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        if before_seq is not None:
            query = query.where(Message.seq < before_seq)
        rows = db.session.execute(query.order_by(Message.seq.desc()).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    return {
        "messages": [presenters.message(message, sender) for message, sender in rows],
        "has_more": has_more,
    }
