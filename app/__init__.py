"""Parley: create_app binds the extensions, blueprints and commands to one application."""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask, jsonify
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from app.extensions import csrf, db, limiter, login_manager, migrate, socketio
from app.models.types import render_item
from app.presence import MemoryPresence, RedisPresence
from config import BASE_DIR, Config


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL for concurrent readers, enforced foreign keys, and a busy timeout for writers."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def init_socketio(app: Flask) -> None:
    """Bind socket.io (with the Redis message queue when REDIS_URL is set) and presence."""
    redis_url = app.config["REDIS_URL"]
    public_url = app.config["PUBLIC_BASE_URL"]
    socketio.init_app(
        app,
        message_queue=redis_url,
        cors_allowed_origins=[public_url] if public_url else None,
        manage_session=False,
    )
    if "parley.presence" not in app.extensions:
        app.extensions["parley.presence"] = RedisPresence(redis_url) if redis_url else MemoryPresence()


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder=str(BASE_DIR / "templates"),
    )
    app.config.from_object(config)
    logging.basicConfig(
        level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(BASE_DIR / "migrations"),
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    login_manager.init_app(app)
    login_manager.session_protection = None  # device sessions are checked on every request
    csrf.init_app(app)
    limiter.init_app(app)
    init_socketio(app)

    from app import models  # noqa: F401  (every model on the metadata)
    from app.auth import pages, routes
    from app.auth import session as _session  # noqa: F401  (registers the user loader)
    from app.chat import events as _events  # noqa: F401  (registers the socket handlers)
    from app.chat import routes as chat_routes
    from app.cli import register_commands
    from app.errors import register_error_handlers
    from app.security import register_csrf
    from app.social import routes as social_routes

    register_error_handlers(app)
    register_csrf(app)
    app.register_blueprint(routes.bp)
    app.register_blueprint(chat_routes.bp)
    app.register_blueprint(social_routes.bp)
    app.register_blueprint(pages.bp)
    register_commands(app)

    @app.get("/healthz")
    def health():
        db.session.execute(text("SELECT 1"))
        return jsonify(ok=True)

    return app
