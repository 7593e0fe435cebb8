"""The enabled webhooks, kept in each process for `WEBHOOK_CACHE_SECONDS`.

Every send asks "is a hook subscribed to this event?": the answer comes from memory, so with no
hook configured the send path runs no statement for webhooks at all. The process that changes a
hook (app/webhooks/manage.py) drops its copy at once; other processes see the change within
`WEBHOOK_CACHE_SECONDS`.

When the copy expires, one caller reads the table and the others go on with the copy they have
(its stamp is moved before the read, as app/wordfilter/cache.py does): every sender reloading at
once, each on a connection of its own — a second pooled one for callers inside a transaction —
would empty the pool under load. With no copy at all (the process's first use, or just after a
change here) there is nothing to go on with: callers arriving during the read wait for it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import gevent.event
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.integrations import Webhook

log = logging.getLogger(__name__)

AFTER_EVENTS = (
    "message.sent",
    "message.recalled",
    "message.edited",
    "user.registered",
    "friend.added",
    "group.member_joined",
    "group.member_left",
    "user.banned",
)
BEFORE_SEND = "message.before_send"
EVENTS = (BEFORE_SEND, *AFTER_EVENTS)


@dataclass(frozen=True, slots=True)
class Hook:
    """An enabled webhook as plain values (it outlives the transaction it was read in)."""

    id: int
    url: str
    secret: str
    events: frozenset[str]
    timeout_ms: int
    fail_open: bool


_LOAD = (
    select(Webhook.id, Webhook.url, Webhook.secret, Webhook.events, Webhook.timeout_ms, Webhook.fail_open)
    .where(Webhook.enabled.is_(True))
    .order_by(Webhook.id)
)

# (monotonic time loaded, the hooks): one process-wide copy.
_cache: tuple[float, tuple[Hook, ...]] | None = None
# Bumped whenever the copy is dropped (a change here) or set (the tests): a read that began
# before is not stored over it.
_generation = 0
# (generation, result) of the read under way when there is no copy: later callers wait for it.
_first: tuple[int, gevent.event.AsyncResult] | None = None


def enabled_hooks() -> tuple[Hook, ...]:
    """Every enabled hook, ordered by id (from memory while the copy is fresh)."""
    global _cache, _first
    ttl = current_app.config["WEBHOOK_CACHE_SECONDS"]
    now = time.monotonic()
    cached = _cache
    if cached is not None and ttl and now - cached[0] < ttl:
        return cached[1]
    generation = _generation
    if cached is not None:
        # Stamped first: callers arriving while this one reads use the copy they have.
        _cache = (now, cached[1])
        try:
            return _load(now, generation)
        except Exception:
            log.exception("webhooks could not be read; using the list in memory")
            return cached[1]
    if _first is not None and _first[0] == generation:
        return _first[1].get()
    waiting = gevent.event.AsyncResult()
    _first = (generation, waiting)
    try:
        hooks = _load(now, generation)
    except Exception as error:
        waiting.set_exception(error)
        raise
    else:
        waiting.set(hooks)
    finally:
        if _first is not None and _first[1] is waiting:
            _first = None
    return hooks


def _load(now: float, generation: int) -> tuple[Hook, ...]:
    """Read the table and keep the result, unless the copy was dropped meanwhile (`clear`)."""
    global _cache
    # A connection of its own: the caller may be outside any transaction (a sender waiting for
    # its before-send check), and must not be left holding one.
    with db.engine.connect() as connection:
        rows = connection.execute(_LOAD).all()
    hooks = tuple(
        Hook(row.id, row.url, row.secret, frozenset(row.events or ()), row.timeout_ms, row.fail_open)
        for row in rows
    )
    if generation == _generation:
        _cache = (now, hooks)
    return hooks


def subscribed(event: str) -> tuple[Hook, ...]:
    """The enabled hooks that subscribed to `event`, ordered by id."""
    return tuple(hook for hook in enabled_hooks() if event in hook.events)


def clear() -> None:
    """Drop this process's copy (a hook changed here); the next use reads the table."""
    global _cache, _generation
    _generation += 1
    _cache = None


def known_empty() -> None:
    """This process knows there is no hook (the tests empty the tables between tests)."""
    global _cache, _generation
    _generation += 1
    _cache = (time.monotonic(), ())
