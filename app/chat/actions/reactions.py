"""Reactions: members put emoji on a message. The rows of message_reactions are the truth; the
message's `reactions` column is their summary in the order the emoji first appeared, written in
the same transaction, so every payload shows it without another query."""

from __future__ import annotations

import emoji as emoji_data
from sqlalchemy import select

from app import presenters
from app.chat.access import check_can_speak, send_context
from app.chat.actions.common import emit_to_members, require_not_recalled, restamp, visible_message
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import MessageReaction, User

MAX_EMOJI_CHARS = 32
MAX_DISTINCT_REACTIONS = 20


def check_emoji(text) -> str:
    """`text` if it is exactly one emoji (a single grapheme of emoji code points, skin tones and
    joiners included, at most 32 characters), else 400 `invalid_emoji`."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_EMOJI_CHARS or not emoji_data.is_emoji(text):
        raise ApiError("invalid_emoji", "React with one emoji.", 400, {"emoji": "must be one emoji"})
    return text


def react(user_id: int, conversation_id: int, seq: int, emoji: str, add: bool) -> dict:
    """Add (or remove) the user's `emoji` on message `seq`. Idempotent: adding what is there, or
    removing what is not, changes nothing and tells nobody. Who may not speak in the conversation
    may not react either."""
    emoji = check_emoji(emoji)
    _, _, message = visible_message(user_id, conversation_id, seq, lock=True)
    require_not_recalled(message)
    check_can_speak(send_context(user_id, conversation_id))
    summary = [
        {"emoji": item["emoji"], "user_ids": list(item["user_ids"])} for item in message.reactions or ()
    ]
    item = next((item for item in summary if item["emoji"] == emoji), None)
    present = item is not None and user_id in item["user_ids"]
    if present == add:
        db.session.commit()  # nothing to change: release the conversation lock
        return {"reactions": presenters.reactions(message.reactions)}
    if add:
        if item is None:
            if len(summary) >= MAX_DISTINCT_REACTIONS:
                raise ApiError(
                    "too_many_reactions",
                    _l("A message takes at most %(count)s different emoji.", count=MAX_DISTINCT_REACTIONS),
                    409,
                )
            item = {"emoji": emoji, "user_ids": []}
            summary.append(item)
        item["user_ids"].append(user_id)
        db.session.add(MessageReaction(message_id=message.id, user_id=user_id, emoji=emoji))
    else:
        item["user_ids"].remove(user_id)
        if not item["user_ids"]:
            summary.remove(item)
        row = db.session.get(MessageReaction, (message.id, user_id, emoji))
        if row is not None:
            db.session.delete(row)
    message.reactions = summary or None
    restamp(message)
    reactions = presenters.reactions(message.reactions)
    payload = {
        "conversation_id": conversation_id,
        "seq": message.seq,
        "message_id": message.id,
        "reactions": reactions,
    }
    emit_to_members("message:reactions", payload, conversation_id)
    db.session.commit()
    return {"reactions": reactions}


def reactors(user_id: int, conversation_id: int, seq: int, emoji: str) -> dict:
    """Everyone who reacted to message `seq` with `emoji`, in the order they did."""
    emoji = check_emoji(emoji)
    _, _, message = visible_message(user_id, conversation_id, seq, active=False)
    require_not_recalled(message)
    users = db.session.scalars(
        select(User)
        .join(MessageReaction, MessageReaction.user_id == User.id)
        .where(MessageReaction.message_id == message.id, MessageReaction.emoji == emoji)
    ).all()
    item = next((item for item in message.reactions or () if item["emoji"] == emoji), None)
    order = {user_id: index for index, user_id in enumerate(item["user_ids"] if item else ())}
    users = sorted(users, key=lambda user: (order.get(user.id, len(order)), user.id))
    return {"users": [presenters.user_public(user) for user in users]}
