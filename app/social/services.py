"""Finding people, friend requests, friends with remarks, and blocks."""

from __future__ import annotations

from blinker import signal
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import presenters, realtime, speak_cache
from app.auth.services import ban_clause
from app.chat.conversations import add_members, stamp_members
from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import _l, word
from app.models import (
    Block,
    Conversation,
    ConversationMember,
    FriendRequest,
    Friendship,
    User,
    counterparts,
    utcnow,
)
from app.paging import keyset_page
from app.presence_service import visible_to

# Sent with (user id, friend_id=...) when two users become friends, before the commit: the
# `friend.added` webhook event (app/webhooks/events.py).
friends_made = signal("parley.friends-made")

PAGE_MAX = 100


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def friendship(user_id: int, other_id: int) -> Friendship | None:
    low, high = _pair(user_id, other_id)
    return db.session.scalar(
        select(Friendship).where(Friendship.user_a_id == low, Friendship.user_b_id == high)
    )


def is_blocked(blocker_id: int, blocked_id: int) -> bool:
    return db.session.get(Block, (blocker_id, blocked_id)) is not None


def _active_user(user_id: int) -> User:
    user = db.session.scalar(
        select(User).where(User.id == user_id, User.deleted_at.is_(None), ~ban_clause(User.id))
    )
    if user is None:
        raise not_found("user")
    return user


# --- search --------------------------------------------------------------------------------


def like_pattern(text: str) -> str:
    """`LIKE '%text%'` for any letter case (compare with a lower-cased column), with `%`, `_` and
    the escape character `\\` taken literally (use `escape="\\"`)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_users(viewer_id: int, query: str, after: str | None, limit: int) -> dict:
    """Users whose username or nickname contains `query` (any case), by username; banned
    and deleted users are left out. Paged by the last username seen (`after`)."""
    pattern = like_pattern(query)
    statement = (
        select(User)
        .where(
            or_(
                User.username_key.like(pattern, escape="\\"),
                func.lower(User.nickname).like(pattern, escape="\\"),
            ),
            ~ban_clause(User.id),
            User.is_bot.is_(False),
            User.deleted_at.is_(None),
        )
        .order_by(User.username_key)
        .limit(limit + 1)
    )
    if after:
        statement = statement.where(User.username_key > after.lower())
    users = list(db.session.scalars(statement))
    has_more = len(users) > limit
    users = users[:limit]
    friends = _friend_ids(viewer_id, [user.id for user in users])
    return {
        "users": [{**presenters.user_public(user), "is_friend": user.id in friends} for user in users],
        "next": users[-1].username_key if has_more else None,
    }


def _friend_ids(user_id: int, candidates: list[int]) -> set[int]:
    return counterparts(Friendship.user_a_id, Friendship.user_b_id, user_id, candidates)


# --- friend requests -----------------------------------------------------------------------


def _request_payload(request: FriendRequest, sender: User, recipient: User) -> dict:
    return presenters.friend_request(request, sender, recipient)


def send_friend_request(user_id: int, to_user_id: int, message: str) -> tuple[dict, bool]:
    """Ask to be friends; returns the request and whether it is new.

    A pending request in the same direction is returned as it is; if the other user has
    already asked, their request is accepted instead.
    """
    if to_user_id == user_id:
        raise ApiError("cannot_add_self", "You cannot add yourself as a friend.", 400)
    recipient = _active_user(to_user_id)
    if recipient.is_bot:
        raise ApiError("cannot_add_bot", "The robot needs no friend request: just open its chat.", 400)
    sender = db.session.get(User, user_id)
    if friendship(user_id, to_user_id) is not None:
        raise ApiError("already_friends", "You are already friends.", 409)
    if is_blocked(to_user_id, user_id) or is_blocked(user_id, to_user_id):
        raise ApiError("blocked", "You cannot send this user a request.", 403)
    pending = db.session.scalar(
        select(FriendRequest).where(
            FriendRequest.from_user_id == user_id,
            FriendRequest.to_user_id == to_user_id,
            FriendRequest.status == "pending",
        )
    )
    if pending is not None:
        return _request_payload(pending, sender, recipient), False
    reverse = db.session.scalar(
        select(FriendRequest).where(
            FriendRequest.from_user_id == to_user_id,
            FriendRequest.to_user_id == user_id,
            FriendRequest.status == "pending",
        )
    )
    if reverse is not None:
        return respond_to_request(user_id, reverse.id, accept=True), False
    request = FriendRequest(from_user_id=user_id, to_user_id=to_user_id, message=message)
    db.session.add(request)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return send_friend_request(user_id, to_user_id, message)
    payload = _request_payload(request, sender, recipient)
    realtime.emit_after_commit("friend:request", payload, [user_id, to_user_id])
    db.session.commit()
    return payload, True


def respond_to_request(user_id: int, request_id: int, *, accept: bool) -> dict:
    """The recipient accepts or rejects a pending request; accepting makes them friends and
    opens (or revives) their direct conversation on both users' devices."""
    request = db.session.get(FriendRequest, request_id)
    if request is None or user_id not in (request.to_user_id, request.from_user_id):
        raise not_found("friend request")
    if request.to_user_id != user_id:
        raise ApiError("forbidden", "Only the recipient can answer a friend request.", 403)
    if request.status != "pending":
        raise ApiError(
            "request_not_pending",
            _l("This request was already %(status)s.", status=word(request.status)),
            409,
        )
    request.status = "accepted" if accept else "rejected"
    request.responded_at = utcnow()
    sender = db.session.get(User, request.from_user_id)
    recipient = db.session.get(User, request.to_user_id)
    if accept:
        if is_blocked(request.from_user_id, user_id):
            raise ApiError("blocked", "You cannot accept this request.", 403)
        low, high = _pair(request.from_user_id, request.to_user_id)
        if friendship(low, high) is None:
            db.session.add(Friendship(user_a_id=low, user_b_id=high))
            friends_made.send(request.from_user_id, friend_id=request.to_user_id)
        db.session.flush()
        _revive_direct(low, high)
        speak_cache.drop_pair(low, high)
    payload = _request_payload(request, sender, recipient)
    realtime.emit_after_commit("friend:request", payload, [request.from_user_id, request.to_user_id])
    db.session.commit()
    return payload


def _revive_direct(user_id: int, peer_id: int) -> None:
    """Create the pair's direct conversation, or make both members active again."""
    key = f"{min(user_id, peer_id)}:{max(user_id, peer_id)}"
    conversation = db.session.scalar(select(Conversation).where(Conversation.direct_key == key))
    if conversation is None:
        conversation = Conversation(kind="direct", direct_key=key)
        db.session.add(conversation)
        db.session.flush()
    members = {
        member.user_id: member
        for member in db.session.scalars(
            select(ConversationMember).where(ConversationMember.conversation_id == conversation.id)
        )
    }
    missing = [uid for uid in (user_id, peer_id) if uid not in members or not members[uid].active]
    if missing:
        add_members(conversation.id, missing)
        stamp_members(conversation.id, missing)


def withdraw_request(user_id: int, request_id: int) -> dict:
    request = db.session.get(FriendRequest, request_id)
    if request is None or request.from_user_id != user_id:
        raise not_found("friend request")
    if request.status != "pending":
        raise ApiError(
            "request_not_pending",
            _l("This request was already %(status)s.", status=word(request.status)),
            409,
        )
    request.status = "withdrawn"
    request.responded_at = utcnow()
    payload = _request_payload(
        request, db.session.get(User, request.from_user_id), db.session.get(User, request.to_user_id)
    )
    realtime.emit_after_commit("friend:request", payload, [request.from_user_id, request.to_user_id])
    db.session.commit()
    return payload


def list_requests(user_id: int, direction: str) -> list[dict]:
    column = FriendRequest.to_user_id if direction == "incoming" else FriendRequest.from_user_id
    sender = aliased(User, name="sender")
    recipient = aliased(User, name="recipient")
    rows = db.session.execute(
        select(FriendRequest, sender, recipient)
        .join(sender, sender.id == FriendRequest.from_user_id)
        .join(recipient, recipient.id == FriendRequest.to_user_id)
        .where(column == user_id)
        .order_by(FriendRequest.status != "pending", FriendRequest.created_at.desc())
        .limit(PAGE_MAX)
    ).all()
    return [_request_payload(*row) for row in rows]


# --- friends -------------------------------------------------------------------------------


def friends_statement(user_id: int):
    """(friendship, friend) rows of the user's friends, and the friend's alias to filter and
    order by."""
    friend = aliased(User, name="friend")
    statement = (
        select(Friendship, friend)
        .join(
            friend,
            or_(
                and_(Friendship.user_a_id == user_id, friend.id == Friendship.user_b_id),
                and_(Friendship.user_b_id == user_id, friend.id == Friendship.user_a_id),
            ),
        )
        .where(or_(Friendship.user_a_id == user_id, Friendship.user_b_id == user_id))
    )
    return statement, friend


def present_friends(user_id: int, rows) -> list[dict]:
    """Rows of `friends_statement` as the user sees them: their remark, and presence where no block
    hides it."""
    ids = [person.id for _, person in rows]
    online = realtime.presence().online(ids)
    visible = visible_to(user_id, ids)
    return [
        presenters.friend(
            person,
            pair.remark_a if pair.user_a_id == user_id else pair.remark_b,
            pair.created_at,
            online=person.id in online,
            visible=person.id in visible,
        )
        for pair, person in rows
    ]


def list_friends(user_id: int, after: int | None, limit: int) -> dict:
    """The user's friends with their remark and presence, by user id, in bounded queries."""
    statement, friend = friends_statement(user_id)
    rows, cursor = keyset_page(statement, friend.id, after, limit, lambda row: row[1].id)
    return {"friends": present_friends(user_id, rows), "next": cursor}


def set_remark(user_id: int, friend_id: int, remark: str | None) -> dict:
    pair = friendship(user_id, friend_id)
    if pair is None:
        raise not_found("friend")
    if pair.user_a_id == user_id:
        pair.remark_a = remark or None
    else:
        pair.remark_b = remark or None
    db.session.commit()
    friend = db.session.get(User, friend_id)
    payload = presenters.friend(
        friend,
        remark or None,
        pair.created_at,
        online=bool(realtime.presence().online([friend_id])),
        visible=bool(visible_to(user_id, [friend_id])),
    )
    realtime.emit_to_users("friend:update", payload, [user_id])
    return payload


def remove_friend(user_id: int, friend_id: int) -> None:
    """End the friendship for both; the direct conversation keeps its history but is closed."""
    pair = friendship(user_id, friend_id)
    if pair is None:
        raise not_found("friend")
    db.session.delete(pair)
    speak_cache.drop_pair(user_id, friend_id)
    realtime.emit_after_commit("friend:removed", {"user_ids": [user_id, friend_id]}, [user_id, friend_id])
    db.session.commit()


def block_user(user_id: int, target_id: int) -> None:
    """Block a user: no requests or direct messages from them, no group messages of theirs delivered."""
    if target_id == user_id:
        raise ApiError("cannot_block_self", "You cannot block yourself.", 400)
    if db.session.get(User, target_id) is None:
        raise not_found("user")
    if not is_blocked(user_id, target_id):
        db.session.add(Block(user_id=user_id, blocked_user_id=target_id))
        speak_cache.drop_pair(user_id, target_id)
    db.session.execute(
        delete(FriendRequest).where(
            FriendRequest.status == "pending",
            or_(
                and_(FriendRequest.from_user_id == target_id, FriendRequest.to_user_id == user_id),
                and_(FriendRequest.from_user_id == user_id, FriendRequest.to_user_id == target_id),
            ),
        )
    )
    db.session.commit()


def unblock_user(user_id: int, target_id: int) -> None:
    block = db.session.get(Block, (user_id, target_id))
    if block is None:
        raise not_found("block")
    db.session.delete(block)
    speak_cache.drop_pair(user_id, target_id)
    db.session.commit()


def list_blocked(user_id: int) -> list[dict]:
    users = db.session.scalars(
        select(User)
        .join(Block, Block.blocked_user_id == User.id)
        .where(Block.user_id == user_id)
        .order_by(User.id)
    )
    return [presenters.user_public(user) for user in users]
