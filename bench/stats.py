"""Small statistics helpers shared by the scenarios (pure functions, unit-tested)."""

from __future__ import annotations

import cProfile
import io
import math
import pstats
from collections.abc import Callable, Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile `p` (0-100) of `values`; None when there are none.

    Nearest rank never interpolates, so p100 is the maximum and every answer is a real sample.
    """
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError("p must be between 0 and 100")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 2) -> dict:
    """p50, p90, p99 and max of `values`, rounded, with the sample count."""
    result = {"n": len(values)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        value = percentile(values, p)
        result[name] = None if value is None else round(value, digits)
    return result


def ratio(value: float | None, baseline: float | None) -> float | None:
    """`value / baseline` rounded to two places, or None if either is missing or zero."""
    if not value or not baseline:
        return None
    return round(value / baseline, 2)


def profiled(run: Callable[[], object], sort: str = "cumulative", lines: int = 40) -> str:
    """cProfile's table of one call of `run` (for the in-process `sendcpu` and `listcpu`)."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats(sort).print_stats(lines)
    return text.getvalue()
