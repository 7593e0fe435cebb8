"""The robot's shared state: a small key-value store with expiry, kept in memory for a single
process or in Redis when several processes serve (the same split as `app/presence.py`).

It holds the UNIT access token (one for every process), each user's UNIT dialogue session,
the admins' on/off switch and the provider's last failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from threading import Lock

from flask import Flask, current_app

logger = logging.getLogger(__name__)

ENABLED_KEY = "enabled"


class MemoryStore:
    """Key-value pairs for one process; `clock` is when "now" is, in seconds."""

    errors: tuple[type[Exception], ...] = ()  # nothing to be away

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.last_switch: str | None = None
        self.away = False
        self._clock = clock
        self._lock = Lock()
        self._items: dict[str, tuple[str, float | None]] = {}

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            value, expires_at = item
            if expires_at is not None and expires_at <= self._clock():
                del self._items[key]
                return None
            return value

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Keep `value` under `key`, for `ttl` seconds if given."""
        with self._lock:
            self._items[key] = (value, None if ttl is None else self._clock() + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class RedisStore:
    """Key-value pairs every process shares, under `prefix:` in Redis (which expires them);
    the application's prefix is `<REDIS_NAMESPACE>:bot`."""

    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self.errors = (redis.RedisError,)
        # The admins' switch as this process last read it, and whether Redis is away (logged once).
        self.last_switch: str | None = None
        self.away = False

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str) -> str | None:
        return self.redis.get(self._key(key))

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self.redis.set(self._key(key), value, px=None if ttl is None else max(1, int(ttl * 1000)))

    def delete(self, key: str) -> None:
        self.redis.delete(self._key(key))

    def clear(self) -> None:
        keys = list(self.redis.scan_iter(f"{self.prefix}:*"))
        if keys:
            self.redis.delete(*keys)


def init_app(app: Flask) -> None:
    if "parley.bot_store" not in app.extensions:
        url = app.config["REDIS_URL"]
        prefix = f"{app.config['REDIS_NAMESPACE']}:bot"
        app.extensions["parley.bot_store"] = RedisStore(url, prefix) if url else MemoryStore()


def store() -> MemoryStore | RedisStore:
    return current_app.extensions["parley.bot_store"]


def is_enabled() -> bool:
    """The admins' switch if they used it, else `BOT_ENABLED`. While Redis is away, the switch as
    this process last read it: the client's page and presence still answer."""
    current = store()
    try:
        switch = current.get(ENABLED_KEY)
    except current.errors as error:
        if not current.away:
            current.away = True
            logger.warning("Robot state unreachable (%s): using the switch last read", error)
        switch = current.last_switch
    else:
        current.away = False
        current.last_switch = switch
    return current_app.config["BOT_ENABLED"] if switch is None else switch == "1"


def set_enabled(enabled: bool) -> None:
    store().set(ENABLED_KEY, "1" if enabled else "0")
