"""The one place that knows room names and talks to socket.io.

Services never emit directly: they call `on_commit(...)` helpers here, and the
events leave only after the database transaction commits (and are dropped if it
rolls back). Every socket joins its user's room `user:<id>`, so one emit reaches
every device of the user, on every process (Flask-SocketIO's message queue
carries it when REDIS_URL is set).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from app import metrics
from app.extensions import db, socketio

log = logging.getLogger(__name__)
PENDING = "parley.after_commit"
PREPARE = "parley.before_commit"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def on_commit(action: Callable[[], None]) -> None:
    """Run `action` once the current transaction has committed."""
    db.session.info.setdefault(PENDING, []).append(action)


def before_commit(action: Callable[[], None]) -> None:
    """Run `action` just before the transaction commits, when it can still query the
    final state (to build the payloads it hands to `emit_after_commit`)."""
    db.session.info.setdefault(PREPARE, []).append(action)


@event.listens_for(Session, "before_commit")
def _run_prepare(session: Session) -> None:
    while session.info.get(PREPARE):
        session.info[PREPARE].pop(0)()


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    run_actions(session.info.pop(PENDING, ()))


def run_actions(actions: Iterable[Callable[[], None]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:
            log.exception("after-commit action failed")


def commit_holding_actions() -> list[Callable[[], None]]:
    """Commit, and return the after-commit actions instead of running them: the caller runs
    them (`run_actions`) when it is ready, e.g. after waking the senders it acknowledges."""
    actions = db.session.info.pop(PENDING, [])
    try:
        db.session.commit()
    except Exception:
        db.session.info[PENDING] = actions  # dropped by the rollback, as any other
        raise
    return actions


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(PREPARE, None)
    for conversation_id, seq in session.info.pop(IN_FLIGHT, ()):
        _ordered.abandon(conversation_id, seq)


IN_FLIGHT = "parley.in_flight"


class OrderedDelivery:
    """Emits each conversation's messages in seq order from this process.

    A sender's transaction gets its seq under the conversation's row lock, so the next sender
    can commit as soon as this one has — and its after-commit emit may then run first. Every
    seq is registered here when it is assigned; a committed message waits until all lower
    seqs this process assigned are emitted (or rolled back), and one greenlet at a time
    drains a conversation, so emits that yield cannot interleave either. Seqs assigned by
    other processes are not waited for: across processes clients order by seq.
    """

    def __init__(self):
        self._in_flight: dict[int, set[int]] = {}
        self._ready: dict[int, dict[int, Callable[[], None]]] = {}
        self._draining: set[int] = set()

    def begin(self, conversation_id: int, seq: int) -> None:
        self._in_flight.setdefault(conversation_id, set()).add(seq)

    def abandon(self, conversation_id: int, seq: int) -> None:
        self._in_flight.get(conversation_id, set()).discard(seq)
        self._drain(conversation_id)

    def complete(self, conversation_id: int, seq: int, emit: Callable[[], None]) -> None:
        self._ready.setdefault(conversation_id, {})[seq] = emit
        self._drain(conversation_id)

    def _drain(self, conversation_id: int) -> None:
        if conversation_id in self._draining:
            return  # the greenlet draining this conversation will get to it
        self._draining.add(conversation_id)
        try:
            while True:
                in_flight = self._in_flight.get(conversation_id)
                ready = self._ready.get(conversation_id)
                if not in_flight or not ready or min(in_flight) not in ready:
                    break
                seq = min(in_flight)
                emit = ready.pop(seq)
                in_flight.discard(seq)
                try:
                    emit()
                except Exception:
                    log.exception("emitting message %s of conversation %s failed", seq, conversation_id)
            if not self._in_flight.get(conversation_id):
                self._in_flight.pop(conversation_id, None)
                self._ready.pop(conversation_id, None)
        finally:
            self._draining.discard(conversation_id)


_ordered = OrderedDelivery()


def deliver_message_after_commit(
    conversation_id: int, seq: int, payload: dict, user_ids: Iterable[int]
) -> None:
    """Queue `message:new` for after commit, in seq order per conversation (see OrderedDelivery)."""
    _ordered.begin(conversation_id, seq)
    db.session.info.setdefault(IN_FLIGHT, []).append((conversation_id, seq))
    targets = list(user_ids)

    def deliver():
        db.session.info.get(IN_FLIGHT, []).remove((conversation_id, seq))
        _ordered.complete(conversation_id, seq, lambda: emit_to_users("message:new", payload, targets))

    db.session.info.setdefault(PENDING, []).append(deliver)


def presence():
    return current_app.extensions["parley.presence"]


def emit_to_users(name: str, data, user_ids: Iterable[int], skip_sid: str | None = None) -> None:
    rooms = [user_room(user_id) for user_id in dict.fromkeys(user_ids)]
    if rooms:
        socketio.emit(name, data, to=rooms, skip_sid=skip_sid)
        if name == "message:new":
            metrics.messages_delivered(len(rooms))


def emit_after_commit(name: str, data, user_ids: Iterable[int], *, first: bool = False) -> None:
    """Deliver `name` to every device of `user_ids` once the transaction commits
    (`first`: ahead of the events queued so far, e.g. a new conversation before its messages)."""
    targets = list(user_ids)
    pending = db.session.info.setdefault(PENDING, [])
    pending.insert(0 if first else len(pending), lambda: emit_to_users(name, data, targets))


def disconnect_sids(sids: Iterable[str]) -> None:
    """Drop sockets wherever they are connected (the message queue reaches other processes).

    A socket on this process is disconnected at once, and its disconnect handler runs here and
    writes (last seen, the offline announcement): it gets an application context, and so a
    database session, of its own, never the one whose commit is running these actions."""
    sids = list(sids)
    if not sids:
        return
    with current_app.app_context():
        for sid in sids:
            socketio.server.disconnect(sid, namespace="/")


def disconnect_devices_after_commit(device_ids: Iterable[int]) -> None:
    ids = list(device_ids)
    store = presence()
    on_commit(lambda: disconnect_sids(sid for device_id in ids for sid in store.sids_of_device(device_id)))


def disconnect_user_after_commit(user_id: int) -> None:
    store = presence()
    on_commit(lambda: disconnect_sids(store.sids_of_user(user_id)))
