"""Periodic jobs: each has one `job_schedules` row (made on first need; the primary key settles a
race between processes), due at `next_run_at`.

A process claims a due schedule with one conditional UPDATE that sets its lease (due, and held by
nobody or by a lease that ran out), runs it, then moves `next_run_at` on by the interval, sets
`last_run_at` and frees the lease — only while the lease is still its own. A run is handed the
window it covers, `(since, now]`: `since` is the last run's `now` (on the first run, one interval
back), so a run that failed or died is covered again by the next. A run that does not commit by
itself (the ended mutes) commits its writes together with the schedule's move: if its lease was
taken over meanwhile, both roll back and what it would have told is told once, by the other
process. A process that died mid-run leaves the lease to run out, and another process runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import gevent
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.jobs import lease
from app.jobs.queue import JobTimedOut
from app.models import utcnow
from app.models.jobs import JobSchedule

log = logging.getLogger(__name__)

S = JobSchedule


@dataclass(frozen=True)
class Periodic:
    name: str
    run: Callable[[datetime, datetime], None]
    # Seconds between runs (0: not run), and the most one run may take, from the settings.
    interval: Callable[[Mapping], float]
    timeout: Callable[[Mapping], float]


PERIODIC: dict[str, Periodic] = {}


def every(name: str, interval: Callable[[Mapping], float], timeout: Callable[[Mapping], float]):
    """Register `function(since, now)` to run once per `interval` across every process."""

    def register(function: Callable[[datetime, datetime], None]):
        PERIODIC[name] = Periodic(name, function, interval, timeout)
        return function

    return register


@dataclass(frozen=True)
class Claim:
    name: str
    since: datetime | None  # the last run's `now`
    now: datetime
    lease_until: datetime


def _enabled(app: Flask) -> list[str]:
    return [name for name, periodic in PERIODIC.items() if periodic.interval(app.config) > 0]


def _create(names: list[str], now: datetime) -> None:
    """Schedule rows for `names`, due now; another process making one first is fine."""
    for name in names:
        try:
            db.session.execute(insert(S).values(name=name, next_run_at=now))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()


def due(app: Flask, now: datetime | None = None) -> list[str]:
    """The enabled schedules due at `now` that nobody holds (one read of a few rows); a missing
    row is made, due at once."""
    now = now or utcnow()
    names = _enabled(app)
    if not names:
        return []
    with app.app_context():
        try:
            rows = db.session.execute(
                select(S.name, S.next_run_at, S.lease_until).where(S.name.in_(names))
            ).all()
            db.session.rollback()  # end the read: a claim must not be an upgrade of it (SQLite)
            found = {row.name for row in rows}
            missing = [name for name in names if name not in found]
            _create(missing, now)
        finally:
            db.session.remove()
    free = [
        row.name
        for row in rows
        if row.next_run_at <= now and (row.lease_until is None or row.lease_until < now)
    ]
    return free + missing


def claim(app: Flask, name: str, now: datetime | None = None) -> Claim | None:
    """Hold schedule `name` for one run if it is due and nobody holds it (committed at once)."""
    now = now or utcnow()
    periodic = PERIODIC[name]
    margin = app.config["JOB_LEASE_MARGIN_SECONDS"]
    held_until = now + timedelta(seconds=periodic.timeout(app.config) + margin)
    statement = (
        update(S)
        .where(S.name == name, S.next_run_at <= now, lease.free(S.lease_until, now))
        .values(lease_until=held_until)
        .returning(S.last_run_at, S.lease_until)
        .execution_options(synchronize_session=False)
    )
    with app.app_context():
        try:
            row = db.session.execute(statement).first()
            db.session.commit()
        finally:
            db.session.remove()
    return None if row is None else Claim(name, row.last_run_at, now, row.lease_until)


def run(app: Flask, claimed: Claim) -> str:
    """Run a claimed schedule: "done", "failed" (its error kept in `last_error`; due again after
    the interval) or "taken over" (the lease ran out and another process holds it)."""
    periodic = PERIODIC[claimed.name]
    interval = timedelta(seconds=periodic.interval(app.config))
    mine = (S.name == claimed.name) & (S.lease_until == claimed.lease_until)
    moved = {"next_run_at": claimed.now + interval, "lease_until": None}
    with app.app_context():
        try:
            try:
                limit = periodic.timeout(app.config)
                with gevent.Timeout(limit, JobTimedOut(f"no result within {limit} s")):
                    periodic.run(claimed.since or claimed.now - interval, claimed.now)
            except (Exception, JobTimedOut) as failure:
                db.session.rollback()
                error = f"{type(failure).__name__}: {failure}"[:500]
                log.exception("periodic job %s failed", claimed.name)
                statement = update(S).where(mine).values(**moved, last_error=error)
                outcome = "failed"
            else:
                statement = update(S).where(mine).values(**moved, last_run_at=claimed.now, last_error=None)
                outcome = "done"
            if db.session.execute(statement.execution_options(synchronize_session=False)).rowcount:
                db.session.commit()
                return outcome
            db.session.rollback()
            log.info("periodic job %s was taken over by another process; not recorded here", claimed.name)
            return "taken over"
        finally:
            db.session.remove()


def run_due(app: Flask, now: datetime | None = None, spawn: Callable | None = None) -> list[str]:
    """Claim every due schedule and run it (each in a greenlet of its own with `spawn`, else in
    the caller's); the names claimed."""
    claimed = [found for name in due(app, now) if (found := claim(app, name, now)) is not None]
    for one in claimed:
        if spawn is None:
            run(app, one)
        else:
            spawn(run, app, one)
    return [one.name for one in claimed]
