"""socket.io handlers: authenticate the connection, then parse, call one service, ack.

Identity is fixed when the socket connects, from the session cookie's device session;
nothing a client sends about who it is is trusted. A revoked device, a signed-out
session or a ban disconnects the socket from the service that caused it.
"""

from __future__ import annotations

import functools
import logging
import time

from flask import current_app, g, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room

from app import realtime
from app.auth.session import current_device
from app.chat import schemas
from app.chat.read import mark_read
from app.chat.send import TYPING_INTERVAL, check_send_rate, notify_typing, send_message
from app.errors import ApiError
from app.extensions import db, socketio
from app.presence import SocketLimitReached
from app.presence_service import announce_presence, settle_presence
from app.validation import validate

log = logging.getLogger(__name__)

# sid -> (user_id, device_id) for the sockets connected to this process.
_identity: dict[str, tuple[int, int]] = {}
# (sid, conversation_id) -> when this socket last sent a typing event there.
_typing_sent: dict[tuple[str, int], float] = {}


_refresher_started = False


def _keep_presence_fresh(app, store) -> None:
    """Refresh this process's presence entries so they outlive their expiry while connected,
    and announce the users whose process died (any live process may be the one to notice)."""
    while True:
        socketio.sleep(store.refresh_seconds)
        try:
            with app.app_context():
                settle_presence(store)
        except Exception:
            log.exception("presence refresh failed")


@socketio.on("connect")
def on_connect(auth=None):
    global _refresher_started
    if not _refresher_started:
        _refresher_started = True
        app = current_app._get_current_object()
        socketio.start_background_task(_keep_presence_fresh, app, realtime.presence())
    if not current_user.is_authenticated:
        raise ConnectionRefusedError("Sign in first.", {"code": "unauthenticated"})
    device = current_device()
    user_id = current_user.id
    try:
        came_online = realtime.presence().add(
            request.sid,
            user_id,
            device.id,
            max_per_device=current_app.config["MAX_SOCKETS_PER_DEVICE"],
            max_per_user=current_app.config["MAX_SOCKETS_PER_USER"],
        )
    except SocketLimitReached as limit:
        message = f"Too many open connections (at most {limit.limit} per {limit.scope})."
        details = {"code": "too_many_sockets", "scope": limit.scope, "limit": limit.limit}
        raise ConnectionRefusedError(message, details) from None
    try:
        _identity[request.sid] = (user_id, device.id)
        join_room(realtime.user_room(user_id))
        if came_online:
            announce_presence(user_id, online=True)
    except Exception:
        # A failed connect gets no disconnect: forget the socket, or it would hold a place.
        _identity.pop(request.sid, None)
        realtime.presence().remove(request.sid)
        raise


@socketio.on("disconnect")
def on_disconnect(reason=None):
    sid = request.sid
    _identity.pop(sid, None)
    for key in [key for key in _typing_sent if key[0] == sid]:
        del _typing_sent[key]
    user_id, offline = realtime.presence().remove(sid)
    if user_id is not None and offline:
        announce_presence(user_id, online=False)


def _error(error: ApiError) -> dict:
    return {"ok": False, "error": error.to_dict()}


# Event name -> the payload model it validates with (None: no payload), for tests and docs.
EVENT_SCHEMAS: dict[str, type | None] = {}


def current_sid() -> str:
    """The socket whose event is being handled (events run without a request context)."""
    return g.sid


def event(name: str, schema=None):
    """Register a socket event whose return value is the ack `{"ok": true, ...}`.

    The handler is registered with python-socketio itself, not through Flask-SocketIO's
    `on_event`, which would push a request context per event: build a request, match its URL,
    decode and verify the session cookie. Identity was fixed at connect (`_identity`), so an
    event needs only an application context (the database session, the config); `request`,
    `session` and `current_user` are not available in handlers: `current_sid()` names the socket.
    """

    def decorate(handler):
        EVENT_SCHEMAS[name] = schema

        @functools.wraps(handler)
        def wrapped(sid, data=None, *extra):
            identity = _identity.get(sid)
            environ = socketio.server.get_environ(sid) if identity is not None else None
            if environ is None:
                return _error(ApiError("unauthenticated", "Sign in first.", 401))
            with environ["flask.app"].app_context():
                g.sid = sid
                try:
                    if extra:
                        raise ApiError("invalid_input", "Send one JSON object.", 400)
                    payload = validate(schema, data) if schema is not None else data
                    return {"ok": True, **handler(identity[0], payload)}
                except ApiError as error:
                    db.session.rollback()
                    return _error(error)
                except Exception:
                    db.session.rollback()
                    log.exception("socket event %s failed", name)
                    return _error(ApiError("internal_error", "Something went wrong on our side.", 500))

        if socketio.server is not None:
            socketio.server.on(name, wrapped)
        else:  # bound when init_app makes the server, as Flask-SocketIO does with its own
            socketio.handlers.append((name, wrapped, "/"))
        return wrapped

    return decorate


@event("message:send", schemas.SendIn)
def send(user_id: int, data: schemas.SendIn) -> dict:
    check_send_rate(user_id)
    message, created = send_message(user_id, data.conversation_id, data.client_msg_id, data.body.model_dump())
    return {"message": message, "duplicate": not created}


@event("conversation:read", schemas.ReadIn)
def read(user_id: int, data: schemas.ReadIn) -> dict:
    return mark_read(user_id, data.conversation_id, data.seq)


@event("typing", schemas.TypingIn)
def typing(user_id: int, data: schemas.TypingIn) -> dict:
    """Tell the other members someone is typing; at most one event per 2 s per socket."""
    key = (current_sid(), data.conversation_id)
    now = time.monotonic()
    if now - _typing_sent.get(key, 0.0) < TYPING_INTERVAL:
        return {"throttled": True}
    notify_typing(user_id, data.conversation_id)
    _typing_sent[key] = now
    return {"throttled": False}
