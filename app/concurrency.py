"""Running CPU-heavy work without stalling the gevent loop."""

from __future__ import annotations

from gevent import get_hub, monkey


def off_loop(fn, *args):
    """Run `fn(*args)` on gevent's thread pool when the process is monkey-patched, so work that
    releases the GIL (argon2 hashing, Pillow decoding) doesn't stall every socket of the process."""
    if monkey.is_module_patched("socket"):
        return get_hub().threadpool.apply(fn, args)
    return fn(*args)
