"""Stream positions: the one global counter that numbers every user-visible change, for sync.

Ordering rules that keep this correct under concurrency:
- A message's `seq` comes from `UPDATE conversations SET last_seq = last_seq + 1 ... RETURNING`,
  so it is assigned under the conversation's row lock, in the same transaction as the insert.
- Every user-visible change also takes the next global stream position (`next_stream_pos`),
  *after* every other row lock of its transaction, so positions commit strictly in order and
  no transaction waits for a lock while holding the counter. Locks are always taken in the
  order conversation row, member rows, stream counter.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from app.extensions import db
from app.models import StreamCounter

# Built once: it runs for every user-visible change.
_counter = StreamCounter.__table__
_NEXT_STREAM_POS = (
    update(_counter).where(_counter.c.id == 1).values(pos=_counter.c.pos + 1).returning(_counter.c.pos)
)


# Take `n` positions at once; the last one is returned.
_TAKE_POSITIONS = (
    update(_counter)
    .where(_counter.c.id == 1)
    .values(pos=_counter.c.pos + bindparam("n"))
    .returning(_counter.c.pos)
)


def take_stream_positions(count: int) -> int:
    """Take `count` stream positions in one statement; returns the first of them (the next
    `count - 1` follow it). The row lock is held until this transaction ends."""
    return db.session.connection().execute(_TAKE_POSITIONS, {"n": count}).scalar_one() - count + 1


def next_stream_pos() -> int:
    """Take the next stream position; the row lock is held until this transaction ends."""
    return db.session.connection().execute(_NEXT_STREAM_POS).scalar_one()


def current_stream_pos() -> int:
    """Every change numbered up to the returned position is committed and visible."""
    return db.session.scalar(select(StreamCounter.pos).where(StreamCounter.id == 1))
