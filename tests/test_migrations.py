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
