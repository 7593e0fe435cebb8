"""REST routes for conversations, history, read state and sync: /api/v1/..."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from app.chat import pipeline, schemas
from app.chat.access import require_member
from app.chat.conversations import (
    LIST_PAGE_MAX,
    LIST_PAGE_SIZE,
    conversation_list,
    conversation_summaries,
    set_member_flags,
)
from app.chat.conversations import open_direct as open_direct_conversation
from app.chat.history import HISTORY_PAGE_MAX, history
from app.chat.read import mark_read
from app.chat.read import readers as message_readers
from app.chat.send import check_send_rate
from app.chat.sync import SYNC_PAGE_MAX, parse_cursor
from app.chat.sync import sync as sync_page
from app.errors import ApiError, not_found
from app.presence_service import presence_of
from app.validation import MAX_BIGINT, MAX_ID, int_arg, parse_json

bp = Blueprint("chat_api", __name__, url_prefix="/api/v1")


@bp.get("/conversations")
@login_required
def conversations():
    limit = int_arg("limit", minimum=1, maximum=LIST_PAGE_MAX, default=LIST_PAGE_SIZE)
    return jsonify(conversation_list(current_user.id, cursor=request.args.get("cursor") or None, limit=limit))


@bp.post("/conversations")
@login_required
def open_direct():
    data = parse_json(schemas.OpenDirectIn)
    summary, created = open_direct_conversation(current_user.id, data.user_id)
    return jsonify(conversation=summary), 201 if created else 200


@bp.get("/conversations/<int:conversation_id>")
@login_required
def conversation(conversation_id: int):
    require_member(current_user.id, conversation_id, active=False)
    summaries = conversation_summaries([current_user.id], conversation_ids=[conversation_id])
    if not summaries:
        raise not_found("conversation")
    return jsonify(conversation=summaries[0])


@bp.patch("/conversations/<int:conversation_id>")
@login_required
def update_conversation(conversation_id: int):
    data = parse_json(schemas.MemberFlagsIn)
    changes = data.model_dump(exclude_none=True)
    return jsonify(conversation=set_member_flags(current_user.id, conversation_id, changes))


@bp.get("/conversations/<int:conversation_id>/messages")
@login_required
def messages(conversation_id: int):
    page = history(
        current_user.id,
        conversation_id,
        before_seq=int_arg("before_seq", maximum=MAX_BIGINT),
        after_seq=int_arg("after_seq", maximum=MAX_BIGINT),
        limit=int_arg("limit", minimum=1, maximum=HISTORY_PAGE_MAX, default=50),
    )
    return jsonify(page)


@bp.post("/conversations/<int:conversation_id>/messages")
@login_required
def send(conversation_id: int):
    data = parse_json(schemas.MessageIn)
    check_send_rate(current_user.id)
    body = data.body.model_dump()
    message, created = pipeline.send(current_user.id, conversation_id, data.client_msg_id, body)
    return jsonify(message=message, duplicate=not created), 201 if created else 200


@bp.post("/conversations/<int:conversation_id>/read")
@login_required
def read(conversation_id: int):
    data = parse_json(schemas.SeqIn)
    return jsonify(mark_read(current_user.id, conversation_id, data.seq))


@bp.get("/conversations/<int:conversation_id>/messages/<seq:seq>/readers")
@login_required
def readers(conversation_id: int, seq: int):
    return jsonify(message_readers(current_user.id, conversation_id, seq))


@bp.get("/sync")
@login_required
def sync():
    raw = request.args.get("cursor")
    if raw and (not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_BIGINT):
        raise ApiError("invalid_cursor", "The sync cursor is malformed.", 400, {"cursor": "not a cursor"})
    cursor = parse_cursor(raw)
    limit = int_arg("limit", minimum=1, maximum=SYNC_PAGE_MAX, default=SYNC_PAGE_MAX)
    return jsonify(sync_page(current_user.id, cursor, limit))


@bp.get("/presence")
@login_required
def presence():
    raw = request.args.get("user_ids", "")
    parts = [part for part in raw.split(",") if part]
    if not parts or len(parts) > 200 or not all(_is_id(part) for part in parts):
        raise ApiError("invalid_input", "Some fields are invalid.", 400, {"user_ids": "1 to 200 user ids"})
    return jsonify(presence=presence_of(current_user.id, [int(part) for part in parts]))


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= MAX_ID
