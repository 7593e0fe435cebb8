"""Played state of voice messages: which `audio` messages a user has played, on any device.

No row means unplayed. A play is kept per user (like read state, not per device) and takes a
stream position, so `/sync` hands it to the user's devices that were away (`played`), and the
live ones get `message:played`. One's own voice messages count as played and have no row.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import realtime
from app.chat.access import locked_member, visible_message
from app.chat.stream import next_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.models import MessagePlay

_plays = MessagePlay.__table__


def play(user_id: int, conversation_id: int, seq: int) -> dict:
    """Mark voice message `seq` played for the user, on all their devices.

    Members, former ones included (within their window, as reading), may play what they can
    see: strangers get 404 `not_found`, a message outside the window or deleted for them 404
    `not_visible`, a message of another type 400 `not_audio_message`, a recalled one 409
    `already_recalled`. Idempotent: played already (or one's own), nothing changes and nobody
    is told."""
    # The member row locked, so two devices playing at once queue up; the second finds the first
    # one's row.
    member = locked_member(user_id, conversation_id)
    message = visible_message(member, seq)
    if message is None:
        raise ApiError("not_visible", "You cannot see this message.", 404, {"seq": "not visible to you"})
    if message.type != "audio":
        raise ApiError(
            "not_audio_message", "Only voice messages are played.", 400, {"seq": "not a voice message"}
        )
    if message.recalled_at is not None:
        raise ApiError("already_recalled", "This message was recalled.", 409)
    state = {"conversation_id": conversation_id, "seq": seq, "played": True}
    if message.sender_id == user_id:
        db.session.commit()  # nothing to change: release the member row
        return state
    values = {
        "user_id": user_id,
        "message_id": message.id,
        "conversation_id": conversation_id,
        "seq": seq,
        "stream_pos": 0,
    }
    # Played already: the insert finds the row and does nothing, and nobody is told. The member
    # lock keeps two devices apart on PostgreSQL; SQLite takes no row locks, so a device that
    # lost the race inserts nothing (and tells nobody) instead of failing.
    # The row goes in before the stream position is taken: its foreign keys lock the rows they
    # name (conversation, message, user), and every lock comes before the stream counter's.
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_plays).values(values).on_conflict_do_nothing().returning(_plays.c.message_id)
    if db.session.execute(statement).first() is not None:
        db.session.execute(
            update(_plays)
            .where(_plays.c.user_id == user_id, _plays.c.message_id == message.id)
            .values(stream_pos=next_stream_pos())
        )
        payload = {"conversation_id": conversation_id, "seq": seq, "message_id": message.id}
        realtime.emit_after_commit("message:played", payload, [user_id])
    db.session.commit()
    return state


def mark_played(user_id: int, messages: list[dict]) -> list[dict]:
    """Set `played` on every `audio` message of `messages` (presented messages, as pages, sync
    and search give them) for the user reading them: true for their own and for those they
    played. One statement for the whole list, none when it holds no one else's voice message."""
    audio = [message for message in messages if message["type"] == "audio"]
    others = [
        message["id"] for message in audio if message["sender"] is None or message["sender"]["id"] != user_id
    ]
    played: set[int] = set()
    if others:
        played = set(
            db.session.connection().scalars(
                select(_plays.c.message_id).where(
                    _plays.c.user_id == user_id, _plays.c.message_id.in_(sorted(set(others)))
                )
            )
        )
    for message in audio:
        sender = message["sender"]
        message["played"] = (sender is not None and sender["id"] == user_id) or message["id"] in played
    return messages


def plays_between(user_id: int, after: int, upto: int) -> list[dict]:
    """The user's plays with a stream position in (after, upto], in stream order: /sync's
    `played` list."""
    rows = db.session.execute(
        select(MessagePlay.conversation_id, MessagePlay.seq)
        .where(MessagePlay.user_id == user_id, MessagePlay.stream_pos > after, MessagePlay.stream_pos <= upto)
        .order_by(MessagePlay.stream_pos, MessagePlay.conversation_id, MessagePlay.seq)
    ).all()
    return [{"conversation_id": conversation_id, "seq": seq} for conversation_id, seq in rows]
