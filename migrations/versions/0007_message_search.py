"""Message search: an index of each message's searchable text, kept by the database itself.

SQLite: a contentless FTS5 table with the trigram tokenizer, keyed by message id (its rowid), kept
by triggers on `messages`. PostgreSQL: pg_trgm and a GIN trigram index on an immutable function of
the message. The searchable text: a text's `msg`, a file's `name`, a location's `title`, a chat
history's title and its text items; recalled and system messages have none.

This file keeps its own copy of the SQL (app/search/index.py holds the one the application and
the benchmark use): a migration is a snapshot and never imports application code.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 00:20:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXED = "('txt', 'file', 'loc', 'merged')"


def _sqlite_text(row: str) -> str:
    """The searchable text of the message `row` (new/old in a trigger, or a table alias)."""
    return (
        f"CASE {row}.type"
        f" WHEN 'txt' THEN json_extract({row}.body, '$.msg')"
        f" WHEN 'file' THEN json_extract({row}.body, '$.name')"
        f" WHEN 'loc' THEN json_extract({row}.body, '$.title')"
        f" WHEN 'merged' THEN coalesce(json_extract({row}.body, '$.title'), '') || ' ' || coalesce(("
        f"SELECT group_concat(json_extract(item.value, '$.body.msg'), ' ')"
        f" FROM json_each({row}.body, '$.items') AS item"
        f" WHERE json_extract(item.value, '$.type') = 'txt'), '')"
        " END"
    )


def _sqlite_add(row: str) -> str:
    return (
        f"INSERT INTO messages_search (rowid, text) SELECT {row}.id, {_sqlite_text(row)}"
        f" WHERE {row}.recalled_at IS NULL AND {row}.type IN {INDEXED};"
    )


def _sqlite_remove(row: str) -> str:
    # A contentless table forgets a row by being told the very text it indexed.
    return (
        "INSERT INTO messages_search (messages_search, rowid, text)"
        f" SELECT 'delete', {row}.id, {_sqlite_text(row)}"
        f" WHERE {row}.recalled_at IS NULL AND {row}.type IN {INDEXED};"
    )


PG_FUNCTION = """
CREATE OR REPLACE FUNCTION message_search_text(kind text, body json) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE kind
    WHEN 'txt' THEN body ->> 'msg'
    WHEN 'file' THEN body ->> 'name'
    WHEN 'loc' THEN body ->> 'title'
    WHEN 'merged' THEN coalesce(body ->> 'title', '') || ' ' || coalesce((
      SELECT string_agg(element -> 'body' ->> 'msg', ' ' ORDER BY position)
      FROM json_array_elements(body -> 'items') WITH ORDINALITY AS items(element, position)
      WHERE element ->> 'type' = 'txt'), '')
  END
$$
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE INDEX ix_messages_search ON messages"
            " USING gin (message_search_text(type, body) gin_trgm_ops)"
            f" WHERE recalled_at IS NULL AND type IN {INDEXED}"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE messages_search USING fts5("
        "text, tokenize = 'trigram case_sensitive 0', content = '')"
    )
    op.execute(
        "CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN "
        f"{_sqlite_add('new')} END"
    )
    op.execute(
        "CREATE TRIGGER messages_search_update AFTER UPDATE OF type, body, recalled_at ON messages BEGIN "
        f"{_sqlite_remove('old')} {_sqlite_add('new')} END"
    )
    op.execute(
        "CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN "
        f"{_sqlite_remove('old')} END"
    )
    # The messages stored so far.
    op.execute(
        f"INSERT INTO messages_search (rowid, text) SELECT m.id, {_sqlite_text('m')} FROM messages AS m"
        f" WHERE m.recalled_at IS NULL AND m.type IN {INDEXED}"
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_search")
        op.execute("DROP FUNCTION IF EXISTS message_search_text(text, json)")
        return
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS messages_search_{name}")
    op.execute("DROP TABLE IF EXISTS messages_search")
