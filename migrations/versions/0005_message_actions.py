"""Message actions: replies, mentions, edits (previous versions kept), reactions, pins,
messages deleted for one user, uploads shared by forwards, and the "merged" message type.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 23:32:51.416349

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD_TYPES = ('txt', 'img', 'video', 'loc', 'file', 'system')
NEW_TYPES = (*OLD_TYPES, 'merged')


def upgrade():
    op.create_table('message_edits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('written_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_edits_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_edits'))
    )
    with op.batch_alter_table('message_edits', schema=None) as batch_op:
        batch_op.create_index('ix_message_edits_message_id_version', ['message_id', 'version'], unique=True)

    op.create_table('message_hides',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('stream_pos', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_message_hides_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_hides_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_message_hides_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'message_id', name=op.f('pk_message_hides'))
    )
    with op.batch_alter_table('message_hides', schema=None) as batch_op:
        batch_op.create_index('ix_message_hides_user_id_stream_pos', ['user_id', 'stream_pos'], unique=False)

    op.create_table('message_mentions',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_message_mentions_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_mentions_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_message_mentions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'conversation_id', 'seq', name=op.f('pk_message_mentions'))
    )
    with op.batch_alter_table('message_mentions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_mentions_message_id'), ['message_id'], unique=False)

    op.create_table('message_reactions',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('emoji', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_reactions_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_message_reactions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'user_id', 'emoji', name=op.f('pk_message_reactions'))
    )
    op.create_table('upload_shares',
    sa.Column('upload_id', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_upload_shares_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], name=op.f('fk_upload_shares_upload_id_uploads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'message_id', name=op.f('pk_upload_shares'))
    )
    with op.batch_alter_table('upload_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_upload_shares_message_id'), ['message_id'], unique=False)

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pins', sa.JSON(), nullable=True))

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('members_mention_all', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recalled_as', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('reply_to_seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('reply', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mentions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('mention_all', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('edit_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reactions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('forwarded', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_constraint(op.f('ck_messages_type'), type_='check')
        batch_op.create_check_constraint('type', sa.text(f"type IN {NEW_TYPES}"))
        batch_op.create_index(
            'ix_messages_conversation_id_reply_to_seq',
            ['conversation_id', 'reply_to_seq'],
            unique=False,
            postgresql_where=sa.text('reply_to_seq IS NOT NULL'),
            sqlite_where=sa.text('reply_to_seq IS NOT NULL'),
        )



def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_conversation_id_reply_to_seq')
        batch_op.drop_constraint(op.f('ck_messages_type'), type_='check')
        batch_op.create_check_constraint('type', sa.text(f"type IN {OLD_TYPES}"))
        batch_op.drop_column('forwarded')
        batch_op.drop_column('reactions')
        batch_op.drop_column('edit_count')
        batch_op.drop_column('mention_all')
        batch_op.drop_column('mentions')
        batch_op.drop_column('reply')
        batch_op.drop_column('reply_to_seq')
        batch_op.drop_column('recalled_as')

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('members_mention_all')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('pins')

    with op.batch_alter_table('upload_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_upload_shares_message_id'))

    op.drop_table('upload_shares')
    op.drop_table('message_reactions')
    with op.batch_alter_table('message_mentions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_mentions_message_id'))

    op.drop_table('message_mentions')
    with op.batch_alter_table('message_hides', schema=None) as batch_op:
        batch_op.drop_index('ix_message_hides_user_id_stream_pos')

    op.drop_table('message_hides')
    with op.batch_alter_table('message_edits', schema=None) as batch_op:
        batch_op.drop_index('ix_message_edits_message_id_version')

    op.drop_table('message_edits')
