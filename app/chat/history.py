"""History: a member's messages of one conversation, page by page by seq."""

from __future__ import annotations

import functools
from typing import NamedTuple

from sqlalchemy import bindparam, select

from app import presenters
from app.chat.access import require_member, visible_window_bounds
from app.extensions import db
from app.models import Message, User

HISTORY_PAGE_MAX = 100

_messages = Message.__table__
_users = User.__table__


class _Sender(NamedTuple):
    id: int
    username: str
    nickname: str
    avatar_url: str | None


@functools.cache
def _page_query(newest_first: bool, before: bool, after: bool):
    """The page statement for one combination of bounds, built once: the member's visible window
    (from their membership row, inside the same statement) narrowed by the cursors, with each
    message's sender, as plain columns (no ORM rows to build for a page of fifty)."""
    lowest, highest = visible_window_bounds(bindparam("user_id"), bindparam("conversation_id"))
    seq = _messages.c.seq
    query = (
        select(
            *_messages.c,
            _users.c.username.label("sender_username"),
            _users.c.nickname.label("sender_nickname"),
            _users.c.avatar_url.label("sender_avatar_url"),
        )
        .select_from(_messages.outerjoin(_users, _users.c.id == _messages.c.sender_id))
        .where(_messages.c.conversation_id == bindparam("conversation_id"), seq > lowest, seq <= highest)
    )
    if before:
        query = query.where(seq < bindparam("before_seq"))
    if after:
        query = query.where(seq > bindparam("after_seq"))
    return query.order_by(seq.desc() if newest_first else seq).limit(bindparam("limit"))


def history(
    user_id: int,
    conversation_id: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> dict:
    """A page of messages by seq, oldest first, within what the member may see: after
    `after_seq` the oldest ones, else the newest (before `before_seq`).

    One statement reads a page: the window check is inside it, so a page with messages proves
    the membership; only an empty page asks whether the user is a member at all (404 if not)."""
    newest_first = after_seq is None
    query = _page_query(newest_first, before_seq is not None, after_seq is not None)
    params = {"user_id": user_id, "conversation_id": conversation_id, "limit": limit + 1}
    if before_seq is not None:
        params["before_seq"] = before_seq
    if after_seq is not None:
        params["after_seq"] = after_seq
    rows = db.session.connection().execute(query, params).all()
    if not rows:
        require_member(user_id, conversation_id, active=False)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest_first:
        rows.reverse()
    return {"messages": [_present(row) for row in rows], "has_more": has_more}


def _present(row) -> dict:
    sender = None
    if row.sender_username is not None:  # the outer join found the sender
        sender = _Sender(row.sender_id, row.sender_username, row.sender_nickname, row.sender_avatar_url)
    return presenters.message(row, sender)
