"""Build a large Parley database fast, for the history, list and catch-up timings.

`conversations` direct conversations with `messages // conversations` messages each. One user, the
hub, is in `hub_conversations` of them (the "user in 500 conversations"); the others are between
pairs of their own. Stream positions interleave the conversations round-robin, as if every
conversation were busy at once, so catching up after the hub's last 1,000 messages has to pick
them out of the last 20,000 positions written.

Rows go in with bulk statements, not the services (a service call per message would take hours):
SQLite through executemany on one transaction, PostgreSQL through COPY. The secondary indexes of
`messages` that are not constraints are dropped first and built once at the end. Values are written
in the very formats the models read back (UTC datetimes, JSON bodies), and the database must be
freshly migrated (`flask db upgrade`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.seed import PASSWORD

BODY = json.dumps(
    {"type": "txt", "msg": "A message of ordinary length, about as long as most chat lines are."}
)
CHUNK = 50_000


@dataclass
class Layout:
    """Who talks to whom, and where each message sits in the stream."""

    conversations: int
    per_conversation: int
    hub_conversations: int

    @property
    def users(self) -> int:
        # The hub, one peer for each of its conversations, two users for every other conversation.
        return 1 + self.hub_conversations + 2 * (self.conversations - self.hub_conversations)

    def members(self, c: int) -> tuple[int, int]:
        """User numbers (1-based, in insert order) of conversation number c (0-based)."""
        if c < self.hub_conversations:
            return 1, 2 + c
        first = 2 + self.hub_conversations + 2 * (c - self.hub_conversations)
        return first, first + 1

    def stream_pos(self, c: int, seq: int) -> int:
        return (seq - 1) * self.conversations + c + 1

    def catch_up_cursor(self, missed: int) -> int:
        """The cursor after which the hub has exactly `missed` messages (rounded to whole rounds)."""
        rounds = -(-missed // self.hub_conversations)
        return self.stream_pos(0, self.per_conversation - rounds + 1) - 1


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _user_rows(layout: Layout, password_hash: str, now: str):
    for number in range(1, layout.users + 1):
        name = "hub" if number == 1 else f"u{number:07d}"
        yield (name, name, name, "", password_hash, False, now)


def build(engine, layout: Layout, password_hash: str, log=print, body=None) -> dict:
    """Fill the freshly migrated database behind `engine`; returns what the timings need.
    `body(n)`: the JSON body of the n-th message (the same ordinary text for all by default)."""
    started = time.perf_counter()
    postgres = engine.dialect.name == "postgresql"
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    total_positions = layout.conversations * layout.per_conversation
    step = timedelta(seconds=1)

    def when(pos: int) -> str:
        return _stamp(epoch + step * pos)

    now = when(total_positions)
    with engine.begin() as conn:
        if not postgres:
            conn.exec_driver_sql("PRAGMA cache_size = -1000000")  # 1 GB of page cache for the load
        indexes = _drop_secondary_indexes(conn)
        placeholders = lambda n: ", ".join(["%s" if postgres else "?"] * n)  # noqa: E731
        conn.exec_driver_sql(
            "INSERT INTO users (username, username_key, nickname, signature, password_hash, is_bot,"
            f" created_at) VALUES ({placeholders(7)})",
            list(_user_rows(layout, password_hash, now)),
        )
        first_user = conn.execute(text("SELECT min(id) FROM users WHERE username = 'hub'")).scalar_one()
        uid = lambda number: first_user + number - 1  # noqa: E731  (ids follow insert order)
        last = layout.per_conversation
        conversations, members, friendships = [], [], []
        for c in range(layout.conversations):
            a, b = (uid(n) for n in layout.members(c))
            last_pos = layout.stream_pos(c, last)
            conversations.append(("direct", f"{a}:{b}", last, last_pos, when(last_pos), now))
            for user in (a, b):
                read = last - 2 if user == uid(1) else last
                members.append((user, read, 0, True, False, False, False, last_pos, now, now))
            friendships.append((a, b, now))
        conn.exec_driver_sql(
            "INSERT INTO conversations (kind, direct_key, last_seq, stream_pos, last_activity_at, created_at)"
            f" VALUES ({placeholders(6)})",
            conversations,
        )
        first_conv = conn.execute(text("SELECT min(id) FROM conversations")).scalar_one()
        conn.exec_driver_sql(
            "INSERT INTO conversation_members (conversation_id, user_id, read_seq, joined_seq, active, muted,"
            f" pinned, hidden, stream_pos, joined_at, updated_at) VALUES ({placeholders(11)})",
            [(first_conv + i // 2, *row) for i, row in enumerate(members)],
        )
        conn.exec_driver_sql(
            f"INSERT INTO friendships (user_a_id, user_b_id, created_at) VALUES ({placeholders(3)})",
            friendships,
        )
        log(f"  users, conversations, members: {time.perf_counter() - started:.1f} s")
        columns = "conversation_id, seq, sender_id, type, body, client_msg_id, stream_pos, created_at"
        rows = _message_rows(layout, first_conv, uid, when, body)
        if postgres:
            _copy_messages(conn, columns, rows)
        else:
            _insert_messages(conn, columns, rows)
        log(f"  {total_positions:,} messages: {time.perf_counter() - started:.1f} s")
        conn.execute(text("UPDATE stream_counter SET pos = :pos WHERE id = 1"), {"pos": total_positions})
        for index in indexes:
            index.create(conn)
        log(f"  indexes rebuilt: {time.perf_counter() - started:.1f} s")
    with engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql("ANALYZE")
    if not postgres:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    seconds = time.perf_counter() - started
    return {
        "messages": total_positions,
        "conversations": layout.conversations,
        "users": layout.users,
        "hub": "hub",
        "password": PASSWORD,
        "hub_conversations": list(range(first_conv, first_conv + layout.hub_conversations)),
        "per_conversation": layout.per_conversation,
        "catch_up_cursor": layout.catch_up_cursor(1000),
        "build_s": round(seconds, 1),
        "rows_per_s": round(total_positions / seconds),
    }


def _drop_secondary_indexes(conn) -> list:
    """Plain indexes of `messages` cost most during a bulk load; rebuilding them once is faster."""
    from app.models import Message

    indexes = [index for index in Message.__table__.indexes if not index.unique]
    for index in indexes:
        index.drop(conn)
    return indexes


def _message_rows(layout: Layout, first_conv: int, uid, when, body=None):
    """Conversation by conversation (so the unique indexes grow at their ends), each message with
    its round-robin stream position."""
    counter = 0
    for c in range(layout.conversations):
        a, b = (uid(n) for n in layout.members(c))
        conversation_id = first_conv + c
        for seq in range(1, layout.per_conversation + 1):
            counter += 1
            pos = layout.stream_pos(c, seq)
            text = BODY if body is None else body(counter)
            yield (conversation_id, seq, a if seq % 2 else b, "txt", text, f"m{counter:012d}", pos, when(pos))


def _insert_messages(conn, columns: str, rows) -> None:
    sql = f"INSERT INTO messages ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            conn.exec_driver_sql(sql, batch)
            batch = []
    if batch:
        conn.exec_driver_sql(sql, batch)


def _copy_messages(conn, columns: str, rows) -> None:
    """COPY in text format; none of the generated values needs escaping."""
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY messages ({columns}) FROM STDIN") as copy:
        lines = []
        for row in rows:
            lines.append("\t".join(map(str, row)))
            if len(lines) == CHUNK:
                copy.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")


def main(conversations: int, messages: int, hub_conversations: int, out) -> None:
    from app import create_app
    from app.auth.services import hash_password
    from app.extensions import db

    layout = Layout(conversations, max(1, messages // conversations), min(hub_conversations, conversations))
    app = create_app()
    with app.app_context():
        info = build(db.engine, layout, hash_password(PASSWORD))
        db.engine.dispose()
    out.write_text(json.dumps(info))
    print(json.dumps({k: v for k, v in info.items() if k != "hub_conversations"}))
