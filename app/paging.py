"""Keyset paging: one page of rows after a cursor, and the cursor of the next page."""

from __future__ import annotations

from collections.abc import Callable

from app.extensions import db


def keyset_page(
    statement, column, after: int | None, limit: int, cursor: Callable
) -> tuple[list, int | None]:
    """Rows of `statement` ordered by `column` after `after`, at most `limit` of them, and the
    next page's cursor (`cursor(last row)`), or None on the last page. One query: it asks for one
    row more than the page to know whether another page follows."""
    statement = statement.order_by(column).limit(limit + 1)
    if after is not None:
        statement = statement.where(column > after)
    rows = db.session.execute(statement).all()
    if len(rows) > limit:
        return rows[:limit], cursor(rows[limit - 1])
    return rows, None
