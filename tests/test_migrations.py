"""One Alembic chain that builds exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from app import create_app
from app.extensions import db, socketio
from app.models.types import render_item
from app.search.index import include_object
from config import Config
from tests.conftest import server_env


def test_a_single_head(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1


def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as connection:
        opts = {"compare_type": True, "render_item": render_item, "include_object": include_object}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_the_app_does_not_migrate_on_start(tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    # Flask-SocketIO binds one app at a time: the session app keeps its socket.io server.
    server = socketio.server
    application = create_app(Config.from_env(server_env(fresh, tmp_path)))
    socketio.server = server
    with application.app_context():
        assert inspect(db.engine).get_table_names() == []
        db.engine.dispose()


def test_upgrading_and_downgrading_keeps_every_row(app, tmp_path, make_user, befriend, login):
    """A migration that rebuilds a table (SQLite's batch mode: copy, drop, rename) must not let
    foreign keys cascade the drop into the rows that point at it: messages, members, reactions
    survive 0008's rebuild of `conversations`, both ways."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    bob_id = make_user("bob")
    befriend(make_user("alice"), bob_id)
    alice = login("alice")
    conversation = alice.post("/api/v1/conversations", json={"user_id": bob_id}).get_json()["conversation"]
    for number in range(3):
        body = {"client_msg_id": f"kept-{number:04d}", "body": {"type": "txt", "msg": f"kept {number}"}}
        assert (
            alice.post(f"/api/v1/conversations/{conversation['id']}/messages", json=body).status_code == 201
        )
    tables = ("conversations", "conversation_members", "messages", "users")

    def counts():
        with app.app_context():
            return {
                name: db.session.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar() for name in tables
            }

    before = counts()
    assert before["messages"] == 3
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        try:
            downgrade(revision="0007")
            assert counts() == before
        finally:
            db.session.remove()
            upgrade()
    assert counts() == before


def test_0012_makes_the_first_administrator_owner_and_the_others_admin(app, make_user):
    """Administrators of before 0012 (`users.is_admin`): the lowest id becomes `owner`, the others
    `admin`; people who were not administrators get no role. Down again, a role is `is_admin`."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    names = ["ann", "ben", "cat", "dan"]
    ids = {name: make_user(name) for name in names}

    def roles() -> dict:
        with app.app_context():
            rows = db.session.execute(
                text(
                    "SELECT users.username, admin_roles.name FROM users"
                    " LEFT JOIN admin_roles ON admin_roles.id = users.admin_role_id"
                )
            )
            return dict(rows.all())

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        try:
            downgrade(revision="0011")
            with db.engine.begin() as connection:
                connection.execute(
                    text("UPDATE users SET is_admin = (id IN (:ben, :dan))"),
                    {"ben": ids["ben"], "dan": ids["dan"]},
                )
        finally:
            db.session.remove()
            upgrade()
    assert roles() == {"ann": None, "ben": "owner", "cat": None, "dan": "admin"}
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
        try:
            downgrade(revision="0011")
            with db.engine.connect() as connection:
                admins = connection.execute(text("SELECT username FROM users WHERE is_admin ORDER BY id"))
                assert admins.scalars().all() == ["ben", "dan"]
        finally:
            db.session.remove()
            upgrade()
    assert roles() == {"ann": None, "ben": "owner", "cat": None, "dan": "admin"}
