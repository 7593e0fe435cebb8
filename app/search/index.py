"""The message search index of each database, as the application sees it: its names, the text it
holds for a message (the same text in Python, for snippets), and its DDL for the benchmark's bulk
loads. Migration 0007 creates it; the database keeps it (docs/ARCHITECTURE.md, "Search").

SQLite: `messages_search`, a contentless FTS5 table (trigram tokenizer, case-insensitive) whose
rowid is the message id, written by triggers on `messages`. PostgreSQL: `ix_messages_search`, a
GIN pg_trgm index on `message_search_text(type, body)`, partial on messages not recalled.
"""

from __future__ import annotations

SQLITE_TABLE = "messages_search"
PG_INDEX = "ix_messages_search"
PG_FUNCTION = "message_search_text"
# Message types with searchable text (system messages and media without names have none).
INDEXED_TYPES = ("txt", "file", "loc", "merged")


def include_object(object_, name, type_, reflected, compare_to) -> bool:
    """Alembic: the search index is not a model. The FTS5 table and its shadow tables
    (messages_search_data, _idx, _docsize, _config) and the PostgreSQL index are left to
    migration 0007, so `flask db check` and autogenerate neither drop nor recreate them."""
    if type_ == "table" and name and (name == SQLITE_TABLE or name.startswith(f"{SQLITE_TABLE}_")):
        return False
    return not (type_ == "index" and name == PG_INDEX)


def searchable_text(kind: str, body: dict | None) -> str | None:
    """The text the index holds for a message, exactly as the migration's SQL builds it."""
    body = body or {}
    if kind == "txt":
        return body.get("msg")
    if kind == "file":
        return body.get("name")
    if kind == "loc":
        return body.get("title")
    if kind == "merged":
        items = [
            item["body"]["msg"]
            for item in body.get("items") or []
            if item.get("type") == "txt" and isinstance(item.get("body"), dict) and item["body"].get("msg")
        ]
        return f"{body.get('title') or ''} {' '.join(items)}"
    return None


def pg_drop_sql() -> str:
    return f"DROP INDEX IF EXISTS {PG_INDEX}"


def pg_create_sql() -> str:
    """The index as migration 0007 builds it (the benchmark drops it for a bulk load)."""
    types = ", ".join(f"'{kind}'" for kind in INDEXED_TYPES)
    return (
        f"CREATE INDEX {PG_INDEX} ON messages USING gin ({PG_FUNCTION}(type, body) gin_trgm_ops)"
        f" WHERE recalled_at IS NULL AND type IN ({types})"
    )


def sqlite_text_sql(alias: str) -> str:
    """The searchable text of message `alias` in SQLite's SQL (what the triggers index)."""
    return (
        f"CASE {alias}.type"
        f" WHEN 'txt' THEN json_extract({alias}.body, '$.msg')"
        f" WHEN 'file' THEN json_extract({alias}.body, '$.name')"
        f" WHEN 'loc' THEN json_extract({alias}.body, '$.title')"
        f" WHEN 'merged' THEN coalesce(json_extract({alias}.body, '$.title'), '') || ' ' || coalesce(("
        f"SELECT group_concat(json_extract(item.value, '$.body.msg'), ' ')"
        f" FROM json_each({alias}.body, '$.items') AS item"
        f" WHERE json_extract(item.value, '$.type') = 'txt'), '')"
        " END"
    )


def text_sql(dialect: str, alias: str, indexed: bool = True) -> str:
    """The searchable text of message `alias`; on PostgreSQL the indexed expression itself, or
    (`indexed=False`, for a scan) the same text with a text message's read inline, saving the
    function call on most rows."""
    if dialect == "postgresql":
        call = f"{PG_FUNCTION}({alias}.type, {alias}.body)"
        return (
            call if indexed else f"CASE WHEN {alias}.type = 'txt' THEN {alias}.body ->> 'msg' ELSE {call} END"
        )
    return sqlite_text_sql(alias)
