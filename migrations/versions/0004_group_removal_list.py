"""Group removal list: who was removed from a group, so they cannot rejoin until it is lifted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 16:59:39.359031

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('group_removals',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_removals_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['removed_by_id'], ['users.id'], name=op.f('fk_group_removals_removed_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_group_removals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id', name=op.f('pk_group_removals'))
    )
    with op.batch_alter_table('group_removals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_removals_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('group_removals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_removals_user_id'))

    op.drop_table('group_removals')
