"""Online/offline announcements: who hears about a user's presence, and last-seen times."""

from __future__ import annotations

from sqlalchemy import and_, select, union, update
from sqlalchemy.orm import aliased

from app import realtime
from app.bots.state import shows_online
from app.extensions import db
from app.models import Conversation, ConversationMember, Friendship, User, utcnow
from app.presenters import iso


def interested_user_ids(user_id: int) -> list[int]:
    """Friends, and peers of the user's direct conversations."""
    mine = aliased(ConversationMember)
    theirs = aliased(ConversationMember)
    peers = (
        select(theirs.user_id)
        .join(mine, and_(mine.conversation_id == theirs.conversation_id, mine.user_id == user_id))
        .join(Conversation, and_(Conversation.id == mine.conversation_id, Conversation.kind == "direct"))
        .where(theirs.user_id != user_id)
    )
    friends_a = select(Friendship.user_b_id).where(Friendship.user_a_id == user_id)
    friends_b = select(Friendship.user_a_id).where(Friendship.user_b_id == user_id)
    return list(db.session.scalars(union(peers, friends_a, friends_b)))


def announce_presence(user_id: int, *, online: bool) -> None:
    now = utcnow()
    if not online:
        db.session.execute(update(User).where(User.id == user_id).values(last_seen_at=now))
        db.session.commit()
    payload = {"user_id": user_id, "online": online, "last_seen_at": None if online else iso(now)}
    targets = interested_user_ids(user_id)
    realtime.emit_to_users("presence", payload, [*targets, user_id])


def presence_of(user_ids: list[int]) -> list[dict]:
    online = realtime.presence().online(user_ids)
    rows = db.session.execute(
        select(User.id, User.last_seen_at, User.is_bot).where(User.id.in_(user_ids))
    ).all()
    online |= {row.id for row in rows if shows_online(row)}
    return [
        {"user_id": uid, "online": uid in online, "last_seen_at": None if uid in online else iso(seen)}
        for uid, seen, _ in rows
    ]
