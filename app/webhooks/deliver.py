"""The delivery worker: takes due outbox rows and POSTs them, once across every process.

One greenlet per server process (started from wsgi.py, never by CLI commands or migrations) is
woken after a commit that wrote rows, and otherwise looks for due rows every `POLL_SECONDS`.
It claims them with a lease in one statement, as queued jobs are claimed (app/jobs/lease.py), so
two processes never take the same row, and a process killed mid-delivery leaves rows another
takes over once the lease ends; the outcome is recorded only while the claim is still the row's
(`lease_until` unchanged), so a process that outlived its lease never overwrites what the one
that took the row over recorded. A poll that finds no due row writes nothing. Deliveries run on
a pool of
`WEBHOOK_WORKERS` greenlets; a 2xx answer marks a row delivered, anything else schedules the
next attempt with exponential backoff and jitter until `WEBHOOK_RETRY_HOURS` after the event,
then marks it failed. A receiver may see an event twice (an answer lost, a lease taken over):
deliveries are at least once, de-duplicated by event id. Delivered rows are purged
`WEBHOOK_LOG_DAYS` after their delivery, failed ones that long after their last attempt (they
hold users' names and messages), a bounded batch at a time.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import gevent
import gevent.event
import gevent.pool
import requests
from flask import Flask
from sqlalchemy import and_, delete, or_, select, update

from app import metrics
from app.extensions import db
from app.jobs import lease
from app.models import utcnow
from app.models.integrations import Webhook, WebhookDelivery
from app.webhooks import signing

log = logging.getLogger(__name__)

WORKER = "parley.webhooks"
POLL_SECONDS = 1.0
PURGE_SECONDS = 60.0
PURGE_BATCH = 1000
BACKOFF_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 3600.0
# A claim lasts the delivery's timeout and this margin: a process that died holding it (kill -9)
# hands its rows to another soon after.
LEASE_MARGIN_SECONDS = 10

D = WebhookDelivery
_hooks = Webhook.__table__


def _due(now: datetime, limit: int):
    return (
        select(D.id)
        .where(D.status == "pending", D.next_attempt_at <= now, lease.free(D.lease_until, now))
        .order_by(D.next_attempt_at, D.id)
        .limit(limit)
    )


def _claim_statement(dialect: str, now: datetime, lease_until: datetime, limit: int):
    return lease.claim_statement(
        dialect,
        D,
        D.id,
        _due(now, limit),
        {"lease_until": lease_until, "attempts": D.attempts + 1},
        [D.id, D.webhook_id, D.event_id, D.event, D.payload, D.attempts, D.created_at, D.lease_until],
    )


def claim(app: Flask, limit: int, now: datetime | None = None) -> list:
    """Take up to `limit` due rows for this process (committed at once: the lease is the claim;
    each row carries its `lease_until`, which recording its outcome needs). `now`: the tests'
    clock."""
    timeout = app.config["WEBHOOK_TIMEOUT_SECONDS"]
    now = now or utcnow()
    lease_until = now + timedelta(seconds=timeout + LEASE_MARGIN_SECONDS)
    return lease.claim(app, _due(now, 1), lambda dialect: _claim_statement(dialect, now, lease_until, limit))


def _hooks_of(app: Flask, hook_ids: set[int]) -> dict[int, object]:
    with app.app_context():
        try:
            query = select(_hooks.c.id, _hooks.c.url, _hooks.c.secret, _hooks.c.enabled)
            return {row.id: row for row in db.session.execute(query.where(_hooks.c.id.in_(hook_ids)))}
        finally:
            db.session.remove()


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: 2, 4, 8 … up to an hour, plus jitter."""
    return lease.backoff(attempts, BACKOFF_SECONDS, BACKOFF_MAX_SECONDS)


def post(hook, row, timeout: float) -> tuple[int | None, str | None]:
    """POST one delivery; (status code, error) — error None means delivered."""
    body = signing.encode(row.payload)
    headers = signing.headers(row.event, row.event_id, hook.secret, body)
    try:
        with gevent.Timeout(timeout + 1):
            response = signing.session().post(hook.url, data=body, headers=headers, timeout=timeout)
            response.close()
    except gevent.Timeout:
        return None, "timed out"
    except requests.RequestException as error:
        # Its message may quote the URL: a token in it must not reach the log or the console.
        return None, signing.scrub(f"{type(error).__name__}: {error}", hook.url)[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def _record(app: Flask, hook_id: int, row, code: int | None, error: str | None) -> None:
    now = utcnow()
    values: dict = {"lease_until": None, "last_status_code": code, "last_error": error}
    if error is None:
        values.update(status="delivered", delivered_at=now)
        status = "delivered"
    else:
        retry_until = row.created_at + timedelta(hours=app.config["WEBHOOK_RETRY_HOURS"])
        next_at = now + timedelta(seconds=backoff(row.attempts))
        status = "failed" if next_at > retry_until else "retrying"
        values.update(status="failed" if status == "failed" else "pending", next_attempt_at=next_at)
    with app.app_context():
        try:
            # Only while the claim is still ours: a process whose lease ran out (a slow receiver,
            # a paused process) must not overwrite the outcome of the one that took the row over
            # — marking a delivered row pending again would send it once more.
            recorded = db.session.execute(
                update(D).where(D.id == row.id, D.lease_until == row.lease_until).values(**values)
            ).rowcount
            if not recorded:
                log.info("webhook delivery %s was taken over by another process; not recorded", row.id)
                db.session.rollback()
                return
            db.session.execute(
                update(Webhook)
                .where(Webhook.id == hook_id)
                .values(last_delivery_at=now, last_status=status, last_status_code=code, last_error=error)
            )
            db.session.commit()
        finally:
            db.session.remove()


def deliver_one(app: Flask, hook, row) -> bool:
    if hook is None or not hook.enabled:
        # A disabled hook's rows wait, unsent, and fail when their retry time is up.
        _record(app, row.webhook_id, row, None, "webhook disabled")
        return False
    code, error = post(hook, row, app.config["WEBHOOK_TIMEOUT_SECONDS"])
    if error is not None:
        metrics.webhook_failed()
    _record(app, hook.id, row, code, error)
    return error is None


def deliver_due(app: Flask, limit: int = 100) -> int:
    """Claim and deliver every due row now, in the caller's greenlet and a pool; returns how many
    were delivered (the in-process tests call it; the worker does the same in its loop)."""
    pool = gevent.pool.Pool(app.config["WEBHOOK_WORKERS"])
    delivered = 0
    while True:
        rows = claim(app, limit)
        if not rows:
            break
        hooks = _hooks_of(app, {row.webhook_id for row in rows})
        jobs = [pool.spawn(deliver_one, app, hooks.get(row.webhook_id), row) for row in rows]
        gevent.joinall(jobs)
        delivered += sum(1 for job in jobs if job.value)
    return delivered


def purge(app: Flask, now: datetime | None = None) -> int:
    """Delete rows `WEBHOOK_LOG_DAYS` after they were delivered, or after the last attempt of
    those that failed, `PURGE_BATCH` at a time. (A failed row's `next_attempt_at` is set when it
    fails, at most an hour or so later; a retry from the console moves it on.)"""
    cutoff = (now or utcnow()) - timedelta(days=app.config["WEBHOOK_LOG_DAYS"])
    old = (
        select(D.id)
        .where(
            or_(
                and_(D.status == "delivered", D.delivered_at < cutoff),
                and_(D.status == "failed", D.next_attempt_at < cutoff),
            )
        )
        .limit(PURGE_BATCH)
    )
    total = 0
    while True:
        with app.app_context():
            try:
                count = db.session.execute(
                    delete(D)
                    .where(D.id.in_(old.scalar_subquery()))
                    .execution_options(synchronize_session=False)
                ).rowcount
                db.session.commit()
            finally:
                db.session.remove()
        total += count
        if count < PURGE_BATCH:
            return total
        gevent.sleep(0)


class Worker:
    """This process's delivery loop (one greenlet)."""

    def __init__(self, app: Flask):
        self.app = app
        self.wakeup = gevent.event.Event()
        self.pool = gevent.pool.Pool(app.config["WEBHOOK_WORKERS"])
        self.greenlet: gevent.Greenlet | None = None
        self._purged_at = 0.0

    def start(self) -> Worker:
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)
        return self

    def _run(self) -> None:
        while True:
            try:
                self._once()
            except Exception:
                log.exception("webhook delivery round failed")
                gevent.sleep(POLL_SECONDS)
            self.wakeup.wait(POLL_SECONDS)
            self.wakeup.clear()

    def _once(self) -> None:
        while self.pool.free_count() > 0:
            rows = claim(self.app, self.pool.free_count())
            if not rows:
                break
            hooks = _hooks_of(self.app, {row.webhook_id for row in rows})
            for row in rows:
                self.pool.spawn(self._deliver, hooks.get(row.webhook_id), row)
        if time.monotonic() - self._purged_at > PURGE_SECONDS:
            self._purged_at = time.monotonic()
            purge(self.app)

    def _deliver(self, hook, row) -> None:
        try:
            deliver_one(self.app, hook, row)
        except Exception:
            log.exception("webhook delivery %s failed", row.id)
        finally:
            # A free slot may take the next due row at once.
            self.wakeup.set()


_worker: Worker | None = None


def start_worker(app: Flask) -> Worker:
    """Start this process's worker (wsgi.py; a server process only)."""
    global _worker
    _worker = Worker(app).start()
    return _worker


def wake() -> None:
    """Rows were just committed: deliver them now rather than at the next poll."""
    if _worker is not None:
        _worker.wakeup.set()
