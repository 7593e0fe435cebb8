"""Edit: the sender rewrites their own text message, within EDIT_WINDOW_SECONDS and at most
MAX_EDITS times. Every version is kept (`message_edits`, version 0 = as sent); the message row
holds the current one. Devices get `message:edited`, sync the new version; quotes follow.

New text passes what a send's does, before the conversation row is locked: the send rate, the
word filter, then the company's `message.before_send` hooks (asked with `edit_of`;
app/webhooks/before_send.py), with no lock or transaction held while they answer. The filter
runs only for a message the user may edit: a loop of edits of others' or missing messages pays
the send rate and a lookup, not a scan and hit counts."""

from __future__ import annotations

from datetime import timedelta

from blinker import signal
from flask import current_app
from sqlalchemy import select

from app import presenters, wordfilter
from app.chat.access import check_can_speak, send_context
from app.chat.actions.common import (
    emit_to_members,
    present,
    require_not_recalled,
    restamp,
    visible_message,
)
from app.chat.actions.quotes import refresh_quotes, replies_to
from app.chat.schemas import MAX_TEXT
from app.chat.send import check_send_rate
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import MessageEdit, utcnow
from app.webhooks import before_send

# Sent with (conversation, message=..., payload=...) when a message is edited, before the commit:
# the `message.edited` webhook event (app/webhooks/events.py).
message_edited = signal("parley.message-edited")

MAX_EDITS = 10


def edit(user_id: int, conversation_id: int, seq: int, msg: str, version: int) -> dict:
    """Replace the text of the user's message `seq`. `version` is the edit_count the client
    edits: another edit in between answers `edit_conflict`, and a retry of the edit just applied
    (same text, version one behind) answers the message as it is."""
    check_send_rate(user_id)
    current = _current_text(user_id, conversation_id, seq)
    # Screened before the row is locked (masked and cut to a message's size, or refused with
    # `content_blocked`).
    msg = wordfilter.screen_text("msg", msg, MAX_TEXT)
    msg = _ask_hooks(user_id, conversation_id, seq, msg, current)
    _, conversation, message = visible_message(user_id, conversation_id, seq, lock=True)
    _require_editable(message, user_id)
    # New text is said anew: whoever may not send here now (a mute, a block...) may not edit.
    check_can_speak(send_context(user_id, conversation_id))
    count = message.edit_count or 0
    current = message.body.get("msg")
    if (version == count - 1 or version == count) and msg == current:
        payload = present(message)
        db.session.rollback()  # a retry, or no change: nothing to write
        return {"message": payload}
    window = timedelta(seconds=current_app.config["EDIT_WINDOW_SECONDS"])
    if utcnow() - message.created_at > window:
        raise ApiError("edit_window_passed", "Messages can only be edited for a while after sending.", 403)
    if count >= MAX_EDITS:
        raise ApiError(
            "too_many_edits", _l("A message can be edited at most %(count)s times.", count=MAX_EDITS), 403
        )
    if version != count:
        raise ApiError(
            "edit_conflict", "The message was edited meanwhile; reload it.", 409, {"version": str(count)}
        )
    replies = replies_to(message)
    now = utcnow()
    if count == 0:
        db.session.add(
            MessageEdit(message_id=message.id, version=0, body=message.body, written_at=message.created_at)
        )
    body = {**message.body, "msg": msg}
    db.session.add(MessageEdit(message_id=message.id, version=count + 1, body=body, written_at=now))
    message.body = body
    message.edit_count = count + 1
    message.edited_at = now
    # The stream counter last: the message (and the preview when it is the last one), then replies.
    restamp(message, conversation=message.seq == conversation.last_seq)
    payload = present(message)
    emit_to_members("message:edited", payload, conversation_id)
    message_edited.send(conversation, message=message, payload=payload)
    refresh_quotes(message, replies)
    db.session.commit()
    return {"message": payload}


def _require_editable(message, user_id: int) -> None:
    require_not_recalled(message)
    if message.sender_id != user_id or message.type != "txt":
        raise ApiError("not_editable", "Only your own text messages can be edited.", 403)


def _current_text(user_id: int, conversation_id: int, seq: int) -> str | None:
    """The text of message `seq` if the user may edit it (`not_visible`, `not_editable`...
    otherwise), read without a lock. The read's transaction is ended, so that the message is
    read afresh under the lock."""
    _, _, message = visible_message(user_id, conversation_id, seq)
    _require_editable(message, user_id)
    current = message.body.get("msg")
    db.session.commit()  # nothing written: ends the read, as before_send.check does
    return current


def _ask_hooks(user_id: int, conversation_id: int, seq: int, msg: str, current: str | None) -> str:
    """The new text as the before-send hooks let it through (kept, replaced) or their refusal,
    asked only for an edit that may be made (no hook hears of a refused one, or of a retry
    whose text is the current one). Everything is checked again under the lock afterwards:
    the right to speak included, which may have been lost while the hooks answered."""
    if not before_send.wanted() or msg == current:
        return msg
    context = send_context(user_id, conversation_id)
    check_can_speak(context)
    body = before_send.check(context, user_id, conversation_id, {"type": "txt", "msg": msg}, edit_of=seq)
    return body["msg"]


def edit_history(user_id: int, conversation_id: int, seq: int) -> dict:
    """Every version of a message the user can see, oldest first, the current one last."""
    _, _, message = visible_message(user_id, conversation_id, seq, active=False)
    require_not_recalled(message)
    rows = db.session.scalars(
        select(MessageEdit).where(MessageEdit.message_id == message.id).order_by(MessageEdit.version)
    ).all()
    if not rows:
        return {
            "versions": [
                {"version": 0, "body": message.body, "written_at": presenters.iso(message.created_at)}
            ]
        }
    return {
        "versions": [
            {"version": row.version, "body": row.body, "written_at": presenters.iso(row.written_at)}
            for row in rows
        ]
    }
