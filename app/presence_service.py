"""Online/offline announcements: who may see a user's presence, and last-seen times.

A user's presence (online, last seen) is visible to the user, their friends and the peers of
their direct conversations, minus anyone blocked in either direction; the robot's to everyone
who has not blocked it. Sharing a group gives no presence: groups are large and open to
strangers. Everyone else sees `online: false` and `last_seen_at: null`, as for a user who was
never seen.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, bindparam, select, union

from app import realtime
from app.bots.state import is_enabled as robot_enabled
from app.extensions import db
from app.models import Block, Conversation, ConversationMember, Friendship, User, counterparts, utcnow
from app.presenters import iso


def shows_online(user) -> bool:
    """The robot is online while it is switched on; it never holds a socket."""
    return user.is_bot and robot_enabled()


# The statements are built once, at import, on the tables (plain Core: no ORM entity to load,
# so nothing of the ORM's per-execution set-up), with bound parameters: `:uid` is the user,
# `:ids` the users asked about. Building them per call cost more than running them, and every
# copy built was memory for the garbage collector to find.
_UID = bindparam("uid")
_members, _conversations = ConversationMember.__table__, Conversation.__table__
_friends, _blocks, _users = Friendship.__table__, Block.__table__, User.__table__


def _direct_peers():
    mine, theirs = _members.alias(), _members.alias()
    return (
        select(theirs.c.user_id.label("uid"))
        .join(mine, and_(mine.c.conversation_id == theirs.c.conversation_id, mine.c.user_id == _UID))
        .join(
            _conversations,
            and_(_conversations.c.id == mine.c.conversation_id, _conversations.c.kind == "direct"),
        )
        .where(theirs.c.user_id != _UID)
    )


def _interested_statement():
    friends_a = select(_friends.c.user_b_id.label("uid")).where(_friends.c.user_a_id == _UID)
    friends_b = select(_friends.c.user_a_id.label("uid")).where(_friends.c.user_b_id == _UID)
    candidates = union(_direct_peers(), friends_a, friends_b).subquery()
    blocked = union(
        select(_blocks.c.blocked_user_id.label("uid")).where(_blocks.c.user_id == _UID),
        select(_blocks.c.user_id.label("uid")).where(_blocks.c.blocked_user_id == _UID),
    ).subquery()
    return select(candidates.c.uid).where(candidates.c.uid.not_in(select(blocked.c.uid)))


def _visible_candidates_statement():
    ids = bindparam("ids", expanding=True)
    peers = _direct_peers().subquery()
    friend_a, friend_b = _friends.c.user_a_id, _friends.c.user_b_id
    return union(
        select(friend_b.label("uid")).where(friend_a == _UID, friend_b.in_(ids)),
        select(friend_a.label("uid")).where(friend_b == _UID, friend_a.in_(ids)),
        select(peers.c.uid).where(peers.c.uid.in_(ids)),
        select(_users.c.id.label("uid")).where(_users.c.is_bot, _users.c.id.in_(ids)),
    )


_INTERESTED = _interested_statement()
_VISIBLE_CANDIDATES = _visible_candidates_statement()
_RECORD_LAST_SEEN = _users.update().where(_users.c.id == _UID).values(last_seen_at=bindparam("seen"))


def interested_user_ids(user_id: int) -> list[int]:
    """Friends and direct-chat peers, minus blocks both ways: who hears the user's presence."""
    return list(db.session.scalars(_INTERESTED, {"uid": user_id}))


def visible_to(viewer_id: int, user_ids) -> set[int]:
    """Which of `user_ids` the viewer may see the presence of (see the module's docstring)."""
    ids = set(user_ids)
    if not ids:
        return set()
    visible = set(db.session.scalars(_VISIBLE_CANDIDATES, {"uid": viewer_id, "ids": list(ids)}))
    visible -= counterparts(Block.user_id, Block.blocked_user_id, viewer_id, ids)
    if viewer_id in ids:
        visible.add(viewer_id)
    return visible


def announce_presence(user_id: int, *, online: bool, seen_at: datetime | None = None) -> None:
    """Tell the user's devices and everyone who may see it; going offline records last seen
    (`seen_at`, when the sockets were last known alive, or now)."""
    now = seen_at or utcnow()
    if not online:
        db.session.execute(_RECORD_LAST_SEEN, {"uid": user_id, "seen": now})
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
