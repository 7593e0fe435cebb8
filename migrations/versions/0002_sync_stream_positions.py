"""Stream positions for gap-free sync: one counter, stamped on messages, conversations and members.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:48:33.567832

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stream_counter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pos', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stream_counter'))
    )
    op.execute("INSERT INTO stream_counter (id, pos) VALUES (1, 0)")
    with op.batch_alter_table('conversation_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_pos', sa.BigInteger(), nullable=False, server_default='0'))

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_pos', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.drop_column('last_message_id')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_pos', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.create_index('ix_messages_conversation_id_stream_pos', ['conversation_id', 'stream_pos'], unique=False)



def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_conversation_id_stream_pos')
        batch_op.drop_column('stream_pos')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_message_id', sa.INTEGER(), nullable=True))
        batch_op.drop_column('stream_pos')

    with op.batch_alter_table('conversation_members', schema=None) as batch_op:
        batch_op.drop_column('stream_pos')

    op.drop_table('stream_counter')
