"""Contact search from the same box as message search: my friends by nickname, username or the
remark I gave them, and the groups I am in by name."""

from __future__ import annotations

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from app import presenters, realtime
from app.extensions import db
from app.models import Friendship, Group, GroupMember, User
from app.presence_service import visible_to
from app.search.messages import clean_query

CONTACTS_MAX = 20


def _like(query: str) -> str:
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_contacts(user_id: int, q: str) -> dict:
    """At most CONTACTS_MAX friends and CONTACTS_MAX groups whose names hold `q` (any case), by
    name; three statements, however many match."""
    pattern = _like(clean_query(q))
    friend = aliased(User, name="friend")
    mine_is_a = Friendship.user_a_id == user_id
    remark_of = func.lower(func.coalesce(_my_remark(mine_is_a), ""))
    rows = db.session.execute(
        select(Friendship, friend)
        .join(
            friend,
            or_(
                and_(mine_is_a, friend.id == Friendship.user_b_id),
                and_(Friendship.user_b_id == user_id, friend.id == Friendship.user_a_id),
            ),
        )
        .where(
            or_(Friendship.user_a_id == user_id, Friendship.user_b_id == user_id),
            or_(
                func.lower(friend.nickname).like(pattern, escape="\\"),
                friend.username_key.like(pattern, escape="\\"),
                remark_of.like(pattern, escape="\\"),
            ),
        )
        .order_by(func.lower(friend.nickname), friend.id)
        .limit(CONTACTS_MAX)
    ).all()
    ids = [row[1].id for row in rows]
    online = realtime.presence().online(ids)
    visible = visible_to(user_id, ids)
    friends = [
        presenters.friend(
            person,
            pair.remark_a if pair.user_a_id == user_id else pair.remark_b,
            pair.created_at,
            online=person.id in online,
            visible=person.id in visible,
        )
        for pair, person in rows
    ]
    groups = db.session.scalars(
        select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user_id, func.lower(Group.name).like(pattern, escape="\\"))
        .order_by(func.lower(Group.name), Group.id)
        .limit(CONTACTS_MAX)
    )
    return {"friends": friends, "groups": [presenters.group(group) for group in groups]}


def _my_remark(mine_is_a):
    """What the user calls the friend: remark_a when the user is A, else remark_b."""
    return case((mine_is_a, Friendship.remark_a), else_=Friendship.remark_b)
