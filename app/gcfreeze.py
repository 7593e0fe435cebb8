"""Short garbage-collector pauses for a long-running server process.

A full collection walks every object the collector tracks: Parley's own (about 150,000 after
start-up) and those of every open connection. With thousands of sockets that is a pause of
hundreds of milliseconds for every socket of the process, and it is what the tail of the message
latency is made of. Objects that have lived a few seconds are mostly there to stay (the
application, the connections), so every `period` seconds they are moved out of the collector's
reach with `gc.freeze()`. Once in a while (`thaw_every`) they are handed back and collected in
one go, so reference cycles that died after being frozen are reclaimed too.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def keep_pauses_short(sleep: Callable[[float], None], period: float, thaw_every: float = 600.0) -> None:
    """Run forever (in a background greenlet): freeze now, then every `period` seconds."""
    gc.freeze()
    thawed_at = time.monotonic()
    while True:
        sleep(period)
        if time.monotonic() - thawed_at >= thaw_every:
            gc.unfreeze()
            gc.collect()
            thawed_at = time.monotonic()
        gc.freeze()
