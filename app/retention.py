"""The retention policy: messages older than a conversation's retention, and the media only they
carried, are deleted (docs/ARCHITECTURE.md, "Retention").

A conversation's retention is its group's own `retention_days` when set, else the deployment's
(app/settings.py); 0 keeps everything. The periodic job "retention.purge" (app/jobs/periodic.py,
once across processes) finds the conversations whose oldest remaining message is older than
their cutoff and purges each from the oldest message on, in batches of at most RETENTION_BATCH
messages, each batch one short transaction under the conversation's row lock. A batch deletes a
prefix of the conversation's seqs (it stops at the first message that is not old enough), so
"every message with seq ≤ `conversations.purged_seq` is gone" always holds; history, catch-up,
search and unread counts start after `purged_seq` (app/chat/access.py, app/chat/read.py).

What hangs off a purged message goes with it in the same transaction: reactions, mentions, kept
edits, hides, plays, upload shares, pins pointing at it, its search index entry (SQLite's
trigger; PostgreSQL's index follows the row). Uploads it carried are deleted, files too after the
commit, unless a message that stays shares them (a forward, or a merged chat history carrying
several): the upload then stays, unbound, and its share rows keep it served to the copies'
viewers and out of the upload cleanup; it goes when its last sharing message does. The batch
locks those uploads (FOR UPDATE on PostgreSQL) before it reads their shares: a forward sharing one
holds it (FOR KEY SHARE, app/chat/actions/forward.py) until it commits, so the purge sees its share
and keeps the upload; a forward that comes after the lock waits, then finds the upload gone and is
refused (`not_visible`) rather than storing a copy of nothing. SQLite's writers take turns, and a
batch writes first (`_lock`), so no forward writes between its reads and its deletes. Replies that
quote a purged message keep only the quote's seq, type and sender, marked `purged` (the text is
dropped); each gets a new stream position so /sync carries it. The conversation itself gets a
new stream position, so a device catching up gets its summary (last message, unread count, pins)
fresh. Nothing is emitted live: devices are told nothing special.

Notice conversations (the server API's notices to one user) are purged like direct ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import gevent
from flask import current_app
from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, update

from app import settings
from app.chat.stream import take_stream_positions
from app.extensions import db
from app.media.storage import get_storage
from app.models import (
    Conversation,
    Group,
    Message,
    MessageEdit,
    MessageHide,
    MessageMention,
    MessagePlay,
    MessageReaction,
    Upload,
    UploadShare,
    utcnow,
)

log = logging.getLogger(__name__)

_messages = Message.__table__
_SET_QUOTE = (
    update(_messages)
    .where(_messages.c.id == bindparam("r_id"))
    .values(reply=bindparam("r_reply"), stream_pos=bindparam("r_pos"))
)


@dataclass
class Outcome:
    """What one purge removed."""

    conversations: int = 0
    messages: int = 0
    uploads: int = 0
    batches: int = 0
    failed: int = 0
    files: list[str] = field(default_factory=list, repr=False)


def retention_days_of(conversation_id: int) -> int:
    """The conversation's retention in days (0: kept forever)."""
    group = db.session.scalar(select(Group).where(Group.conversation_id == conversation_id))
    return settings.effective_retention(group)


def due_conversations(now: datetime) -> list[tuple[int, datetime]]:
    """The conversations with a message older than their cutoff, and that cutoff, by id. One
    statement per retention value in use; each looks at the oldest remaining message of a
    conversation only (the (conversation_id, seq) index)."""
    deployment = int(settings.get("retention_days"))
    group_values = set(
        db.session.scalars(select(Group.retention_days).where(Group.retention_days > 0).distinct()).all()
    )
    values = sorted(group_values | ({deployment} if deployment > 0 else set()))
    oldest = (
        select(Message.created_at)
        .where(Message.conversation_id == Conversation.id, Message.seq > Conversation.purged_seq)
        .order_by(Message.seq)
        .limit(1)
        .correlate(Conversation)
        .scalar_subquery()
    )
    effective = func.coalesce(Group.retention_days, literal(deployment))
    found: list[tuple[int, datetime]] = []
    for days in values:
        cutoff = now - timedelta(days=days)
        ids = db.session.scalars(
            select(Conversation.id)
            .outerjoin(Group, Group.conversation_id == Conversation.id)
            .where(effective == days, Conversation.last_seq > Conversation.purged_seq, oldest < cutoff)
            .order_by(Conversation.id)
        ).all()
        found += [(conversation_id, cutoff) for conversation_id in ids]
    db.session.rollback()  # end the read: each batch is a transaction of its own
    return sorted(found)


def _lock(conversation_id: int) -> int | None:
    """Lock the conversation's row (the lock order of app/chat/stream.py) with a write, so SQLite
    takes its write lock now rather than upgrading a read later; its `purged_seq`."""
    return db.session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(purged_seq=Conversation.purged_seq)
        .returning(Conversation.purged_seq)
        .execution_options(synchronize_session=False)
    ).scalar()


def _hold_uploads(purged: list[int]) -> list[tuple[str, int]]:
    """Lock the uploads this batch may delete — those the purged messages carry, and the unbound
    ones they share — before anything is decided about them (FOR UPDATE on PostgreSQL, which waits
    for a forward holding one to commit its share; see the module's docstring). The uploads the
    purged messages carry, with their message."""
    shared_here = select(UploadShare.upload_id).where(UploadShare.message_id.in_(purged))
    rows = db.session.execute(
        select(Upload.id, Upload.message_id)
        .where(
            or_(Upload.message_id.in_(purged), and_(Upload.message_id.is_(None), Upload.id.in_(shared_here)))
        )
        .order_by(Upload.id)
        .with_for_update()
    ).all()
    return [(upload_id, message_id) for upload_id, message_id in rows if message_id is not None]


def _keep_shared(upload_ids: list[str], purged: list[int], removed_by_admin: set[str]) -> set[str]:
    """Uploads of purged messages that a staying message still shares (a forward, maybe a merged
    chat history carrying several): they stay, with their files, unbound (`message_id` NULL: the
    share rows keep them served and out of the upload cleanup, app/media/services.py). An upload
    whose message the site's administrators removed is not kept through its copies (they never
    served it). The ids kept."""
    candidates = [upload_id for upload_id in upload_ids if upload_id not in removed_by_admin]
    if not candidates:
        return set()
    kept = set(
        db.session.scalars(
            select(UploadShare.upload_id)
            .where(UploadShare.upload_id.in_(candidates), UploadShare.message_id.not_in(purged))
            .distinct()
        ).all()
    )
    if kept:
        db.session.execute(
            update(Upload)
            .where(Upload.id.in_(sorted(kept)))
            .values(message_id=None)
            .execution_options(synchronize_session=False)
        )
    return kept


def _orphaned_shares(purged: list[int]) -> list[str]:
    """Unbound uploads (kept earlier for their copies) that only purged messages still share."""
    elsewhere = (
        select(UploadShare.upload_id)
        .where(UploadShare.upload_id == Upload.id, UploadShare.message_id.not_in(purged))
        .exists()
    )
    shared_here = select(UploadShare.upload_id).where(UploadShare.message_id.in_(purged))
    return list(
        db.session.scalars(
            select(Upload.id).where(Upload.id.in_(shared_here), Upload.message_id.is_(None), ~elsewhere)
        ).all()
    )


def _purge_quotes(conversation_id: int, low: int, high: int) -> list[dict]:
    """The replies after `high` quoting a message in (low, high], with their quote emptied and
    marked `purged` (not yet written: they get stream positions last)."""
    rows = db.session.execute(
        select(Message.id, Message.reply).where(
            Message.conversation_id == conversation_id,
            Message.reply_to_seq > low,
            Message.reply_to_seq <= high,
            Message.seq > high,
            Message.recalled_at.is_(None),
        )
    ).all()
    changed = []
    for message_id, reply in rows:
        quote = reply or {}
        snapshot = {key: quote[key] for key in ("seq", "type", "sender") if key in quote}
        snapshot.update(purged=True, text="")
        changed.append({"r_id": message_id, "r_reply": snapshot})
    return changed


def purge_batch(conversation_id: int, cutoff: datetime, limit: int) -> Outcome:
    """Delete, in one transaction, at most `limit` of the conversation's oldest messages created
    before `cutoff` (a prefix of its seqs) with what hangs off them, and commit; then delete the
    files of the uploads that went. An empty outcome: nothing (more) to purge."""
    outcome = Outcome()
    purged_seq = _lock(conversation_id)
    if purged_seq is None:
        db.session.rollback()
        return outcome
    rows = db.session.execute(
        select(Message.id, Message.seq, Message.created_at, Message.recalled_as)
        .where(Message.conversation_id == conversation_id, Message.seq > purged_seq)
        .order_by(Message.seq)
        .limit(limit)
    ).all()
    batch = []
    for row in rows:
        if row.created_at >= cutoff:
            break
        batch.append(row)
    if not batch:
        db.session.rollback()
        return outcome
    ids = [row.id for row in batch]
    high = batch[-1].seq
    uploads = _hold_uploads(ids)
    removed_by_admin = {row.id for row in batch if row.recalled_as == "admin"}
    by_admin = {upload_id for upload_id, message_id in uploads if message_id in removed_by_admin}
    kept = _keep_shared([upload_id for upload_id, _ in uploads], ids, by_admin)
    doomed = [upload_id for upload_id, _ in uploads if upload_id not in kept] + _orphaned_shares(ids)
    for model in (MessageReaction, MessageMention, MessageEdit, MessageHide, MessagePlay, UploadShare):
        db.session.execute(delete(model).where(model.message_id.in_(ids)))
    gone = []
    if doomed:
        gone = db.session.execute(
            delete(Upload).where(Upload.id.in_(doomed)).returning(Upload.storage_key, Upload.thumb_key)
        ).all()
    quotes = _purge_quotes(conversation_id, purged_seq, high)
    db.session.execute(
        delete(Message).where(Message.id.in_(ids)).execution_options(synchronize_session=False)
    )
    pins = db.session.scalar(select(Conversation.pins).where(Conversation.id == conversation_id))
    # The stream counter last (app/chat/stream.py); the replies rewritten after it change only
    # under the conversation's lock, which this transaction holds.
    first = take_stream_positions(len(quotes) + 1)
    if quotes:
        db.session.execute(_SET_QUOTE, [{**quote, "r_pos": first + 1 + i} for i, quote in enumerate(quotes)])
    values = {"purged_seq": high, "stream_pos": first}
    if pins:
        values["pins"] = [pin for pin in pins if pin["seq"] > high] or None
    db.session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    storage = get_storage()
    for storage_key, thumb_key in gone:
        for key in (storage_key, thumb_key):
            if key:
                storage.delete(key)
                outcome.files.append(key)
    outcome.messages, outcome.uploads, outcome.batches = len(ids), len(gone), 1
    return outcome


def purge_conversation(conversation_id: int, cutoff: datetime, limit: int | None = None) -> Outcome:
    """Purge the conversation's messages older than `cutoff`, one batch after the other (other
    greenlets run between them)."""
    limit = limit or current_app.config["RETENTION_BATCH"]
    total = Outcome()
    while True:
        step = purge_batch(conversation_id, cutoff, limit)
        total.messages += step.messages
        total.uploads += step.uploads
        total.batches += step.batches
        total.files += step.files
        if step.messages < limit:
            break
        gevent.sleep(0)
    total.conversations = int(total.messages > 0)
    return total


def purge(now: datetime | None = None) -> Outcome:
    """Apply the retention policy to every conversation (what the periodic job runs). A conversation
    that fails is rolled back and logged and the others go on; the run then raises, so the job is
    recorded as failed."""
    now = now or utcnow()
    total = Outcome()
    for conversation_id, cutoff in due_conversations(now):
        try:
            step = purge_conversation(conversation_id, cutoff)
        except Exception:
            # One conversation's failure must not keep the others old: its committed batches
            # stay, the next run takes it up again.
            db.session.rollback()
            log.exception("retention: purging conversation %s failed", conversation_id)
            total.failed += 1
            continue
        total.conversations += step.conversations
        total.messages += step.messages
        total.uploads += step.uploads
        total.batches += step.batches
    if total.messages:
        log.info(
            "retention: %s messages and %s uploads purged in %s conversations (%s batches)",
            total.messages,
            total.uploads,
            total.conversations,
            total.batches,
        )
    if total.failed:
        # The others are done; the job still reports the failure (logged above, one by one).
        raise RuntimeError(f"retention: {total.failed} conversation(s) could not be purged")
    return total
