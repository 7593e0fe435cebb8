"""Voice messages: the `audio` upload kind and message type, and who has played which voice
message (`message_plays`, synced to a user's devices through the stream like hides).

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


def upgrade():
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_uploads_kind'), type_='check')
        batch_op.create_check_constraint('kind', sa.text(f"kind IN {NEW_UPLOAD_KINDS}"))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_messages_type'), type_='check')
        batch_op.create_check_constraint('type', sa.text(f"type IN {NEW_TYPES}"))

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
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_uploads_kind'), type_='check')
        batch_op.create_check_constraint('kind', sa.text(f"kind IN {OLD_UPLOAD_KINDS}"))
