"""Parley: create_app binds the extensions, blueprints and commands to one application."""

from __future__ import annotations

import sqlite3

from flask import Flask, jsonify
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from app import jsonpack, locales, logging_setup, metrics
from app.extensions import csrf, db, limiter, login_manager, migrate, socketio
from app.models.types import render_item
from app.presence import MemoryPresence, RedisPresence
from app.search.index import include_object
from app.socket_manager import TargetedRedisManager
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


def _targeted_manager(app: Flask, redis_url: str, channel: str, fanout_rooms: int) -> TargetedRedisManager:
    """Each process hears only its own sockets' rooms (app/socket_manager.py). After a lost
    subscription comes back, its sockets are told to catch up (`resync`: run /sync); when a
    process dies or a publish failed, every socket of the deployment is."""

    def ask_sockets_to_catch_up() -> None:
        manager.emit("resync", {}, namespace="/", ignore_queue=True)
        # Bans and revocations made while Redis was away reached only their own process's sockets.
        from app.chat.events import drop_dead_sockets

        socketio.start_background_task(drop_dead_sockets, app)

    def ask_every_socket_to_catch_up(lost: list[str]) -> None:
        # A process died, or this one failed to publish: what was stored but never published is
        # found by /sync, on every process.
        manager.emit("resync", {}, namespace="/")

    manager = TargetedRedisManager(
        redis_url,
        channel,
        fanout_rooms=fanout_rooms,
        on_resubscribed=ask_sockets_to_catch_up,
        on_missed=lambda: ask_every_socket_to_catch_up([]),
        on_process_lost=ask_every_socket_to_catch_up,
        json=jsonpack,
    )
    return manager


def init_socketio(app: Flask) -> None:
    """Bind socket.io (with the Redis message queue when REDIS_URL is set) and presence; both
    carry the deployment's REDIS_NAMESPACE (pub/sub channels ignore the Redis DB number)."""
    redis_url = app.config["REDIS_URL"]
    namespace = app.config["REDIS_NAMESPACE"]
    ttl = app.config["PRESENCE_TTL_SECONDS"]
    public_url = app.config["PUBLIC_BASE_URL"]
    channel = f"{namespace}:socketio"
    # Flask-SocketIO keeps the last queue it made: without Redis, say so, or an application
    # made later in the same process (tests) would publish on an earlier one's queue.
    queue = {"message_queue": redis_url, "channel": channel} if redis_url else {"client_manager": None}
    if redis_url and app.config["SOCKET_ROUTING"] == "targeted":
        manager = _targeted_manager(app, redis_url, channel, app.config["SOCKET_FANOUT_ROOMS"])
        queue = {"message_queue": None, "client_manager": manager}
    socketio.init_app(
        app,
        **queue,
        cors_allowed_origins=[public_url] if public_url else None,
        manage_session=False,
        # One socket's events are handled one after another, in the order it sent them, so a
        # device's messages get their seqs in that order (and no greenlet is spawned per event).
        async_handlers=False,
        # Packets are encoded and decoded with orjson (the standard module for what it refuses).
        json=jsonpack,
    )
    if "parley.presence" not in app.extensions:
        app.extensions["parley.presence"] = (
            RedisPresence(redis_url, namespace, ttl) if redis_url else MemoryPresence(ttl)
        )


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(
        __name__,
        instance_path=config.INSTANCE_PATH,
        template_folder=str(BASE_DIR / "templates"),
    )
    app.config.from_object(config)
    logging_setup.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(BASE_DIR / "migrations"),
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    login_manager.init_app(app)
    login_manager.session_protection = None  # device sessions are checked on every request
    csrf.init_app(app)
    limiter.init_app(app)
    locales.init_app(app)
    init_socketio(app)
    if config.TRUSTED_PROXIES:
        # Behind N proxies: take the client's address, scheme and host from their headers.
        hops = config.TRUSTED_PROXIES
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from app import models  # noqa: F401  (every model on the metadata)
    from app.admin import init_admin
    from app.auth import pages, routes
    from app.auth import session as _session  # noqa: F401  (registers the user loader)
    from app.auth.github import init_github
    from app.bots import routes as bot_routes  # (its service answers messages to the robot)
    from app.bots import state as bot_state
    from app.chat import events as _events  # noqa: F401  (registers the socket handlers)
    from app.chat import routes as chat_routes
    from app.cli import register_commands
    from app.errors import register_error_handlers
    from app.headers import register_security_headers
    from app.media import routes as media_routes
    from app.openapi import bp as openapi_bp
    from app.push import routes as push_routes
    from app.push import sender as _push_sender  # noqa: F401  (pushes messages after they commit)
    from app.pwa import bp as pwa_bp
    from app.search import routes as search_routes
    from app.security import register_csrf
    from app.server_api import register as register_server_api
    from app.social import routes as social_routes
    from app.validation import register_request_limits
    from app.webhooks import events as _webhook_events  # noqa: F401  (queues webhook events)

    register_error_handlers(app)
    metrics.init_app(app)
    register_request_limits(app)
    register_csrf(app)
    register_security_headers(app)
    app.register_blueprint(routes.bp)
    app.register_blueprint(chat_routes.bp)
    app.register_blueprint(social_routes.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(media_routes.bp)
    app.register_blueprint(bot_routes.bp)
    app.register_blueprint(push_routes.bp)
    app.register_blueprint(search_routes.bp)
    app.register_blueprint(pwa_bp)
    app.register_blueprint(openapi_bp)
    register_server_api(app)
    bot_state.init_app(app)
    init_github(app)
    register_commands(app)
    init_admin(app)

    @app.get("/healthz")
    def health():
        db.session.execute(text("SELECT 1"))
        return jsonify(ok=True)

    return app
