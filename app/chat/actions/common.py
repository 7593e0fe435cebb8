"""What every message action shares: the message a member may act on, and a change re-stamped so
sync carries it."""

from __future__ import annotations

from sqlalchemy import select

from app import presenters, realtime
from app.chat.access import active_member_ids, require_member, visible_window
from app.chat.send import STAMP_CONVERSATION
from app.chat.stream import next_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.models import Conversation, ConversationMember, Message, MessageHide, User


def not_visible() -> ApiError:
    return ApiError("not_visible", "You cannot see this message.", 404, {"seq": "not visible to you"})


def lock_conversation(conversation_id: int) -> Conversation:
    """The conversation row, locked first (the lock order of app/chat/stream.py): actions on one
    conversation's messages happen one after the other."""
    return db.session.scalar(select(Conversation).where(Conversation.id == conversation_id).with_for_update())


def visible_message(
    user_id: int, conversation_id: int, seq: int, *, active: bool = True, lock: bool = False
) -> tuple[ConversationMember, Conversation, Message]:
    """The member, the conversation and message `seq` in it, if the user may see that message:
    inside their window and not deleted for them. Strangers get 404 `not_found`, former members
    `not_member` when `active` is asked for, and a message they cannot see `not_visible`.
    `lock`: lock the conversation row first (for actions that write)."""
    member = require_member(user_id, conversation_id, active=active)
    if lock:
        conversation = lock_conversation(conversation_id)
    else:
        conversation = db.session.get(Conversation, conversation_id)
    lowest, highest = visible_window(member, conversation)
    message = None
    if lowest < seq <= highest:
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
        )
    if message is None or db.session.get(MessageHide, (user_id, message.id)) is not None:
        raise not_visible()
    return member, conversation, message


def require_not_recalled(message: Message) -> None:
    if message.recalled_at is not None:
        raise ApiError("already_recalled", "This message was recalled.", 409)


def restamp(message: Message, *, conversation: bool = False) -> int:
    """Give a changed message the next stream position (and its conversation, when the change
    shows in the conversation list), so sync hands devices that were away the new version.
    Call after every other row lock of the transaction is taken."""
    pos = next_stream_pos()
    message.stream_pos = pos
    db.session.flush()
    if conversation:
        db.session.connection().execute(STAMP_CONVERSATION, {"c_id": message.conversation_id, "c_pos": pos})
        loaded = db.session.get(Conversation, message.conversation_id)
        if loaded is not None:
            db.session.refresh(loaded, ["stream_pos"])
    return pos


def present(message: Message) -> dict:
    author = db.session.get(User, message.sender_id) if message.sender_id is not None else None
    return presenters.message(message, author)


def emit_to_members(event: str, payload: dict, conversation_id: int) -> None:
    """Send `event` to every active member's devices once the transaction commits."""
    realtime.emit_after_commit(event, payload, active_member_ids(conversation_id))
