"""Quotes: a reply carries a snapshot of the message it answers (`Message.reply`), so the quote
renders without loading the original. When the original is recalled or edited, the snapshots
follow: each reply gets the new snapshot, a new stream position (sync carries it) and a
`message:edited` event (clients replace the message by id)."""

from __future__ import annotations

from sqlalchemy import select

from app import realtime
from app.chat.access import active_member_ids
from app.chat.actions.common import present, restamp
from app.extensions import db
from app.models import Message

QUOTE_TEXT_MAX = 100


def quote_text(message: Message) -> str:
    """What a quote of an edited message shows: its text's first 100 characters (only text
    messages are edited; other types keep the text the snapshot was made with)."""
    return (message.body.get("msg") or "")[:QUOTE_TEXT_MAX]


def refresh_quotes(message: Message) -> int:
    """Bring the snapshots of the replies to `message` up to date with it (recalled, or its new
    text), in the open transaction; the caller holds the conversation's row lock and commits.
    Returns how many replies changed.

    Replies come after the original, so the search runs on the (conversation_id, seq) index from
    the original's seq on; `reply_to_seq` itself has no index (a long-lived message with many later
    messages costs a scan of those)."""
    replies = db.session.scalars(
        select(Message)
        .where(
            Message.conversation_id == message.conversation_id,
            Message.seq > message.seq,
            Message.reply_to_seq == message.seq,
            Message.recalled_at.is_(None),
        )
        .order_by(Message.seq)
    ).all()
    changed = []
    for reply in replies:
        snapshot = dict(reply.reply or {"seq": message.seq, "type": message.type})
        if message.recalled_at is not None:
            snapshot.update(recalled=True, text="")
        else:
            snapshot["text"] = quote_text(message)
        if snapshot == reply.reply:
            continue
        reply.reply = snapshot  # a new dict: the JSON column sees the change
        restamp(reply)
        changed.append(reply)
    if changed:
        recipients = active_member_ids(message.conversation_id)
        for reply in changed:
            realtime.emit_after_commit("message:edited", present(reply), recipients)
    return len(changed)
