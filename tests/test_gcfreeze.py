"""The server's garbage-collector pacing: freeze on start and every period, thaw now and then."""

from __future__ import annotations

import gc

import pytest

from app.gcfreeze import keep_pauses_short
from config import Config, ConfigError


class _Stop(Exception):
    pass


def test_freezes_every_period_and_thaws_to_collect_dead_cycles(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    monkeypatch.setattr(gc, "collect", lambda: calls.append("collect"))
    clock = iter([0.0, 5.0, 10.0, 15.0, 20.0])
    monkeypatch.setattr("app.gcfreeze.time.monotonic", lambda: next(clock))
    naps = []

    def sleep(seconds):
        if len(naps) == 3:
            raise _Stop
        naps.append(seconds)

    with pytest.raises(_Stop):
        keep_pauses_short(sleep, 5.0, thaw_every=10.0)
    assert naps == [5.0, 5.0, 5.0]
    # Start, +5 s, +10 s (thaw: everything collected once, then frozen again), +15 s.
    assert calls == ["freeze", "freeze", "unfreeze", "collect", "freeze", "freeze"]


def test_period_is_configurable_and_checked():
    assert Config.from_env({"SECRET_KEY": "x" * 20}).GC_FREEZE_SECONDS == 5
    assert Config.from_env({"SECRET_KEY": "x" * 20, "GC_FREEZE_SECONDS": "0"}).GC_FREEZE_SECONDS == 0
    with pytest.raises(ConfigError, match="GC_FREEZE_SECONDS"):
        Config.from_env({"SECRET_KEY": "x" * 20, "GC_FREEZE_SECONDS": "soon"})
