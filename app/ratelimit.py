"""The rate limits Parley counts itself (sends, uploads, sign-in failures), on Flask-Limiter's storage.

Every such check goes through `hit`, `test` and `used`, so `RATELIMIT_ENABLED=false` switches them
all off (Flask-Limiter then never builds its counter, and calling it would fail), and every key
carries the deployment's `RATELIMIT_KEY_PREFIX`. Key parts that come from clients go through
`safe_key`, so any text (spaces, slashes, NUL, lone surrogates) makes a valid Redis key.

While the shared storage (Redis) is away, the counters fall back to this process's memory rather
than failing the request: limits still bite, per process, and the outage is logged once. Every
`RECHECK_SECONDS` one call tries Redis again; once it answers, counting goes back there (Redis
may have restarted empty: the windows then start afresh). Flask-Limiter's own decorators do the
same through `RATELIMIT_IN_MEMORY_FALLBACK_ENABLED` (config.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from threading import Lock

from flask import current_app
from limits import parse_many as _parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage

from app.errors import ApiError
from app.extensions import limiter

logger = logging.getLogger(__name__)

# While the shared storage is away, how often one call tries it again.
RECHECK_SECONDS = 1.0


@functools.lru_cache(maxsize=64)
def parse_many(rate: str) -> tuple:
    """The limits of a rate string, parsed once per string (a send checks its rate every time)."""
    return tuple(_parse_many(rate))


def enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def safe_key(value: str) -> str:
    """A fixed-length digest of client text, fit for any storage key."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class _Counters:
    """The shared counters (Flask-Limiter's storage) and, while that storage is away, this
    process's own in memory."""

    def __init__(self, storage):
        strategy = type(limiter.limiter)
        self.storage = storage
        self.shared = strategy(storage)
        self.memory = strategy(MemoryStorage())
        self.errors = (StorageError, storage.base_exceptions)
        self.can_fail = not isinstance(storage, MemoryStorage)
        self.away_until: float | None = None  # while away: when to try the shared storage again
        self.lock = Lock()

    def run(self, operation):
        """`operation(strategy)` on the shared counters, or on memory while they are away."""
        if not self.can_fail:
            return operation(self.shared)
        with self.lock:
            away, now = self.away_until is not None, time.monotonic()
            if away and now < self.away_until:
                return operation(self.memory)
            if away:
                self.away_until = now + RECHECK_SECONDS  # this call tries; the others stay in memory
        try:
            result = operation(self.shared)
        except self.errors as error:
            with self.lock:
                if self.away_until is None:
                    logger.warning(
                        "Rate limit counters unreachable (%s): counting in this process's memory meanwhile",
                        error,
                    )
                self.away_until = time.monotonic() + RECHECK_SECONDS
            return operation(self.memory)
        if away:
            with self.lock:
                if self.away_until is not None:
                    self.away_until = None
                    logger.warning("Rate limit counters reachable again: counting there")
        return result


_current: _Counters | None = None


def _counters() -> _Counters:
    """The counters over Flask-Limiter's storage of the moment (each `init_app` makes a new one)."""
    global _current
    counters = _current
    if counters is None or counters.storage is not limiter.storage:
        counters = _current = _Counters(limiter.storage)
    return counters


def _identifiers(scope: str, keys: tuple[str, ...]) -> list[str]:
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or ""
    return [prefix, scope, *keys] if prefix else [scope, *keys]


def hit(rate: str, scope: str, *keys: str, cost: int = 1) -> bool:
    """Count `cost` events against every limit of `rate`; False when one of them is exceeded."""
    if not enabled():
        return True
    identifiers = _identifiers(scope, keys)
    return _counters().run(
        lambda counters: all([counters.hit(item, *identifiers, cost=cost) for item in parse_many(rate)])
    )


def test(rate: str, scope: str, *keys: str) -> bool:
    """Whether one more event fits under `rate`, without counting it."""
    if not enabled():
        return True
    identifiers = _identifiers(scope, keys)
    return _counters().run(
        lambda counters: all(counters.test(item, *identifiers) for item in parse_many(rate))
    )


def used(rate: str, scope: str, *keys: str) -> int:
    """How many events the fullest current window of `rate` has counted (0 when switched off)."""
    if not enabled():
        return 0
    identifiers = _identifiers(scope, keys)
    return _counters().run(
        lambda counters: max(
            (
                item.amount - counters.get_window_stats(item, *identifiers).remaining
                for item in parse_many(rate)
            ),
            default=0,
        )
    )


def retry_after(rate: str, scope: str, *keys: str) -> int:
    """Seconds until every exhausted window of `rate` lets one more event through (at least 1)."""
    if not enabled():
        return 1
    identifiers = _identifiers(scope, keys)

    def longest_wait(counters) -> float:
        now = time.time()
        waits = [
            stats.reset_time - now
            for item in parse_many(rate)
            if (stats := counters.get_window_stats(item, *identifiers)).remaining <= 0
        ]
        return max(waits, default=1)

    return max(1, math.ceil(_counters().run(longest_wait)))


def require(rate: str, scope: str, *keys: str, message: str, cost: int = 1) -> None:
    """Count `cost` events; over `rate`, refuse with `rate_limited` (429) and when to try again."""
    if not hit(rate, scope, *keys, cost=cost):
        raise ApiError("rate_limited", message, 429, retry_after=retry_after(rate, scope, *keys))
