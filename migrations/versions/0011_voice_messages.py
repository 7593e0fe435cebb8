"""Voice messages: the `audio` upload kind and message type, and who has played which voice
message (`message_plays`, synced to a user's devices through the stream like hides).

On SQLite, changing the `messages` check constraint rebuilds the table, which drops the search
triggers of 0007: they are created again here (a copy of 0007's SQL; a migration is a snapshot).
The search index itself keeps its rows (message ids do not change).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

OLD_UPLOAD_KINDS = ('image', 'video', 'file', 'avatar')
NEW_UPLOAD_KINDS = ('image', 'video', 'audio', 'file', 'avatar')
OLD_TYPES = ('txt', 'img', 'video', 'loc', 'file', 'system', 'merged')
NEW_TYPES = ('txt', 'img', 'video', 'audio', 'loc', 'file', 'system', 'merged')

INDEXED = "('txt', 'file', 'loc', 'merged')"


def _sqlite_text(row):
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


def _sqlite_add(row):
    return (
        f"INSERT INTO messages_search (rowid, text) SELECT {row}.id, {_sqlite_text(row)}"
        f" WHERE {row}.recalled_at IS NULL AND {row}.type IN {INDEXED};"
    )


def _sqlite_remove(row):
    return (
        "INSERT INTO messages_search (messages_search, rowid, text)"
        f" SELECT 'delete', {row}.id, {_sqlite_text(row)}"
        f" WHERE {row}.recalled_at IS NULL AND {row}.type IN {INDEXED};"
    )


def _search_triggers():
    """The search index's triggers on `messages` (SQLite), as 0007 made them."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS messages_search_{name}")
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


def upgrade():
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_uploads_kind'), type_='check')
        batch_op.create_check_constraint('kind', sa.text(f"kind IN {NEW_UPLOAD_KINDS}"))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_messages_type'), type_='check')
        batch_op.create_check_constraint('type', sa.text(f"type IN {NEW_TYPES}"))
    _search_triggers()

    op.create_table('message_plays',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('stream_pos', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_message_plays_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_plays_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_message_plays_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'message_id', name=op.f('pk_message_plays'))
    )
    with op.batch_alter_table('message_plays', schema=None) as batch_op:
        batch_op.create_index('ix_message_plays_user_id_stream_pos', ['user_id', 'stream_pos'], unique=False)


def downgrade():
    with op.batch_alter_table('message_plays', schema=None) as batch_op:
        batch_op.drop_index('ix_message_plays_user_id_stream_pos')
    op.drop_table('message_plays')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_messages_type'), type_='check')
        batch_op.create_check_constraint('type', sa.text(f"type IN {OLD_TYPES}"))
    _search_triggers()
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_uploads_kind'), type_='check')
        batch_op.create_check_constraint('kind', sa.text(f"kind IN {OLD_UPLOAD_KINDS}"))
