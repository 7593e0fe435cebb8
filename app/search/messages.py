"""Message search: the messages a user may see whose text holds a query, newest first.

What a user may see is what their history shows: in each conversation the messages inside their
membership window (after `joined_seq`, up to `left_seq` once they left), less the ones they deleted
for themselves; recalled and system messages have no searchable text. A query of 3 or more
characters is answered from the trigram index (app/search/index.py), newest first in message-id
windows so a common word stops after its first page (`_indexed`); 1 or 2 characters are below
what a trigram index can answer, so they scan the user's newest `SCAN_LIMIT` visible messages and
say `partial` when that bound cut the scan short (`next` then continues past it). Someone who may
see few messages (`VISIBLE_SCAN_MAX`, or a search in such a chat) has them read directly at any
length: the index would hand back every match of the deployment first. An empty query with a
`type` lists that type's messages instead (a chat's voice messages, photos and videos), under the
same rules (`_listed`), among the newest `LIST_SCAN` visible messages a request (`partial` and
`next` as for a short query's scan): a rare type in a long history costs at most that much.
"""

from __future__ import annotations

import functools
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, select, text

from app import presenters, ratelimit
from app.chat.access import require_member
from app.chat.plays import mark_played
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import Conversation, ConversationMember, Group, Message, User
from app.search.index import INDEXED_TYPES, SQLITE_TABLE, searchable_text, text_sql
from app.validation import MAX_BIGINT, invalid

MAX_QUERY = 100
PAGE_MAX = 50
SCAN_LIMIT = 5000
# A 3+ character search by someone who may see at most this many messages (or in such a chat)
# reads those messages instead of the index: the index's candidates are every match of the
# deployment, which for a common word is far more than what they see.
VISIBLE_SCAN_MAX = 20000
SNIPPET = 120
# 3+ characters, newest first in id windows (`_indexed`): the first holds FIRST_WINDOW ids, each
# next one GROWTH times more, and after MAX_WINDOWS the rest below is one last window.
FIRST_WINDOW = 4096
GROWTH = 8
MAX_WINDOWS = 4
# PostgreSQL reads its windows through the primary key, testing each message's text: the first
# SCAN_FIRST ids, then more while the hits so far say the page fills within SCAN_BUDGET ids in all;
# otherwise the rest in one trigram-index statement.
SCAN_FIRST = 2048
SCAN_BUDGET = 16384
# A listing by type looks at the user's newest LIST_SCAN visible messages (past the cursor) a
# request: no text is read, so it may look at as many as a PostgreSQL text scan's budget.
LIST_SCAN = SCAN_BUDGET
# The types a search can be narrowed to: a text search, the types with text (INDEXED_TYPES); a
# listing by type (an empty query, `type` given) any type a member sends.
TYPES = ("txt", "img", "video", "audio", "file", "loc", "merged")


def _in_sql(kinds) -> str:
    """`('a', 'b')` of known type names (never the client's text: each is one of TYPES)."""
    return "(" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


_TYPES_SQL = _in_sql(INDEXED_TYPES)


def check_search_rate(user_id: int) -> None:
    """Searches cost more than reads: `SEARCH_RATE_LIMIT` per user, over all their devices."""
    rate = current_app.config["SEARCH_RATE_LIMIT"]
    ratelimit.require(rate, "search", str(user_id), message="You are searching too fast; wait a moment.")


def clean_query(q: str | None) -> str:
    query = (q or "").strip()
    if not 1 <= len(query) <= MAX_QUERY:
        raise ApiError(
            "invalid_query",
            "Search for 1 to 100 characters.",
            400,
            {"q": _l("1 to %(max)s characters", max=MAX_QUERY)},
        )
    return query


def parse_types(raw: str | None, listing: bool) -> tuple[str, ...] | None:
    """`type`: one type or several, comma-separated (`img,video`), each one of TYPES; with a
    query only types with text (`invalid_input` otherwise: a picture has no text to match)."""
    if raw is None or raw == "":
        return None
    kinds = [kind.strip() for kind in raw.split(",")]
    if not all(kind in TYPES for kind in kinds):
        raise invalid({"type": _l("one or more of %(values)s", values=", ".join(TYPES))})
    if not listing and not all(kind in INDEXED_TYPES for kind in kinds):
        raise invalid(
            {
                "type": _l(
                    "only %(values)s have text to search; leave q empty to list by type",
                    values=", ".join(INDEXED_TYPES),
                )
            }
        )
    return tuple(kind for kind in TYPES if kind in kinds)  # in a fixed order, each once


def parse_cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not 1 <= int(raw) <= MAX_BIGINT:
        raise ApiError("invalid_cursor", "The search cursor is malformed.", 400, {"cursor": "not a cursor"})
    return int(raw)


def search_messages(
    user_id: int,
    q: str,
    conversation_id: int | None = None,
    sender_id: int | None = None,
    type: str | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> dict:
    """A page of hits, newest first (by message id, the order messages were stored), paged by
    the id of the last message looked at: pages stay stable while new messages arrive.

    An empty query with `type` lists the messages of those types instead (`_listed`), under the
    same rules and paging; their hits have no snippet."""
    listing = not (q or "").strip() and type not in (None, "")
    query = "" if listing else clean_query(q)
    kinds = parse_types(type, listing)
    below = parse_cursor(cursor)
    limit = max(1, min(limit, PAGE_MAX))
    if conversation_id is not None:
        require_member(user_id, conversation_id, active=False)
    dialect = db.engine.dialect.name
    filters, params = _filters(user_id, conversation_id, sender_id, kinds, before, after, below, listing)
    if listing:
        ids, scanned, lowest = _listed(filters, params, limit, kinds)
        has_more = len(ids) > limit
        ids = ids[:limit]
        partial = not has_more and scanned >= LIST_SCAN
        next_cursor = ids[-1] if has_more else lowest if partial else None
    elif len(query) >= 3 and _visible_total(params, conversation_id) > VISIBLE_SCAN_MAX:
        ids = _indexed(dialect, query, filters, params, limit, conversation_id, below)
        has_more, partial = len(ids) > limit, False
        ids = ids[:limit]
        next_cursor = ids[-1] if has_more else None
    else:
        # 1–2 characters; or a user (or chat) with few messages to see, whose own messages are
        # cheaper to read than the index's matches over every conversation (a common word).
        bound = SCAN_LIMIT if len(query) < 3 else VISIBLE_SCAN_MAX + 1
        ids, scanned, lowest = _scan(dialect, query, filters, params, limit, bound)
        has_more = len(ids) > limit
        ids = ids[:limit]
        partial = not has_more and scanned >= bound
        next_cursor = ids[-1] if has_more else lowest if partial else None
    hits = _hits(user_id, ids, None if listing else query)
    return {"hits": hits, "next": None if next_cursor is None else str(next_cursor), "partial": partial}


def _filters(
    user_id, conversation_id, sender_id, kinds, before, after, below, listing=False
) -> tuple[str, dict]:
    """The visibility rules and the caller's filters, on messages `m` and the membership `cm`.
    A text search keeps the index's own type list (PostgreSQL's partial index needs it written
    out); a listing's types are tested on the messages it looked at (`_listed`), not here."""
    sql = [
        "m.seq > cm.joined_seq",
        "(cm.left_seq IS NULL OR m.seq <= cm.left_seq)",
        "m.recalled_at IS NULL",
        *([] if listing else [f"m.type IN {_TYPES_SQL}"]),
        "NOT EXISTS (SELECT 1 FROM message_hides AS h WHERE h.user_id = :user_id AND h.message_id = m.id)",
    ]
    params: dict = {"user_id": user_id}
    if conversation_id is not None:
        sql.append("m.conversation_id = :conversation_id")
        params["conversation_id"] = conversation_id
    if sender_id is not None:
        sql.append("m.sender_id = :sender_id")
        params["sender_id"] = sender_id
    if kinds is not None and not listing:
        sql.append(f"m.type IN {_in_sql(kinds)}")
    # Datetimes are stored as naive UTC on both databases (app/models/types.py).
    if before is not None:
        sql.append("m.created_at < :before")
        params["before"] = _naive_utc(before)
    if after is not None:
        sql.append("m.created_at > :after")
        params["after"] = _naive_utc(after)
    if below is not None:
        sql.append("m.id < :below")
        params["below"] = below
    return " AND ".join(sql), params


def _naive_utc(moment: datetime) -> datetime:
    return Message.__table__.c.created_at.type.process_bind_param(moment, None)


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_MEMBER_JOIN = (
    "JOIN conversation_members AS cm ON cm.conversation_id = m.conversation_id AND cm.user_id = :user_id"
)


def _indexed(
    dialect: str,
    query: str,
    filters: str,
    params: dict,
    limit: int,
    conversation_id: int | None,
    below: int | None,
) -> list[int]:
    """Ids of the newest `limit + 1` matching messages, from the trigram index, newest first in
    windows of message ids below the newest one the user may see (or the cursor): each window is
    one statement with its id range, and the search stops once the page is full. Windows are
    disjoint and taken in order, so the hits are exactly those of one statement over everything.

    SQLite: FTS5 walks the phrase's matches in the window's rowid range (a range seek in its
    doclists), newest first. PostgreSQL: a GIN index cannot return rows in id order nor stop early,
    and it rechecks the text of every candidate it returns (whatever the id range), so windows are
    read backwards through the primary key with the text tested inline (about 2 µs a message) as long
    as that is expected to fill the page within SCAN_BUDGET ids; then the trigram index answers for
    all the rest in one statement (a rare word: few candidates).
    """
    need = limit + 1
    # A cursor is the id of a hit the user saw, so below it is the bound; a first page looks up
    # the newest message the user may see.
    high = below - 1 if below is not None else _top(params, conversation_id)
    if high is None:
        return []
    ids: list[int] = []
    postgres = dialect == "postgresql"
    width, windows, scanned = SCAN_FIRST if postgres else FIRST_WINDOW, 0, 0
    while high >= 1 and len(ids) < need:
        windows += 1
        if postgres:
            plan = _pg_plan(scanned, len(ids), need)
            width = min(width, SCAN_BUDGET - scanned)
            low = max(1, high - width + 1) if plan == "scan" else 1
            scanned += high - low + 1
        else:
            plan = "fts"
            low = 1 if windows >= MAX_WINDOWS else max(1, high - width + 1)
        sql, values = _indexed_statement(dialect, query, filters, params, need - len(ids), low, high, plan)
        ids += db.session.connection().execute(text(sql), values).scalars()
        high, width = low - 1, width * GROWTH
    return ids


def _pg_plan(scanned: int, found: int, need: int) -> str:
    """PostgreSQL: read the next window through the primary key ("scan") or the rest through the
    trigram index ("index"). The first window is scanned; another only if the hits so far say the
    page fills within the budget (a rare word goes to the index at once)."""
    if scanned == 0:
        return "scan"
    if found == 0 or scanned * (need - found) / found > SCAN_BUDGET - scanned:
        return "index"
    return "scan"


def _top(params: dict, conversation_id: int | None) -> int | None:
    """The id of the newest message the user may see (in `conversation_id`, or in all their
    conversations), from the last seq of each membership window: one index probe a conversation.
    Inside a conversation a later seq always has a larger id (both are taken under the
    conversation's row lock, app/chat/send.py and pipeline.py), so nothing visible is above it."""
    scope = "" if conversation_id is None else " AND cm.conversation_id = :conversation_id"
    sql = (
        "SELECT max((SELECT t.id FROM messages AS t WHERE t.conversation_id = cm.conversation_id"
        " AND t.seq > cm.joined_seq AND t.seq <= coalesce(cm.left_seq, :max_seq)"
        " ORDER BY t.seq DESC LIMIT 1))"
        f" FROM conversation_members AS cm WHERE cm.user_id = :user_id{scope}"
    )
    values = {"user_id": params["user_id"], "max_seq": MAX_BIGINT}
    if conversation_id is not None:
        values["conversation_id"] = conversation_id
    return db.session.connection().execute(text(sql), values).scalar()


def _indexed_statement(
    dialect: str, query: str, filters: str, params: dict, limit: int, low: int, high: int, plan: str = "index"
) -> tuple[str, dict]:
    """The newest `limit` matches with ids in [low, high]."""
    values = {**params, "low": low, "high": high, "limit": limit}
    if dialect == "postgresql":
        # "index" (always for all the rest, low = 1): the partial index's own expression and
        # predicate (app/search/index.py), so it is used. "scan": the same text with a text
        # message's read inline (not the indexed call), so the planner walks the primary key in the
        # window, newest first, and stops at `limit`.
        # The trigram plan's bound is a filter (`+ 0`): the GIN index drives it, never a range of
        # the primary key (which reads every row below `high`; the scan windows do that, bounded).
        window = "m.id + 0 <= :high" if plan == "index" else "m.id BETWEEN :low AND :high"
        sql = (
            f"SELECT m.id FROM messages AS m {_MEMBER_JOIN}"
            f" WHERE {text_sql(dialect, 'm', indexed=plan == 'index')} ILIKE :pattern ESCAPE '\\'"
            f" AND {window} AND {filters}"
            " ORDER BY m.id DESC LIMIT :limit"
        )
        values["pattern"] = _like(query)
    else:
        # A quoted phrase: FTS5's own syntax (AND, NEAR, *, quotes) is plain text in it. The FTS
        # table drives the join, newest rowid first in the window's range, so a page stops after
        # its first hits.
        filters = filters.replace("m.id < :below", "s.rowid < :below")
        sql = (
            f"SELECT m.id FROM {SQLITE_TABLE} AS s CROSS JOIN messages AS m ON m.id = s.rowid {_MEMBER_JOIN}"
            f" WHERE {SQLITE_TABLE} MATCH :phrase AND s.rowid BETWEEN :low AND :high AND {filters}"
            " ORDER BY s.rowid DESC LIMIT :limit"
        )
        values["phrase"] = '"' + query.replace('"', '""') + '"'
    return sql, values


def _listed(
    filters: str, params: dict, limit: int, kinds: tuple[str, ...]
) -> tuple[list[int], int, int | None]:
    """A listing by type: the ids of the newest `limit + 1` messages of `kinds` among the user's
    newest LIST_SCAN visible messages (past the cursor), with how many were looked at and the
    oldest of them; one statement, a short query's scan (`_scan`) with the type in place of the
    text. The type is tested after the bound (as the text is), so a type that is rare or absent
    never walks the whole history."""
    sql = (
        f"WITH scanned AS MATERIALIZED (SELECT m.id AS id, m.type AS type FROM messages AS m {_MEMBER_JOIN}"
        f" WHERE {filters} ORDER BY m.id DESC LIMIT :scan)"
        " SELECT stats.n, stats.lowest, hit.id FROM"
        " (SELECT count(*) AS n, min(id) AS lowest FROM scanned) AS stats LEFT JOIN"
        f" (SELECT id FROM scanned WHERE type IN {_in_sql(kinds)} ORDER BY id DESC LIMIT :limit)"
        " AS hit ON 1 = 1 ORDER BY hit.id DESC"
    )
    values = {**params, "limit": limit + 1, "scan": LIST_SCAN}
    rows = db.session.connection().execute(text(sql), values).all()
    return [row[2] for row in rows if row[2] is not None], rows[0][0], rows[0][1]


def _visible_total(params: dict, conversation_id: int | None) -> int:
    """How many messages the user may see at most (in `conversation_id`, or in all their
    conversations): the sum of their membership windows, one row a conversation. A window starts
    after the retention policy's `purged_seq` too (app/retention.py): purged seqs cost nothing."""
    scope = "" if conversation_id is None else " AND cm.conversation_id = :conversation_id"
    start = "CASE WHEN cm.joined_seq > c.purged_seq THEN cm.joined_seq ELSE c.purged_seq END"
    end = "coalesce(cm.left_seq, c.last_seq)"
    sql = (
        f"SELECT coalesce(sum(CASE WHEN {end} > {start} THEN {end} - {start} ELSE 0 END), 0)"
        " FROM conversation_members AS cm JOIN conversations AS c ON c.id = cm.conversation_id"
        f" WHERE cm.user_id = :user_id{scope}"
    )
    values = {"user_id": params["user_id"]}
    if conversation_id is not None:
        values["conversation_id"] = conversation_id
    return int(db.session.connection().execute(text(sql), values).scalar() or 0)


def _scan(
    dialect: str, query: str, filters: str, params: dict, limit: int, bound: int = SCAN_LIMIT
) -> tuple[list[int], int, int | None]:
    """The matches among the user's newest `bound` visible messages (past the cursor), with how
    many were looked at and the oldest of them; one statement."""
    like = "ILIKE" if dialect == "postgresql" else "LIKE"  # SQLite's LIKE ignores ASCII case
    sql = (
        # Ids first (the sort over the user's messages carries no text), then the text of those
        # only (materialized: a planner must not test the text of other messages on the way).
        f"WITH scanned AS MATERIALIZED (SELECT m.id AS id FROM messages AS m {_MEMBER_JOIN}"
        f" WHERE {filters} ORDER BY m.id DESC LIMIT :scan),"
        f" texts AS MATERIALIZED (SELECT s.id AS id, {text_sql(dialect, 't', indexed=False)} AS body_text"
        " FROM scanned AS s JOIN messages AS t ON t.id = s.id)"
        " SELECT stats.n, stats.lowest, hit.id FROM"
        " (SELECT count(*) AS n, min(id) AS lowest FROM scanned) AS stats LEFT JOIN"
        f" (SELECT id FROM texts WHERE body_text {like} :pattern ESCAPE '\\' ORDER BY id DESC LIMIT :limit)"
        " AS hit ON 1 = 1 ORDER BY hit.id DESC"
    )
    values = {**params, "pattern": _like(query), "limit": limit + 1, "scan": bound}
    rows = db.session.connection().execute(text(sql), values).all()
    ids = [row[2] for row in rows if row[2] is not None]
    return ids, rows[0][0], rows[0][1]


_messages = Message.__table__
_senders = User.__table__.alias("sender")
_peers = User.__table__.alias("peer")
_peer_members = ConversationMember.__table__.alias("peer_member")
_conversations = Conversation.__table__
_groups = Group.__table__


@functools.cache
def _hits_query():
    """The hits' messages with their senders and conversations (a group's name, or the other
    person of a direct chat), in one statement."""
    return (
        select(
            *_messages.c,
            _senders.c.username.label("sender_username"),
            _senders.c.nickname.label("sender_nickname"),
            _senders.c.avatar_url.label("sender_avatar_url"),
            _senders.c.deleted_at.label("sender_deleted_at"),
            _conversations.c.kind.label("conversation_kind"),
            _groups.c.name.label("group_name"),
            _groups.c.avatar_url.label("group_avatar_url"),
            _peers.c.nickname.label("peer_nickname"),
            _peers.c.avatar_url.label("peer_avatar_url"),
        )
        .select_from(
            _messages.join(_conversations, _conversations.c.id == _messages.c.conversation_id)
            .outerjoin(_senders, _senders.c.id == _messages.c.sender_id)
            .outerjoin(_groups, _groups.c.conversation_id == _conversations.c.id)
            .outerjoin(
                _peer_members,
                (_conversations.c.kind == "direct")
                & (_peer_members.c.conversation_id == _conversations.c.id)
                & (_peer_members.c.user_id != bindparam("user_id")),
            )
            .outerjoin(_peers, _peers.c.id == _peer_members.c.user_id)
        )
        .where(_messages.c.id.in_(bindparam("ids", expanding=True)))
    )


def _hits(user_id: int, ids: list[int], query: str | None) -> list[dict]:
    """The hits of `ids`, in that order; without a query (a listing by type) no snippet."""
    if not ids:
        return []
    rows = db.session.connection().execute(_hits_query(), {"ids": ids, "user_id": user_id}).all()
    by_id = {row.id: row for row in rows}
    hits = []
    for message_id in ids:
        row = by_id.get(message_id)
        # Deleted or recalled since the search statement (a new snapshot on PostgreSQL): no
        # snippet of a recalled text.
        if row is None or row.recalled_at is not None:
            continue
        sender = presenters.row_sender(row)
        group = row.conversation_kind == "group"
        hits.append(
            {
                "message": presenters.message(row, sender),
                "conversation": {
                    "id": row.conversation_id,
                    "kind": row.conversation_kind,
                    "name": (row.group_name if group else row.peer_nickname) or "",
                    "avatar_url": row.group_avatar_url if group else row.peer_avatar_url,
                },
                "snippet": None
                if query is None
                else snippet(searchable_text(row.type, row.body) or "", query),
            }
        )
    mark_played(user_id, [hit["message"] for hit in hits])  # the reader's `played` on voice messages
    return hits


def _fold(value: str) -> str:
    """Lower case, one character for one, so offsets in the folded text are offsets in the text."""
    return "".join(low if len(low := char.lower()) == 1 else char for char in value)


def snippet(body_text: str, query: str, width: int = SNIPPET) -> dict:
    """At most `width` characters of the text around the first match, and where the query
    occurs in them ([start, end) offsets into the snippet)."""
    folded, needle = _fold(body_text), _fold(query)
    first = folded.find(needle)
    if first < 0:
        return {"text": body_text[:width], "highlights": []}
    start = max(0, first - (width - len(needle)) // 2)
    end = min(len(body_text), start + width)
    start = max(0, end - width)
    part, folded_part = body_text[start:end], folded[start:end]
    highlights, at = [], folded_part.find(needle)
    while at >= 0:
        highlights.append([at, at + len(needle)])
        at = folded_part.find(needle, at + len(needle))
    return {"text": part, "highlights": highlights}
