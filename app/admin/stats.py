"""The admin dashboard's figures and 30-day series: one module owns their definitions and queries.

Definitions (docs/ARCHITECTURE.md, "The admin console"):

- **Days are UTC days**: "today" starts at 00:00 UTC, and each point of a series is one UTC
  calendar day. The dashboard says so next to the figures.
- **People** are the accounts that are neither the robot (`is_bot`) nor deleted (`deleted_at`).
  Banned and muted people are people: they count in `users` and `new_today` and are also shown
  apart (`banned`, `muted`).
- `users`: people. `new_today`: people who registered today — the last point of `signups`, so
  the card and the chart cannot disagree, and `new_today <= users` always.
- `online`: people signed in with at least one open connection now, from presence (a person on
  a phone and a laptop counts once; the robot never connects).
- `messages_today` and `messages`: messages sent by a person (whoever they are now: someone
  banned or deleted since still sent them), recalled ones included; the robot's answers and
  system notices ("Bob joined the group") are not counted. `messages_today` is the last point of
  `messages`.
- `active_users`: distinct people who sent at least one such message that day.
- `signups`: people (as they are now) by the day they registered.
- `groups`: groups not dissolved. `banned` / `muted`: people with a ban / site-wide mute in
  force (not lifted, not expired). `word_hits`: every word list's hits together.

Every query is bounded: the series read only the last 30 days (through
`ix_messages_created_at` for messages, `ix_users_created_at` for sign-ups), each series
family in one grouped query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Date, cast, distinct, func, or_, select

from app import realtime
from app.extensions import db
from app.models import Group, Message, Sanction, User, utcnow
from app.wordfilter import services as wordfilter

DAYS = 30
TIMEZONE = "UTC"
FIGURES = ("users", "new_today", "online", "messages_today", "groups", "banned", "muted", "word_hits")
SERIES = ("messages", "active_users", "signups")


def _people():
    """The accounts of people: not the robot, not deleted."""
    return (User.is_bot.is_(False), User.deleted_at.is_(None))


def _day(column):
    """The UTC calendar day of a naive-UTC timestamp column, on either database (SQLite has no
    date type: `date()` gives 'YYYY-MM-DD'; PostgreSQL casts to `date`)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(column, Date)
    return func.date(column)


def _iso(day: str | date) -> str:
    return day if isinstance(day, str) else day.isoformat()


def day_start(now: datetime) -> datetime:
    """00:00 UTC of `now`'s day."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _filled(days: Sequence[str], rows) -> list[int]:
    """A count for every day, zero where the query returned none."""
    found = {_iso(day): int(count or 0) for day, count in rows}
    return [found.get(day, 0) for day in days]


def series(now: datetime | None = None) -> dict:
    """The last 30 UTC days (today last) and, for each, messages, active people and sign-ups."""
    today = day_start(now or utcnow())
    since = today - timedelta(days=DAYS - 1)
    until = today + timedelta(days=1)
    days = [(since + timedelta(days=offset)).date().isoformat() for offset in range(DAYS)]

    message_day = _day(Message.created_at)
    sent = db.session.execute(
        select(message_day, func.count(Message.id), func.count(distinct(Message.sender_id)))
        .join(User, User.id == Message.sender_id)
        .where(Message.created_at >= since, Message.created_at < until, User.is_bot.is_(False))
        .group_by(message_day)
    ).all()
    signup_day = _day(User.created_at)
    signed_up = db.session.execute(
        select(signup_day, func.count(User.id))
        .where(*_people(), User.created_at >= since, User.created_at < until)
        .group_by(signup_day)
    ).all()
    return {
        "days": days,
        "messages": _filled(days, [(day, messages) for day, messages, _ in sent]),
        "active_users": _filled(days, [(day, senders) for day, _, senders in sent]),
        "signups": _filled(days, signed_up),
    }


def _sanctioned_people(now: datetime) -> dict[str, int]:
    """People with a ban and with a mute in force, by kind: one grouped query."""
    rows = db.session.execute(
        select(Sanction.kind, func.count(distinct(Sanction.user_id)))
        .join(User, User.id == Sanction.user_id)
        .where(
            *_people(),
            Sanction.lifted_at.is_(None),
            or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
        )
        .group_by(Sanction.kind)
    ).all()
    return {kind: int(count) for kind, count in rows}


def dashboard(now: datetime | None = None) -> dict:
    """Everything the dashboard shows, as the page embeds it and /admin/stats.json answers it."""
    now = now or utcnow()
    data = series(now)
    sanctioned = _sanctioned_people(now)
    word_hits, top_lists = wordfilter.hit_counts()
    figures = {
        "users": db.session.scalar(select(func.count(User.id)).where(*_people())),
        "new_today": data["signups"][-1],
        "online": realtime.presence().online_count(),
        "messages_today": data["messages"][-1],
        "groups": db.session.scalar(select(func.count(Group.id)).where(Group.dissolved_at.is_(None))),
        "banned": sanctioned.get("ban", 0),
        "muted": sanctioned.get("mute", 0),
        "word_hits": word_hits,
    }
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "timezone": TIMEZONE,
        "figures": figures,
        "days": data["days"],
        "series": {name: data[name] for name in SERIES},
        "top_lists": [{"name": name, "hits": hits} for name, hits in top_lists],
    }
