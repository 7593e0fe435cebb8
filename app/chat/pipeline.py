"""Group commit: every send waiting at one moment is stored in one transaction.

The path a message walks: the sender's greenlet parses it, checks the right to speak (from the
cache, app/speak_cache.py) and screens it (word filter, before-send webhooks: app/chat/screen.py),
then hands it to this process's writer and waits. The writer takes
every send queued at that moment (up to `GROUP_COMMIT_BATCH`), appends them together — one
statement per step for the whole batch: conversations' seqs, senders' read marks, stream
positions, the rows themselves with `executemany` — commits once, and only then wakes each
sender with its ack. Deliveries leave after the commit, in seq order per conversation
(realtime.OrderedDelivery), exactly as a message stored alone.

No idle latency: the writer is started by the first send to arrive and exits when the queue is
empty, so a lone message is stored at once. Under load, sends pile up while a batch is being
written, and the next batch takes them all.

A batch fails as a whole (a resend racing in from another process hits the unique
(sender, client_msg_id) constraint, the database refuses, …): it is rolled back — no seq,
position or delivery of it survives — and each of its sends is then stored alone through
`send_message`, so one message's failure is only its own. A second send of the same
(sender, client_msg_id) within one batch waits for the first and gets its answer as a resend.

Media messages claim their upload row in the sender's own transaction, so they take
`send_message` directly; so does everything when `GROUP_COMMIT` is off.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import gevent
from flask import Flask, current_app
from gevent.event import AsyncResult
from sqlalchemy import bindparam, case, select, tuple_, update

from app import presenters, realtime, speak_cache
from app.chat.access import active_member_ids, check_can_speak, send_context
from app.chat.extras import prepare_extras, settle_replies, store_mentions
from app.chat.screen import screen_message
from app.chat.send import (
    SENDER_READ,
    STAMP_CONVERSATION,
    mention_row,
    message_stored,
    replay_of,
    send_message,
    without_blockers,
)
from app.chat.stream import take_stream_positions
from app.errors import ApiError
from app.extensions import db
from app.media.services import BODY_KINDS
from app.models import Conversation, Message, utcnow

log = logging.getLogger(__name__)

WRITER = "parley.writer"

_conversations = Conversation.__table__
_messages = Message.__table__
# Every row of a batch in one multi-row INSERT. RETURNING's order is not promised (SQLite), so
# each id comes back with its (conversation, seq), which names its row.
_INSERT_MESSAGES = _messages.insert().returning(_messages.c.conversation_id, _messages.c.seq, _messages.c.id)
# Conversation rows locked in id order before they are updated, on PostgreSQL: two processes'
# batches then never wait for each other's rows the other way round.
_LOCK_CONVERSATIONS = (
    select(_conversations.c.id)
    .where(_conversations.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_conversations.c.id)
    .with_for_update()
)


@functools.cache
def _bump_seqs(count: int):
    """Raise the last seq of `count` conversations, each by its own number of messages, in one
    statement (built once per count). Bound as c0..cN (ids) and n0..nN (messages)."""
    ids = [bindparam(f"c{i}") for i in range(count)]
    by = case(*((_conversations.c.id == ids[i], bindparam(f"n{i}")) for i in range(count)))
    return (
        update(_conversations)
        .where(_conversations.c.id.in_(ids))
        .values(last_seq=_conversations.c.last_seq + by, last_activity_at=bindparam("now"))
        .returning(_conversations.c.id, _conversations.c.last_seq)
    )


@dataclass(eq=False)
class Pending:
    """One send waiting for the writer, checked already."""

    user_id: int
    conversation_id: int
    client_msg_id: str
    body: dict
    context: object  # access.SendContext
    # The right-to-speak generation when it was checked: the writer stores the send only if no
    # service changed that right since (else it is checked again, stored alone).
    generation: tuple
    # The checked reply and mention columns (app/chat/extras.py), if the send has any.
    extras: dict | None = None
    result: AsyncResult = field(default_factory=AsyncResult)


_ALONE = object()  # the writer's answer: store this one through send_message

# How long the writer waits for the event loop to go quiet before it takes a batch.
IDLE_WAIT_SECONDS = 0.002


def send(
    user_id: int, conversation_id: int, client_msg_id: str, body: dict, extras: dict | None = None
) -> tuple[dict, bool]:
    """Send a message through the group commit; returns its payload and whether it was new
    (same contract as `send_message`, which it falls back to). `extras`: the send's `reply_to`,
    `mentions` and `mention_all`, checked here, in the sender's greenlet."""
    app = current_app._get_current_object()
    if not app.config["GROUP_COMMIT"] or body["type"] in BODY_KINDS:
        return send_message(user_id, conversation_id, client_msg_id, body, extras)
    generation = speak_cache.generation(user_id, conversation_id)
    try:
        context = send_context(user_id, conversation_id)
        check_can_speak(context)
        stored = prepare_extras(context, user_id, conversation_id, **extras) if extras else None
    except Exception:
        # A refusal, or a resend of a message stored before the sender lost the right (or before
        # what it answers was recalled): the direct path answers both exactly as documented.
        db.session.rollback()
        return send_message(user_id, conversation_id, client_msg_id, body, extras)
    # The writer uses a session of its own: end this one's transaction first, or a write it holds
    # (a device session's sliding expiry) would keep SQLite's lock from the writer. A socket
    # event whose right to speak came from the cache has no session yet: none is made for this.
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()
    try:
        body = screen_message(context, user_id, conversation_id, body, client_msg_id)
    except ApiError:
        # Refused now; a resend of a message stored before is still answered with it.
        db.session.rollback()
        replayed = replay_of(user_id, conversation_id, client_msg_id)
        if replayed is None:
            raise
        return replayed
    item = Pending(user_id, conversation_id, client_msg_id, body, context, generation, stored)
    _writer(app).submit(item)
    answer = item.result.get()
    if answer is _ALONE:
        return send_message(user_id, conversation_id, client_msg_id, body, extras, screened=True)
    return answer


def _writer(app: Flask) -> Writer:
    writer = app.extensions.get(WRITER)
    if writer is None:
        writer = app.extensions[WRITER] = Writer(app)
    return writer


class Writer:
    """This process's writer of sends: one greenlet at a time, only while there is work."""

    def __init__(self, app: Flask):
        self.app = app
        self.queue: list[Pending] = []
        self.greenlet: gevent.Greenlet | None = None
        self.batches = 0  # how many batches were committed together (the tests read it)

    def submit(self, item: Pending) -> None:
        self.queue.append(item)
        # A writer that ended (or was killed) is replaced; it takes what it left in the queue.
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while self.queue:
            # Let every send already on its way (sockets read, handlers started) join, but
            # never wait long for the loop to go quiet: a busy process would starve the writer.
            with gevent.Timeout(IDLE_WAIT_SECONDS, False):
                gevent.idle()
            size = self.app.config["GROUP_COMMIT_BATCH"]
            batch, self.queue = self.queue[:size], self.queue[size:]
            try:
                with self.app.app_context():
                    self._store(batch)
            finally:
                # Whatever happened, no sender is left waiting.
                for item in batch:
                    if not item.result.ready():
                        item.result.set(_ALONE)

    def _store(self, batch: list[Pending]) -> None:
        first: dict[tuple[int, str], Pending] = {}
        fresh: list[Pending] = []
        alone: list[Pending] = []
        for item in batch:
            key = (item.user_id, item.client_msg_id)
            if key in first:
                alone.append(item)  # a resend inside the batch: answered once its first is
            elif speak_cache.generation(item.user_id, item.conversation_id) != item.generation:
                alone.append(item)  # its right to speak changed since it was checked
            else:
                fresh.append(item)
            first.setdefault(key, item)
        actions = []
        resends: list[tuple[Pending, object]] = []
        try:
            stored = _stored_already(fresh)
            resends = [
                (item, _answer_resend(item)) for item in fresh if (item.user_id, item.client_msg_id) in stored
            ]
            fresh = [item for item in fresh if (item.user_id, item.client_msg_id) not in stored]
            answers = _append_batch(fresh) if fresh else []
            actions = realtime.commit_holding_actions()
        except Exception:
            db.session.rollback()
            log.info("a batch of %d sends failed together; storing each alone", len(fresh), exc_info=True)
            answers = [_ALONE] * len(fresh)
            resends = [(item, _ALONE) for item, _ in resends]
        else:
            self.batches += 1 if fresh else 0
        # Acks first (the senders wake next), then deliveries and the work queued after commit.
        for item, answer in zip(fresh, answers, strict=True):
            item.result.set(answer)
        for item in alone:
            item.result.set(_ALONE)
        for item, answer in resends:
            if isinstance(answer, ApiError):
                item.result.set_exception(answer)
            else:
                item.result.set(answer)
        realtime.run_actions(actions)


def _answer_resend(item: Pending):
    """A resend's answer from what is stored (or the error it gets), without storing anything."""
    try:
        return replay_of(item.user_id, item.conversation_id, item.client_msg_id) or _ALONE
    except ApiError as error:
        return error


def _stored_already(batch: list[Pending]) -> set[tuple[int, str]]:
    """The (sender, client_msg_id) of the batch stored before (resends after a lost ack or a
    restart): they are answered from what is stored, so they do not fail the batch at the
    unique constraint."""
    if not batch:
        return set()
    keys = [(item.user_id, item.client_msg_id) for item in batch]
    rows = db.session.connection().execute(
        select(_messages.c.sender_id, _messages.c.client_msg_id).where(
            tuple_(_messages.c.sender_id, _messages.c.client_msg_id).in_(keys)
        )
    )
    return {(sender_id, client_msg_id) for sender_id, client_msg_id in rows}


def _append_batch(batch: list[Pending]) -> list[tuple[dict, bool]]:
    """Append every send of the batch (all checked) in the caller's transaction; returns each
    one's (payload, True) in batch order. Deliveries are queued for after the commit."""
    now = utcnow()
    execute = db.session.connection().execute
    counts: dict[int, int] = {}
    for item in batch:
        counts[item.conversation_id] = counts.get(item.conversation_id, 0) + 1
    ids = sorted(counts)
    if db.engine.dialect.name == "postgresql":
        execute(_LOCK_CONVERSATIONS, {"ids": ids})
    params: dict = {"now": now}
    for i, conversation_id in enumerate(ids):
        params[f"c{i}"] = conversation_id
        params[f"n{i}"] = counts[conversation_id]
    last_seqs = dict(execute(_bump_seqs(len(ids)), params).all())
    quoting = [(item.conversation_id, item.extras) for item in batch if item.extras and item.extras["reply"]]
    if quoting:
        settle_replies(execute, quoting)
    # Each conversation's messages take its new seqs in batch order.
    next_seq = {c_id: last_seqs[c_id] - counts[c_id] for c_id in ids}
    seqs = []
    read_marks: dict[tuple[int, int], int] = {}
    for item in batch:
        next_seq[item.conversation_id] += 1
        seqs.append(next_seq[item.conversation_id])
        read_marks[item.conversation_id, item.user_id] = next_seq[item.conversation_id]
    # Member rows before the stream counter, in a fixed order (the lock order of stream.py).
    execute(
        SENDER_READ,
        [{"c_id": c_id, "u_id": u_id, "c_seq": seq} for (c_id, u_id), seq in sorted(read_marks.items())],
    )
    pos = take_stream_positions(len(batch)) - 1
    rows = []
    stamps: dict[int, int] = {}
    # Rows of one multi-row INSERT share their columns: the extras' columns are named in every
    # row, or (the common case) in none.
    blank = None
    if any(item.extras for item in batch):
        blank = {"reply_to_seq": None, "reply": None, "mentions": None, "mention_all": False}
    for item, seq in zip(batch, seqs, strict=True):
        pos += 1
        rows.append(
            {
                "conversation_id": item.conversation_id,
                "seq": seq,
                "sender_id": item.user_id,
                "type": item.body["type"],
                "body": item.body,
                "client_msg_id": item.client_msg_id,
                "stream_pos": pos,
                "created_at": now,
            }
        )
        if blank is not None:
            rows[-1].update(item.extras or blank)
        stamps[item.conversation_id] = pos
    inserted = {(c_id, seq): message_id for c_id, seq, message_id in execute(_INSERT_MESSAGES, rows)}
    message_ids = [inserted[row["conversation_id"], row["seq"]] for row in rows]
    if blank is not None:
        stored = zip(batch, rows, message_ids, strict=True)
        store_mentions(execute, [mention_row(row, m_id) for item, row, m_id in stored if item.extras])
    execute(STAMP_CONVERSATION, [{"c_id": c_id, "c_pos": c_pos} for c_id, c_pos in stamps.items()])
    answers = []
    members: dict[int, list[int]] = {}
    for item, values, message_id in zip(batch, rows, message_ids, strict=True):
        context = item.context
        message = Message(id=message_id, **values)
        payload = presenters.message(message, context.sender)
        if context.peer is not None:
            recipients = [item.user_id, context.peer.id] if context.peer_active else [item.user_id]
        else:
            if item.conversation_id not in members:
                members[item.conversation_id] = active_member_ids(item.conversation_id)
            recipients = members[item.conversation_id]
            if len(recipients) > 2:
                recipients = without_blockers(recipients, item.user_id)
        realtime.deliver_message_after_commit(item.conversation_id, values["seq"], payload, recipients)
        message_stored.send(context, message=message)
        answers.append((payload, True))
    return answers
