"""Claiming rows with a lease, once across every process: the job queue, the periodic jobs and
the webhook outbox all take their due rows this way.

A claim is one statement — `UPDATE … WHERE key IN (SELECT … due, lease free … LIMIT n [FOR
UPDATE SKIP LOCKED on PostgreSQL]) RETURNING …` — so two processes never take the same row
(SQLite runs it under its write lock). The new `lease_until` is the claim: whoever records an
outcome does so only while the row still carries it, so a process that outlived its lease never
overwrites what the process that took the row over recorded. A poll that finds nothing due (one
read of an index) writes nothing: an idle server takes no write lock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

from flask import Flask
from sqlalchemy import or_, update

from app.extensions import db


def free(lease_column, now: datetime):
    """The row is held by nobody: never claimed, released, or its holder's lease ran out."""
    return or_(lease_column.is_(None), lease_column < now)


def claim_statement(dialect: str, model, key, due, values: dict, returning: list):
    """Set `values` (the new lease…) on the rows `due` selects (their `key`s), returning
    `returning`; on PostgreSQL rows another process is claiming are skipped, not waited for."""
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return (
        update(model)
        .where(key.in_(due.scalar_subquery()))
        .values(**values)
        .returning(*returning)
        .execution_options(synchronize_session=False)
    )


def claim(app: Flask, probe, statement: Callable[[str], object]) -> list:
    """Run the claim `statement(dialect)` and commit it at once (the lease is the claim) — but
    only if `probe`, a read, finds a due row. The read is on a connection of its own, ended at
    once: the UPDATE must not be an upgrade of an older read (SQLite would refuse it if another
    write came in between)."""
    with app.app_context():
        with db.engine.connect() as connection:
            if connection.execute(probe).first() is None:
                return []
        try:
            rows = db.session.execute(statement(db.engine.dialect.name)).all()
            db.session.commit()
        finally:
            db.session.remove()
    return rows


def backoff(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt `attempts + 1`: base, 2·base, 4·base … up to `cap`, plus up to 20%
    jitter (so what one outage left does not all come back at the same instant)."""
    delay = min(base * 2 ** max(attempts - 1, 0), cap)
    return delay * (1 + random.random() * 0.2)
