"""Quotes: a reply carries a snapshot of the message it answers (`Message.reply`), so the quote
renders without loading the original. When the original is recalled or edited, the snapshots
follow: each reply gets the new snapshot, a new stream position (sync carries it) and a
`message:edited` event (clients replace the message by id)."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from app import realtime
from app.chat.access import active_member_ids
from app.chat.actions.common import present
from app.chat.stream import take_stream_positions
from app.extensions import db
from app.models import Message

QUOTE_TEXT_MAX = 100

_messages = Message.__table__
_SET_QUOTE = (
    update(_messages)
    .where(_messages.c.id == bindparam("r_id"))
    .values(reply=bindparam("r_reply"), stream_pos=bindparam("r_pos"))
)


def quote_text(message: Message) -> str:
    """What a quote of an edited message shows: its text's first 100 characters (only text
    messages are edited; other types keep the text the snapshot was made with)."""
    return (message.body.get("msg") or "")[:QUOTE_TEXT_MAX]


def replies_to(message: Message) -> list[Message]:
    """The live replies to `message` (index on (conversation_id, reply_to_seq)). Read them before
    the transaction takes the stream counter: the counter is held only for writes."""
    return list(
        db.session.scalars(
            select(Message)
            .where(
                Message.conversation_id == message.conversation_id,
                Message.reply_to_seq == message.seq,
                Message.recalled_at.is_(None),
            )
            .order_by(Message.seq)
        )
    )


def refresh_quotes(message: Message, replies: list[Message]) -> int:
    """Bring the snapshots of `replies` (from `replies_to`) up to date with `message` (recalled, or
    its new text) in the open transaction, in one statement with one position each; the caller
    holds the conversation's row lock and commits. Returns how many replies changed."""
    changed = []
    for reply in replies:
        snapshot = dict(reply.reply or {"seq": message.seq, "type": message.type})
        if message.recalled_at is not None:
            snapshot.update(recalled=True, text="")
        else:
            snapshot["text"] = quote_text(message)
        if snapshot != reply.reply:
            changed.append((reply, snapshot))
    if not changed:
        return 0
    first = take_stream_positions(len(changed))
    rows = [
        {"r_id": reply.id, "r_reply": snapshot, "r_pos": first + i}
        for i, (reply, snapshot) in enumerate(changed)
    ]
    db.session.connection().execute(_SET_QUOTE, rows)
    recipients = active_member_ids(message.conversation_id)
    for (reply, snapshot), row in zip(changed, rows, strict=True):
        # The rows were written with a Core statement: the loaded objects are told.
        set_committed_value(reply, "reply", snapshot)
        set_committed_value(reply, "stream_pos", row["r_pos"])
        realtime.emit_after_commit("message:edited", present(reply), recipients)
    return len(changed)
