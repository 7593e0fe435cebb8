"""For PostgreSQL race tests: wait until a thread's transaction is blocked on a row lock that a
connection of the test's holds, so the test lets it go at a known point."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from app.extensions import db


def waiting_on_a_lock(app) -> bool:
    with app.app_context(), db.engine.connect() as connection:
        return bool(
            connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


def until_waiting_on_a_lock(app, thread: threading.Thread, outcome: dict, timeout: float = 30) -> None:
    """Return once some session waits on a lock; fail (showing `outcome`) if `thread` ends or the
    time runs out first."""
    deadline = time.monotonic() + timeout
    while not waiting_on_a_lock(app):
        assert thread.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.01)
