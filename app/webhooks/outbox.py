"""Writing webhook deliveries in the transaction of the change they report.

A service (through the signals app/webhooks/events.py listens to) calls `enqueue` while its
transaction is open. With no enabled hook subscribed to the event that is all: nothing is written,
no statement runs (the hook list comes from memory, app/webhooks/registry.py). Otherwise the event
waits in the session until just before the commit, when every event of the transaction becomes
rows — one per subscribed hook — in one multi-row INSERT (the group commit's batch of a hundred
messages writes one statement, not a hundred). The rows therefore exist exactly when the change
commits, survive a crash that follows, and vanish with a rollback. After the commit this
process's delivery worker is woken (app/webhooks/deliver.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import realtime
from app.extensions import db
from app.models import User, utcnow
from app.models.integrations import WebhookDelivery
from app.presenters import iso
from app.webhooks import registry

PENDING = "parley.webhook_outbox"
# Rows per INSERT statement (a bound on its parameters; SQLite allows 32766).
CHUNK = 500

_deliveries = WebhookDelivery.__table__
_USERS = select(User.id, User.username, User.nickname, User.external_id)


@dataclass(slots=True)
class _Event:
    name: str
    hooks: tuple[registry.Hook, ...]
    # Builds the event's data just before the commit, from the users it names (`users`).
    build: Callable[[dict[int, dict]], dict]
    user_ids: tuple[int, ...]
    # The savepoint open when it was queued: its rollback drops the event.
    savepoint: object = None


def enqueue(name: str, build: Callable[[dict[int, dict]], dict], user_ids: Iterable[int] = ()) -> bool:
    """Queue event `name` for every enabled hook subscribed to it, to be written just before this
    transaction commits. `build(users)` makes its data then; `users` maps each of `user_ids` to
    `user_ref` of it. Returns whether any hook wants it (nothing is done otherwise)."""
    hooks = registry.subscribed(name)
    if not hooks:
        return False
    events = db.session.info.get(PENDING)
    if events is None:
        events = db.session.info[PENDING] = []
    events.append(_Event(name, hooks, build, tuple(user_ids), db.session().get_nested_transaction()))
    return True


def user_ref(row) -> dict:
    """A user as every event names them: Parley's id, the company's id, and the names."""
    return {"id": row.id, "external_id": row.external_id, "username": row.username, "nickname": row.nickname}


@sa_event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # After realtime's own before-commit work (registered first), which may queue events too.
    if session.info.get(PENDING):
        _write(session)


def _write(session: Session) -> None:
    events = session.info.pop(PENDING)
    wanted = {user_id for item in events for user_id in item.user_ids if user_id is not None}
    users: dict[int, dict] = {}
    if wanted:
        # Users this transaction made or changed are flushed first, so their rows are read as
        # they will commit (external_id set after the account was made, say).
        session.flush()
        rows = session.execute(_USERS.where(User.id.in_(sorted(wanted))))
        users = {row.id: user_ref(row) for row in rows}
    now = utcnow()
    rows = []
    for item in events:
        event_id = str(uuid.uuid4())
        payload = {"id": event_id, "event": item.name, "created_at": iso(now), "data": item.build(users)}
        for hook in item.hooks:
            rows.append(
                {
                    "webhook_id": hook.id,
                    "event_id": event_id,
                    "event": item.name,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
            )
    execute = session.connection().execute
    for start in range(0, len(rows), CHUNK):
        execute(_deliveries.insert().values(rows[start : start + CHUNK]))
    session.info.setdefault(realtime.PENDING, []).append(_wake)  # realtime.on_commit, for this session


def _wake() -> None:
    from app.webhooks import deliver

    deliver.wake()


@sa_event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    """The transaction rolled back: its events go. A savepoint rolled back (one row of a batch
    refused): only the events queued inside it go."""
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        session.info.pop(PENDING, None)
        return
    events = session.info.get(PENDING)
    if events:
        events[:] = [item for item in events if not _inside(item.savepoint, savepoint)]


def _inside(transaction, ended) -> bool:
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False
