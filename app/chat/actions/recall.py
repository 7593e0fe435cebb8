"""Recall: a message withdrawn by its sender (within RECALL_WINDOW_SECONDS), removed by a group's
owner or admin, or by the site's console. It keeps its place (seq) and loses its content
everywhere: devices get `message:recalled`, sync hands the recalled version to devices that were
away, its media stops being served (app/media/services.py `viewable_upload`), its mentions stop
counting, its pin goes, and the quotes of replies to it say it was recalled."""

from __future__ import annotations

from datetime import timedelta

from blinker import signal
from flask import current_app
from sqlalchemy import delete, select

from app import realtime
from app.chat.actions.common import (
    emit_to_members,
    present,
    require_not_recalled,
    restamp,
    visible_message,
)
from app.chat.actions.pins import announce_pins, drop_pin_of
from app.chat.actions.quotes import refresh_quotes, replies_to
from app.chat.conversations import conversation_summaries
from app.errors import ApiError
from app.extensions import db
from app.models import AuditLog, Conversation, Group, GroupMember, Message, MessageMention, utcnow

# Sent with (conversation, message=..., payload=..., actor_id=...) when a message is recalled,
# before the commit: the `message.recalled` webhook event (app/webhooks/events.py).
message_recalled = signal("parley.message-recalled")

RECALLED_AS = ("sender", "group_admin", "admin")


def not_allowed() -> ApiError:
    return ApiError("not_allowed", "You cannot recall this message.", 403)


def recall(user_id: int, conversation_id: int, seq: int) -> dict:
    """Recall message `seq` of the conversation for everyone: the sender's own message within the
    window; in a group, the owner anyone's and an admin a member's at any time (audited)."""
    _, conversation, message = visible_message(user_id, conversation_id, seq, lock=True)
    require_not_recalled(message)
    recalled_as = _recalled_as(user_id, conversation, message)
    payload = apply_recall(conversation, message, user_id, recalled_as)
    if recalled_as == "group_admin":
        db.session.add(
            AuditLog(
                admin_id=user_id,
                action="group_recall",
                target_type="message",
                target_id=message.id,
                details={"conversation_id": conversation_id, "seq": seq, "sender_id": message.sender_id},
            )
        )
    db.session.commit()
    return {"message": payload}


def _recalled_as(user_id: int, conversation: Conversation, message: Message) -> str:
    """How the user may recall the message, or the refusal. Own messages follow the sender's
    window whatever the user's role; others' need the group role."""
    if message.type == "system" or message.sender_id is None:
        raise not_allowed()
    group = None
    if conversation.kind == "group":
        group = db.session.scalar(select(Group).where(Group.conversation_id == conversation.id))
        if group is not None and group.dissolved_at is not None:
            raise ApiError("group_dissolved", "This group was dissolved; it is read-only.", 403)
    if message.sender_id == user_id:
        window = timedelta(seconds=current_app.config["RECALL_WINDOW_SECONDS"])
        if utcnow() - message.created_at > window:
            raise ApiError("recall_window_passed", "Messages can only be recalled soon after sending.", 403)
        return "sender"
    if group is None:
        raise not_allowed()
    mine = db.session.get(GroupMember, (group.id, user_id))
    role = mine.role if mine is not None else None
    if role == "owner":
        return "group_admin"
    if role == "admin":
        theirs = db.session.get(GroupMember, (group.id, message.sender_id))
        # A former member's messages count as a member's.
        if theirs is None or theirs.role == "member":
            return "group_admin"
    raise not_allowed()


def apply_recall(conversation: Conversation, message: Message, actor_id: int, recalled_as: str) -> dict:
    """Recall `message` in the open transaction; the one core of every recall (members' and the
    console's). The caller holds the conversation's row lock (taken before any other), has
    checked the right to recall, writes its own audit row and commits; `message:recalled` and
    the replies' `message:edited` leave after that commit. Returns the recalled payload."""
    if recalled_as not in RECALLED_AS:
        raise ValueError(recalled_as)
    require_not_recalled(message)
    replies = replies_to(message)
    message.recalled_at = utcnow()
    message.recalled_by_id = actor_id
    message.recalled_as = recalled_as
    called = db.session.scalars(
        delete(MessageMention)
        .where(MessageMention.message_id == message.id)
        .returning(MessageMention.user_id)
    ).all()
    unpinned = drop_pin_of(conversation, message)
    # The stream counter last: the message (and the preview, pins) first, then its replies.
    restamp(message, conversation=True)
    if unpinned:
        announce_pins(conversation)
    payload = present(message)
    emit_to_members("message:recalled", payload, conversation.id)
    message_recalled.send(conversation, message=message, payload=payload, actor_id=actor_id)
    refresh_quotes(message, replies)
    if called:
        # Their unread mention counts dropped: their devices get the summary again.
        for summary in conversation_summaries(list(called), conversation_ids=[conversation.id]):
            user_id = summary.pop("_user_id", called[0])
            realtime.emit_after_commit("conversation:update", summary, [user_id])
    return payload
