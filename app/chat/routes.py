"""REST routes for conversations, history, read state and sync: /api/v1/..."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from app.chat import pipeline, schemas
from app.chat.access import require_member
from app.chat.actions.edit import edit as edit_message
from app.chat.actions.edit import edit_history
from app.chat.actions.forward import forward as forward_messages
from app.chat.actions.hides import hide as hide_messages
from app.chat.actions.pins import list_pins, pin
from app.chat.actions.reactions import react, reactors
from app.chat.actions.recall import recall as recall_message
from app.chat.conversations import (
    LIST_PAGE_MAX,
    LIST_PAGE_SIZE,
    conversation_list,
    conversation_summaries,
    set_member_flags,
)
from app.chat.conversations import open_direct as open_direct_conversation
from app.chat.history import HISTORY_PAGE_MAX, history
from app.chat.plays import play
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
        around_seq=int_arg("around_seq", maximum=MAX_BIGINT),
    )
    return jsonify(page)


@bp.post("/conversations/<int:conversation_id>/messages")
@login_required
def send(conversation_id: int):
    data = parse_json(schemas.MessageIn)
    check_send_rate(current_user.id)
    body, extras = data.body.model_dump(), data.extras()
    message, created = pipeline.send(current_user.id, conversation_id, data.client_msg_id, body, extras)
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


@bp.put("/conversations/<int:conversation_id>/messages/<seq:seq>/played")
@login_required
def played(conversation_id: int, seq: int):
    """Mark a voice message played on all your devices (idempotent)."""
    return jsonify(play(current_user.id, conversation_id, seq))


@bp.post("/conversations/<int:conversation_id>/messages/<seq:seq>/recall")
@login_required
def recall(conversation_id: int, seq: int):
    return jsonify(recall_message(current_user.id, conversation_id, seq))


@bp.patch("/conversations/<int:conversation_id>/messages/<seq:seq>")
@login_required
def edit(conversation_id: int, seq: int):
    data = parse_json(schemas.EditIn)
    return jsonify(edit_message(current_user.id, conversation_id, seq, data.msg, data.version))


@bp.get("/conversations/<int:conversation_id>/messages/<seq:seq>/edits")
@login_required
def edits(conversation_id: int, seq: int):
    return jsonify(edit_history(current_user.id, conversation_id, seq))


@bp.post("/messages/forward")
@login_required
def forward():
    data = parse_json(schemas.ForwardIn)
    targets = [(target.conversation_id, target.client_msg_id) for target in data.targets]
    results = forward_messages(
        current_user.id, data.conversation_id, data.seqs, data.mode, targets, data.title
    )
    return jsonify(results)


@bp.put("/conversations/<int:conversation_id>/messages/<seq:seq>/reactions/<path:emoji>")
@login_required
def add_reaction(conversation_id: int, seq: int, emoji: str):
    return jsonify(react(current_user.id, conversation_id, seq, emoji, add=True))


@bp.delete("/conversations/<int:conversation_id>/messages/<seq:seq>/reactions/<path:emoji>")
@login_required
def remove_reaction(conversation_id: int, seq: int, emoji: str):
    return jsonify(react(current_user.id, conversation_id, seq, emoji, add=False))


@bp.get("/conversations/<int:conversation_id>/messages/<seq:seq>/reactions/<path:emoji>")
@login_required
def reaction_users(conversation_id: int, seq: int, emoji: str):
    return jsonify(reactors(current_user.id, conversation_id, seq, emoji))


@bp.get("/conversations/<int:conversation_id>/pins")
@login_required
def pins(conversation_id: int):
    return jsonify(list_pins(current_user.id, conversation_id))


@bp.put("/conversations/<int:conversation_id>/pins/<seq:seq>")
@login_required
def pin_message(conversation_id: int, seq: int):
    return jsonify(pin(current_user.id, conversation_id, seq, pinned=True))


@bp.delete("/conversations/<int:conversation_id>/pins/<seq:seq>")
@login_required
def unpin_message(conversation_id: int, seq: int):
    return jsonify(pin(current_user.id, conversation_id, seq, pinned=False))


@bp.post("/conversations/<int:conversation_id>/messages/hide")
@login_required
def hide(conversation_id: int):
    data = parse_json(schemas.HideIn)
    return jsonify(hide_messages(current_user.id, conversation_id, data.seqs))


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
