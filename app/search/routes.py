"""REST routes of search: /api/v1/search/messages and /api/v1/search/contacts."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from app.search.contacts import search_contacts
from app.search.messages import PAGE_MAX, check_search_rate, search_messages
from app.validation import MAX_ID, int_arg, invalid

bp = Blueprint("search_api", __name__, url_prefix="/api/v1/search")


def _moment(name: str) -> datetime | None:
    """An ISO 8601 date or time in the query string; without a zone it is UTC."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or out of range once in UTC
        raise invalid({name: "an ISO 8601 date or time"}) from None


@bp.get("/messages")
@login_required
def messages():
    check_search_rate(current_user.id)
    result = search_messages(
        current_user.id,
        request.args.get("q", ""),
        conversation_id=int_arg("conversation_id", minimum=1, maximum=MAX_ID),
        sender_id=int_arg("sender_id", minimum=1, maximum=MAX_ID),
        type=request.args.get("type") or None,
        before=_moment("before"),
        after=_moment("after"),
        cursor=request.args.get("cursor") or None,
        limit=int_arg("limit", minimum=1, maximum=PAGE_MAX, default=20),
    )
    return jsonify(result)


@bp.get("/contacts")
@login_required
def contacts():
    check_search_rate(current_user.id)
    return jsonify(search_contacts(current_user.id, request.args.get("q", "")))
