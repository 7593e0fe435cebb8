"""The process's copy of the word lists: one automaton, rebuilt when the lists change, and the
hits counted in memory until they are written.

- A change made in this process (app/wordfilter/services.py, after its commit) rebuilds the
  automaton at once. A change made in another process is noticed by comparing a cheap
  generation — every list's (id, `updated_at`), a few rows — read at most once every
  `WORDFILTER_CACHE_SECONDS`, on a connection of its own (never the caller's transaction).
  `updated_at` is stamped by the writing app server's clock, so it is compared row by row, not
  as (count, latest): a change stamped by a host whose clock runs behind is not newer than the
  latest, yet it changes that row's value, and the row is noticed all the same.
  Between checks a send reads nothing: a clean message costs one scan and no statement.
- Hits are added up in memory and written a moment later by a greenlet of their own
  (`UPDATE word_lists SET hits = hits + n`), so neither a clean send nor a hit waits for a
  write. A process killed in that moment loses those counts; the count is a statistic.

Each application keeps its own copy (`app.extensions`), so two apps in one process (the tests'
"second process") behave as two processes do.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import gevent
from flask import Flask, current_app
from sqlalchemy import bindparam, select

from app.extensions import db
from app.models import WordList
from app.wordfilter.matcher import Matcher

log = logging.getLogger(__name__)

KEY = "parley.wordfilter"
# How long hits are gathered before they are written, in one statement per list.
FLUSH_DELAY_SECONDS = 1.0


class ProcessLists:
    """The automaton (None: no enabled list has a word), the generation it was built from, when
    to look at the database again, and the hits not yet written."""

    def __init__(self) -> None:
        self.matcher: Matcher | None = None
        self.generation: tuple | None = None
        self.next_check = 0.0
        self.pending: Counter = Counter()
        self.flusher = None


def _state(app: Flask) -> ProcessLists:
    state = app.extensions.get(KEY)
    if state is None:
        state = app.extensions[KEY] = ProcessLists()
    return state


def matcher() -> Matcher | None:
    """The automaton to screen with; looks for other processes' changes when the period is up."""
    app = current_app._get_current_object()
    state = _state(app)
    now = time.monotonic()
    if now >= state.next_check:
        # Set first: greenlets arriving while this one reads use the copy they have.
        state.next_check = now + app.config["WORDFILTER_CACHE_SECONDS"]
        try:
            _refresh(state)
        except Exception:
            log.exception("word lists could not be read; screening with the copy in memory")
    return state.matcher


def reload(app: Flask | None = None) -> None:
    """Rebuild now (after this process changed a list, once its transaction committed)."""
    app = app or current_app._get_current_object()
    state = _state(app)
    state.generation = None
    state.next_check = time.monotonic() + app.config["WORDFILTER_CACHE_SECONDS"]
    _refresh(state)


def reset(app: Flask) -> None:
    """The lists were emptied under the process (the tests' clean database): no automaton, no
    unwritten hits, and the next look at the database after the usual period, as after a read."""
    state = _state(app)
    if state.flusher is not None:
        state.flusher.kill()
    fresh = app.extensions[KEY] = ProcessLists()
    fresh.generation = ()
    fresh.next_check = time.monotonic() + app.config["WORDFILTER_CACHE_SECONDS"]


def _refresh(state: ProcessLists) -> None:
    with db.engine.connect() as connection:
        generation = tuple(
            connection.execute(select(WordList.id, WordList.updated_at).order_by(WordList.id)).all()
        )
        if generation == state.generation:
            return
        rows = connection.execute(
            select(WordList.id, WordList.action, WordList.words).where(WordList.enabled.is_(True))
        ).all()
    built = Matcher(rows)
    state.matcher = built if built else None
    state.generation = generation


def count(hits: Counter) -> None:
    """Add hits per list; they are written shortly by a greenlet of their own."""
    app = current_app._get_current_object()
    state = _state(app)
    state.pending.update(hits)
    if state.flusher is None:
        state.flusher = gevent.spawn_later(FLUSH_DELAY_SECONDS, _flush_later, app, state)


def _flush_later(app: Flask, state: ProcessLists) -> None:
    state.flusher = None
    with app.app_context():
        _write(state)


def flush(app: Flask | None = None) -> None:
    """Write this process's unwritten hits now (the console does before it shows them)."""
    app = app or current_app._get_current_object()
    state = _state(app)
    if state.flusher is not None:
        state.flusher.kill()
        state.flusher = None
    _write(state)


_ADD_HITS = (
    WordList.__table__.update()
    .where(WordList.__table__.c.id == bindparam("list_id"))
    .values(hits=WordList.__table__.c.hits + bindparam("n"))
)


def _write(state: ProcessLists) -> None:
    hits, state.pending = state.pending, Counter()
    if not hits:
        return
    try:
        with db.engine.begin() as connection:
            connection.execute(_ADD_HITS, [{"list_id": key, "n": n} for key, n in sorted(hits.items())])
    except Exception:
        log.exception("word-list hits could not be written; kept for the next try")
        state.pending.update(hits)
