"""Operating Parley: console roles and rights (`admin_roles`, `users.admin_role_id` instead of
`users.is_admin`), deployment settings, users' data exports, and the retention policy's marks
(`groups.retention_days`, `conversations.purged_seq`).

The administrators of before: the first one (lowest id) becomes `owner`, the others `admin`
(every right but managing roles). The built-in roles' rights are copied here (a migration is a
snapshot; app/moderation/rights.py holds the running list).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:00:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

RIGHTS = [
    "ban",
    "mute",
    "recall",
    "dissolve",
    "view_messages",
    "view_audit",
    "manage_roles",
    "manage_api_keys",
    "manage_webhooks",
    "manage_words",
    "bot_switch",
    "settings",
]
BUILTIN = [
    (1, "owner", RIGHTS),
    (2, "admin", [right for right in RIGHTS if right != "manage_roles"]),
    (3, "moderator", ["ban", "mute", "recall", "dissolve", "view_messages"]),
    (4, "support", ["view_messages", "view_audit"]),
]


def upgrade():
    roles = op.create_table(
        "admin_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("rights", sa.JSON(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_admin_roles_name")),
    )
    now = sa.func.now()
    connection = op.get_bind()
    for role_id, name, rights in BUILTIN:
        connection.execute(
            roles.insert().values(id=role_id, name=name, rights=rights, builtin=True, created_at=now)
        )
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('admin_roles', 'id'), (SELECT max(id) FROM admin_roles))"
        )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_settings_updated_by_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_settings")),
    )
    op.create_table(
        "user_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'ready', 'failed')", name=op.f("ck_user_exports_state")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_exports_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_exports")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_exports_token_hash")),
    )
    with op.batch_alter_table("user_exports", schema=None) as batch_op:
        batch_op.create_index("ix_user_exports_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_user_exports_user_id_created_at", ["user_id", "created_at"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("admin_role_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_users_admin_role_id", ["admin_role_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_users_admin_role_id_admin_roles"), "admin_roles", ["admin_role_id"], ["id"]
        )
    first = connection.execute(sa.text("SELECT min(id) FROM users WHERE is_admin")).scalar()
    if first is not None:
        connection.execute(sa.text("UPDATE users SET admin_role_id = 1 WHERE id = :id"), {"id": first})
        connection.execute(
            sa.text("UPDATE users SET admin_role_id = 2 WHERE is_admin AND id <> :id"), {"id": first}
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_admin")

    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_seq", sa.BigInteger(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("purged_seq")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("retention_days")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE users SET is_admin = (admin_role_id IS NOT NULL)")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_users_admin_role_id_admin_roles"), type_="foreignkey")
        batch_op.drop_index("ix_users_admin_role_id")
        batch_op.drop_column("admin_role_id")

    with op.batch_alter_table("user_exports", schema=None) as batch_op:
        batch_op.drop_index("ix_user_exports_user_id_created_at")
        batch_op.drop_index("ix_user_exports_expires_at")
    op.drop_table("user_exports")
    op.drop_table("settings")
    op.drop_table("admin_roles")
