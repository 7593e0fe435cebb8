"""Online/offline announcements: who may see a user's presence, and last-seen times.

A user's presence (online, last seen) is visible to the user, their friends and the peers of
their direct conversations, minus anyone blocked in either direction; the robot's to everyone
who has not blocked it. Sharing a group gives no presence: groups are large and open to
strangers. Everyone else sees `online: false` and `last_seen_at: null`, as for a user who was
never seen.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, select, union, update
from sqlalchemy.orm import aliased

from app import realtime
from app.bots.state import is_enabled as robot_enabled
from app.extensions import db
from app.models import Block, Conversation, ConversationMember, Friendship, User, counterparts, utcnow
from app.presenters import iso


def shows_online(user) -> bool:
    """The robot is online while it is switched on; it never holds a socket."""
    return user.is_bot and robot_enabled()


def _direct_peers(user_id: int):
    mine = aliased(ConversationMember)
    theirs = aliased(ConversationMember)
    return (
        select(theirs.user_id.label("uid"))
        .join(mine, and_(mine.conversation_id == theirs.conversation_id, mine.user_id == user_id))
        .join(Conversation, and_(Conversation.id == mine.conversation_id, Conversation.kind == "direct"))
        .where(theirs.user_id != user_id)
    )


def _blocked_either_way(user_id: int):
    return union(
        select(Block.blocked_user_id.label("uid")).where(Block.user_id == user_id),
        select(Block.user_id.label("uid")).where(Block.blocked_user_id == user_id),
    )


def interested_user_ids(user_id: int) -> list[int]:
    """Friends and direct-chat peers, minus blocks both ways: who hears the user's presence."""
    friends_a = select(Friendship.user_b_id.label("uid")).where(Friendship.user_a_id == user_id)
    friends_b = select(Friendship.user_a_id.label("uid")).where(Friendship.user_b_id == user_id)
    candidates = union(_direct_peers(user_id), friends_a, friends_b).subquery()
    blocked = _blocked_either_way(user_id).subquery()
    return list(
        db.session.scalars(select(candidates.c.uid).where(candidates.c.uid.not_in(select(blocked.c.uid))))
    )


def visible_to(viewer_id: int, user_ids) -> set[int]:
    """Which of `user_ids` the viewer may see the presence of (see the module's docstring)."""
    ids = set(user_ids)
    if not ids:
        return set()
    peers = _direct_peers(viewer_id).subquery()
    candidates = union(
        select(Friendship.user_b_id.label("uid")).where(
            Friendship.user_a_id == viewer_id, Friendship.user_b_id.in_(ids)
        ),
        select(Friendship.user_a_id.label("uid")).where(
            Friendship.user_b_id == viewer_id, Friendship.user_a_id.in_(ids)
        ),
        select(peers.c.uid).where(peers.c.uid.in_(ids)),
        select(User.id.label("uid")).where(User.is_bot, User.id.in_(ids)),
    )
    visible = set(db.session.scalars(candidates))
    visible -= counterparts(Block.user_id, Block.blocked_user_id, viewer_id, ids)
    if viewer_id in ids:
        visible.add(viewer_id)
    return visible


def announce_presence(user_id: int, *, online: bool, seen_at: datetime | None = None) -> None:
    """Tell the user's devices and everyone who may see it; going offline records last seen
    (`seen_at`, when the sockets were last known alive, or now)."""
    now = seen_at or utcnow()
    if not online:
        db.session.execute(update(User).where(User.id == user_id).values(last_seen_at=now))
        db.session.commit()
    payload = {"user_id": user_id, "online": online, "last_seen_at": None if online else iso(now)}
    targets = interested_user_ids(user_id)
    realtime.emit_to_users("presence", payload, [*targets, user_id])


def settle_presence(store) -> None:
    """The presence keeper's round, run by every process: refresh this process's sockets, then
    announce the users whose sockets all expired (their process died without saying so) and
    those this process brought back after a late refresh. The store hands each user to one
    process only."""
    for user_id in store.refresh():
        announce_presence(user_id, online=True)
    for user_id, last_alive in store.sweep():
        announce_presence(user_id, online=False, seen_at=datetime.fromtimestamp(last_alive, UTC))


def presence_of(viewer_id: int, user_ids: list[int]) -> list[dict]:
    """Presence of the existing users among `user_ids`, as the viewer may see it."""
    visible = visible_to(viewer_id, user_ids)
    online = realtime.presence().online(visible)
    rows = db.session.execute(
        select(User.id, User.last_seen_at, User.is_bot).where(User.id.in_(user_ids))
    ).all()
    online |= {row.id for row in rows if row.id in visible and shows_online(row)}
    return [
        {
            "user_id": uid,
            "online": uid in online,
            "last_seen_at": None if uid in online or uid not in visible else iso(seen),
        }
        for uid, seen, _ in rows
    ]
