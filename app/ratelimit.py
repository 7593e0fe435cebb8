"""The rate limits Parley counts itself (sends, uploads, sign-in failures), on Flask-Limiter's storage.

Every such check goes through `hit`, `test` and `used`, so `RATELIMIT_ENABLED=false` switches them
all off (Flask-Limiter then never builds its counter, and calling it would fail), and every key
carries the deployment's `RATELIMIT_KEY_PREFIX`. Key parts that come from clients go through
`safe_key`, so any text (spaces, slashes, NUL, lone surrogates) makes a valid Redis key.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time

from flask import current_app
from limits import parse_many as _parse_many

from app.errors import ApiError
from app.extensions import limiter


@functools.lru_cache(maxsize=64)
def parse_many(rate: str) -> tuple:
    """The limits of a rate string, parsed once per string (a send checks its rate every time)."""
    return tuple(_parse_many(rate))


def enabled() -> bool:
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def safe_key(value: str) -> str:
    """A fixed-length digest of client text, fit for any storage key."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _identifiers(scope: str, keys: tuple[str, ...]) -> list[str]:
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or ""
    return [prefix, scope, *keys] if prefix else [scope, *keys]


def hit(rate: str, scope: str, *keys: str, cost: int = 1) -> bool:
    """Count `cost` events against every limit of `rate`; False when one of them is exceeded."""
    if not enabled():
        return True
    identifiers = _identifiers(scope, keys)
    results = [limiter.limiter.hit(item, *identifiers, cost=cost) for item in parse_many(rate)]
    return all(results)


def test(rate: str, scope: str, *keys: str) -> bool:
    """Whether one more event fits under `rate`, without counting it."""
    if not enabled():
        return True
    identifiers = _identifiers(scope, keys)
    return all(limiter.limiter.test(item, *identifiers) for item in parse_many(rate))


def used(rate: str, scope: str, *keys: str) -> int:
    """How many events the fullest current window of `rate` has counted (0 when switched off)."""
    if not enabled():
        return 0
    identifiers = _identifiers(scope, keys)
    counts = [
        item.amount - limiter.limiter.get_window_stats(item, *identifiers).remaining
        for item in parse_many(rate)
    ]
    return max(counts, default=0)


def retry_after(rate: str, scope: str, *keys: str) -> int:
    """Seconds until every exhausted window of `rate` lets one more event through (at least 1)."""
    if not enabled():
        return 1
    identifiers = _identifiers(scope, keys)
    now = time.time()
    waits = [
        stats.reset_time - now
        for item in parse_many(rate)
        if (stats := limiter.limiter.get_window_stats(item, *identifiers)).remaining <= 0
    ]
    return max(1, math.ceil(max(waits, default=1)))


def require(rate: str, scope: str, *keys: str, message: str, cost: int = 1) -> None:
    """Count `cost` events; over `rate`, refuse with `rate_limited` (429) and when to try again."""
    if not hit(rate, scope, *keys, cost=cost):
        raise ApiError("rate_limited", message, 429, retry_after=retry_after(rate, scope, *keys))
