"""Contact search from the same box as message search: my friends by nickname, username or the
remark I gave them, and the groups I am in by name."""

from __future__ import annotations

from sqlalchemy import case, func, or_, select

from app import presenters
from app.extensions import db
from app.models import Friendship, Group, GroupMember
from app.search.messages import clean_query
from app.social.services import friends_statement, like_pattern, present_friends

CONTACTS_MAX = 20


def search_contacts(user_id: int, q: str) -> dict:
    """At most CONTACTS_MAX friends and CONTACTS_MAX groups whose names hold `q` (any case), by
    name; three statements, however many match."""
    pattern = like_pattern(clean_query(q))
    statement, friend = friends_statement(user_id)
    # What the user calls the friend: remark_a when the user is A, else remark_b.
    mine = case((Friendship.user_a_id == user_id, Friendship.remark_a), else_=Friendship.remark_b)
    remark_of = func.lower(func.coalesce(mine, ""))
    rows = db.session.execute(
        statement.where(
            or_(
                func.lower(friend.nickname).like(pattern, escape="\\"),
                friend.username_key.like(pattern, escape="\\"),
                remark_of.like(pattern, escape="\\"),
            )
        )
        .order_by(func.lower(friend.nickname), friend.id)
        .limit(CONTACTS_MAX)
    ).all()
    friends = present_friends(user_id, rows)
    groups = db.session.scalars(
        select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user_id, func.lower(Group.name).like(pattern, escape="\\"))
        .order_by(func.lower(Group.name), Group.id)
        .limit(CONTACTS_MAX)
    )
    return {"friends": friends, "groups": [presenters.group(group) for group in groups]}
