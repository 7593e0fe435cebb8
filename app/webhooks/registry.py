"""The enabled webhooks, kept in each process for `WEBHOOK_CACHE_SECONDS`.

Every send asks "is a hook subscribed to this event?": the answer comes from memory, so with no
hook configured the send path runs no statement for webhooks at all. The process that changes a
hook (app/webhooks/manage.py) drops its copy at once; other processes see the change within
`WEBHOOK_CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.integrations import Webhook

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


def enabled_hooks() -> tuple[Hook, ...]:
    """Every enabled hook, ordered by id (from memory while the copy is fresh)."""
    global _cache
    ttl = current_app.config["WEBHOOK_CACHE_SECONDS"]
    now = time.monotonic()
    if _cache is not None and ttl and now - _cache[0] < ttl:
        return _cache[1]
    # A connection of its own: the caller may be outside any transaction (a sender waiting for
    # its before-send check), and must not be left holding one.
    with db.engine.connect() as connection:
        rows = connection.execute(_LOAD).all()
    hooks = tuple(
        Hook(row.id, row.url, row.secret, frozenset(row.events or ()), row.timeout_ms, row.fail_open)
        for row in rows
    )
    _cache = (now, hooks)
    return hooks


def subscribed(event: str) -> tuple[Hook, ...]:
    """The enabled hooks that subscribed to `event`, ordered by id."""
    return tuple(hook for hook in enabled_hooks() if event in hook.events)


def clear() -> None:
    """Drop this process's copy (a hook changed here); the next use reads the table."""
    global _cache
    _cache = None


def known_empty() -> None:
    """This process knows there is no hook (the tests empty the tables between tests)."""
    global _cache
    _cache = (time.monotonic(), ())
