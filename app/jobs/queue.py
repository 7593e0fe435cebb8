"""Queued jobs: one row each, written in the transaction of the change that asks for it, run
once across every process, taken over when the process running it dies.

`enqueue(kind, payload)` adds the row in the caller's transaction, so the job exists exactly when
what asked for it commits. A job due now is written already claimed by this process (its lease
set): once the transaction commits, this process runs it at once in a greenlet of its own, and
no other process takes it unless that lease runs out — the process died, or hung past its
kind's time limit. Server processes with `JOB_WORKER` also poll every `POLL_SECONDS` for due
jobs nobody holds (a lease that ran out, a retry whose time came, a job queued for later or by a
command) and claim them with a lease (app/jobs/lease.py), `JOB_CONCURRENCY` at a time.

A run that succeeds deletes its row; one that raises (or outlives its kind's time limit) is
tried again after a backoff (2 s, 4 s, 8 s … up to 10 minutes), `JOB_MAX_ATTEMPTS` times in all,
then logged at ERROR with its last error and payload, and deleted. Either outcome is recorded
only while the row still carries this run's lease. A job can therefore run more than once (a
process that died after the work, before the delete): a kind's handler is idempotent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import gevent
import gevent.event
import gevent.pool
from flask import Flask, current_app
from sqlalchemy import case, delete, literal, select, update

from app import realtime
from app.extensions import db
from app.jobs import lease
from app.models import utcnow
from app.models.jobs import Job
from app.models.types import UTCDateTime

log = logging.getLogger(__name__)

EXTENSION = "parley.jobs"
POLL_SECONDS = 1.0
BACKOFF_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0
# The time limit of a kind this process does not know (a row another version of Parley wrote).
DEFAULT_TIMEOUT_SECONDS = 30.0

J = Job
_jobs = Job.__table__


class JobTimedOut(BaseException):
    """A run outlived its time limit: it is stopped (and tried again later). Not an Exception,
    as gevent's Timeout is not, so that a handler's own `except Exception` cannot swallow it."""


@dataclass(frozen=True)
class Kind:
    name: str
    run: Callable[[dict], None]
    # Seconds one run may take, from the settings; its lease lasts JOB_LEASE_MARGIN_SECONDS more.
    timeout: Callable[[Mapping], float]


KINDS: dict[str, Kind] = {}


def kind(name: str, timeout: Callable[[Mapping], float] = lambda config: DEFAULT_TIMEOUT_SECONDS):
    """Register the handler of jobs of `name`: called with the payload in an app context; it
    commits its own work, raises to be tried again, and must be idempotent."""

    def register(function: Callable[[dict], None]) -> Callable[[dict], None]:
        KINDS[name] = Kind(name, function, timeout)
        return function

    return register


@dataclass(frozen=True)
class Claimed:
    """A job this process holds until `lease_until` (its claim: outcomes are recorded only while
    the row still carries it)."""

    id: int
    kind: str
    payload: dict
    attempts: int
    lease_until: datetime


def _timeout(config: Mapping, kind_name: str) -> float:
    found = KINDS.get(kind_name)
    return found.timeout(config) if found else DEFAULT_TIMEOUT_SECONDS


def lease_until(config: Mapping, kind_name: str, now: datetime) -> datetime:
    return now + timedelta(seconds=_timeout(config, kind_name) + config["JOB_LEASE_MARGIN_SECONDS"])


# --- queueing --------------------------------------------------------------------------------


def enqueue(kind_name: str, payload: dict, run_after: datetime | None = None) -> int:
    """Queue a job in the caller's transaction (it commits or rolls back with it); returns its
    id. Due now: this process starts it as soon as the transaction commits."""
    if kind_name not in KINDS:
        raise ValueError(f"unknown job kind {kind_name!r}")
    payload = json.loads(json.dumps(payload))  # as a process reading the row would get it
    app = current_app._get_current_object()
    now = utcnow()
    start_now = run_after is None or run_after <= now
    values = {
        "kind": kind_name,
        "payload": payload,
        "created_at": now,
        "run_after": now if start_now else run_after,
        "attempts": 1 if start_now else 0,
        "lease_until": lease_until(app.config, kind_name, now) if start_now else None,
    }
    job_id, held_until = db.session.execute(
        _jobs.insert().values(values).returning(_jobs.c.id, _jobs.c.lease_until)
    ).one()
    if start_now:
        job = Claimed(job_id, kind_name, payload, 1, held_until)
        realtime.on_commit(lambda: gevent.spawn(execute, app, job))
    return job_id


# --- claiming and running --------------------------------------------------------------------


def _due(now: datetime, limit: int):
    return (
        select(J.id)
        .where(J.run_after <= now, lease.free(J.lease_until, now))
        .order_by(J.run_after, J.id)
        .limit(limit)
    )


def claim(app: Flask, limit: int, now: datetime | None = None) -> list[Claimed]:
    """Take up to `limit` due jobs nobody holds, each with its kind's lease (committed at once).
    `now`: the tests' clock."""
    now = now or utcnow()
    config = app.config
    default = literal(lease_until(config, "", now), UTCDateTime())
    leases = {name: literal(lease_until(config, name, now), UTCDateTime()) for name in KINDS}
    held_until = case(leases, value=J.kind, else_=default) if leases else default

    def statement(dialect: str):
        return lease.claim_statement(
            dialect,
            J,
            J.id,
            _due(now, limit),
            {"lease_until": held_until, "attempts": J.attempts + 1},
            [J.id, J.kind, J.payload, J.attempts, J.lease_until],
        )

    return [Claimed(*row) for row in lease.claim(app, _due(now, 1), statement)]


def execute(app: Flask, job: Claimed, now: datetime | None = None) -> str:
    """Run one claimed job and record the outcome: "done", "retry", "gave up", or "taken over"
    (the lease ran out and another process holds the row: nothing is recorded here)."""
    found = KINDS.get(job.kind)
    error = None
    with app.app_context():
        try:
            if found is None:
                raise LookupError(f"unknown job kind {job.kind!r}")
            limit = found.timeout(app.config)
            with gevent.Timeout(limit, JobTimedOut(f"no result within {limit} s")):
                found.run(job.payload)
        except (Exception, JobTimedOut) as failure:
            db.session.rollback()
            error = f"{type(failure).__name__}: {failure}"[:500]
            log.warning(
                "job %s (%s) failed on attempt %s: %s", job.id, job.kind, job.attempts, error, exc_info=True
            )
        finally:
            db.session.remove()
    return finish(app, job, error, now)


def finish(app: Flask, job: Claimed, error: str | None, now: datetime | None = None) -> str:
    """Delete the job (done, or out of attempts) or schedule its next attempt — only while this
    run's lease is still the row's."""
    now = now or utcnow()
    mine = (J.id == job.id) & (J.lease_until == job.lease_until)
    if error is None:
        outcome, statement = "done", delete(J).where(mine)
    elif job.attempts >= app.config["JOB_MAX_ATTEMPTS"]:
        outcome, statement = "gave up", delete(J).where(mine)
    else:
        retry_at = now + timedelta(seconds=lease.backoff(job.attempts, BACKOFF_SECONDS, BACKOFF_MAX_SECONDS))
        values = {"lease_until": None, "run_after": retry_at, "last_error": error}
        outcome, statement = "retry", update(J).where(mine).values(**values)
    with app.app_context():
        try:
            recorded = db.session.execute(statement.execution_options(synchronize_session=False)).rowcount
            db.session.commit()
        finally:
            db.session.remove()
    if not recorded:
        log.info("job %s (%s) was taken over by another process; not recorded here", job.id, job.kind)
        return "taken over"
    if outcome == "gave up":
        log.error(
            "job %s (%s) gave up after %s attempts: %s; payload %s",
            job.id,
            job.kind,
            job.attempts,
            error,
            json.dumps(job.payload, ensure_ascii=False)[:1000],
        )
    return outcome


def run_due(app: Flask, limit: int = 100, now: datetime | None = None) -> list[str]:
    """Claim and run every due job now, in the caller's greenlet; their outcomes (the in-process
    tests call it; a worker does the same in its loop)."""
    outcomes = []
    while jobs := claim(app, limit, now):
        outcomes += [execute(app, job, now) for job in jobs]
    return outcomes


# --- the worker --------------------------------------------------------------------------------


class Worker:
    """A server process's poller (one greenlet): takes due jobs nobody holds onto a pool of
    `JOB_CONCURRENCY` greenlets, and starts the periodic jobs that are due (app/jobs/schedule.py)."""

    def __init__(self, app: Flask):
        self.app = app
        self.pool = gevent.pool.Pool(app.config["JOB_CONCURRENCY"])
        self.greenlet: gevent.Greenlet | None = None

    def start(self) -> Worker:
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)
        return self

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill()
            self.greenlet = None

    def _run(self) -> None:
        from app.jobs import schedule

        while True:
            try:
                while self.pool.free_count() > 0:
                    jobs = claim(self.app, self.pool.free_count())
                    if not jobs:
                        break
                    for job in jobs:
                        self.pool.spawn(execute, self.app, job)
                schedule.run_due(self.app, spawn=gevent.spawn)
            except Exception:
                log.exception("job poll failed")
            gevent.sleep(POLL_SECONDS)


def start_worker(app: Flask) -> Worker:
    """Start this server process's poller (wsgi.py, with JOB_WORKER; never CLI commands)."""
    from app.jobs import periodic  # noqa: F401  (registers the periodic jobs)

    worker = app.extensions.get(EXTENSION)
    if worker is None:
        worker = app.extensions[EXTENSION] = Worker(app)
    return worker.start()
