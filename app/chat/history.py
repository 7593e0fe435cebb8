"""History: a member's messages of one conversation, page by page by seq."""

from __future__ import annotations

import functools

from sqlalchemy import bindparam, select

from app import presenters
from app.chat.access import require_member, visible_window_bounds
from app.chat.plays import mark_played
from app.errors import ApiError
from app.extensions import db
from app.models import Message, MessageHide, User
from app.validation import MAX_BIGINT

HISTORY_PAGE_MAX = 100

_messages = Message.__table__
_users = User.__table__
_hides = MessageHide.__table__


@functools.cache
def page_query(newest_first: bool, before: bool, after: bool):
    """A page of a conversation's messages by seq, narrowed by the cursors (`before_seq`,
    `after_seq`), with each message's sender, as plain columns (no ORM rows to build for a page
    of fifty); built once per combination of bounds. Everyone's: a member's page narrows it to
    what they may see (`_page_query`); the server API reads it whole."""
    seq = _messages.c.seq
    query = (
        select(
            *_messages.c,
            _users.c.username.label("sender_username"),
            _users.c.nickname.label("sender_nickname"),
            _users.c.avatar_url.label("sender_avatar_url"),
            _users.c.deleted_at.label("sender_deleted_at"),
        )
        .select_from(_messages.outerjoin(_users, _users.c.id == _messages.c.sender_id))
        .where(_messages.c.conversation_id == bindparam("conversation_id"))
    )
    if before:
        query = query.where(seq < bindparam("before_seq"))
    if after:
        query = query.where(seq > bindparam("after_seq"))
    return query.order_by(seq.desc() if newest_first else seq).limit(bindparam("limit"))


@functools.cache
def _page_query(newest_first: bool, before: bool, after: bool):
    """A member's page: the member's visible window (from their membership row, inside the same
    statement), without the messages they deleted for themselves."""
    lowest, highest = visible_window_bounds(bindparam("user_id"), bindparam("conversation_id"))
    seq = _messages.c.seq
    hidden = (
        select(_hides.c.message_id)
        .where(_hides.c.user_id == bindparam("user_id"), _hides.c.message_id == _messages.c.id)
        .exists()
    )
    return page_query(newest_first, before, after).where(seq > lowest, seq <= highest, ~hidden)


def history(
    user_id: int,
    conversation_id: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
    around_seq: int | None = None,
) -> dict:
    """A page of messages by seq, oldest first, within what the member may see: after
    `after_seq` the oldest ones, else the newest (before `before_seq`).

    One statement reads a page: the window check is inside it, so a page with messages proves
    the membership; only an empty page asks whether the user is a member at all (404 if not).
    `around_seq`: the page around that message instead (`around`)."""
    if around_seq is not None:
        if before_seq is not None or after_seq is not None:
            raise ApiError(
                "invalid_input",
                "around_seq cannot be combined with before_seq or after_seq.",
                400,
                {"around_seq": "not with before_seq or after_seq"},
            )
        return around(user_id, conversation_id, around_seq, limit)
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
    messages = mark_played(user_id, [present_row(row) for row in rows])
    return {"messages": messages, "has_more": has_more}


@functools.cache
def _around_query(older: bool):
    """One side of a page around a message: it and the ones before it (newest first), or the
    ones after it (oldest first); empty unless the message's seq is inside the member's window.
    Built once per side from the plain page statements, so it keeps their rules."""
    lowest, highest = visible_window_bounds(bindparam("user_id"), bindparam("conversation_id"))
    around = bindparam("around_seq")
    query = _page_query(older, older, not older)
    return query.where(around > lowest, around <= highest)


def around(user_id: int, conversation_id: int, seq: int, limit: int = 50) -> dict:
    """A page of at most `limit` messages around message `seq` (oldest first, with it if it is
    visible): about half before it, half after, the rest taken from the other side near either
    end. Empty when `seq` is outside the member's window (404 for strangers, as any page)."""
    rows_before: list = []
    rows_after: list = []
    if seq < MAX_BIGINT:  # no seq gets that far: the page would be empty anyway
        params = {"user_id": user_id, "conversation_id": conversation_id, "around_seq": seq}
        params["limit"] = limit + 1
        execute = db.session.connection().execute
        rows_before = execute(_around_query(True), {**params, "before_seq": seq + 1}).all()
        rows_after = execute(_around_query(False), {**params, "after_seq": seq}).all()
    if not rows_before and not rows_after:
        require_member(user_id, conversation_id, active=False)
    wanted_after = limit // 2
    take_before = min(len(rows_before), max(limit - wanted_after, limit - len(rows_after)))
    take_after = min(len(rows_after), limit - take_before)
    has_more_before = len(rows_before) > take_before
    rows = [*reversed(rows_before[:take_before]), *rows_after[:take_after]]
    return {
        "messages": mark_played(user_id, [present_row(row) for row in rows]),
        "has_more_before": has_more_before,
        "has_more_after": len(rows_after) > take_after,
        "has_more": has_more_before,
    }


def present_row(row) -> dict:
    """A message of a page as clients get it."""
    return presenters.message(row, presenters.row_sender(row))
