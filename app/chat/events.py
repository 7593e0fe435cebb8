"""socket.io handlers: authenticate the connection, then parse, call one service, ack.

Identity is fixed when the socket connects, from the session cookie's device session;
nothing a client sends about who it is is trusted. A revoked device, a signed-out
session or a ban disconnects the socket from the service that caused it.
"""

from __future__ import annotations

import functools
import logging
import time

from flask import g
from flask_socketio import ConnectionRefusedError

from app import metrics, realtime
from app.auth import services as auth_services
from app.auth.session import DEVICE_KEY
from app.chat import pipeline, schemas
from app.chat.actions.edit import edit as edit_message
from app.chat.actions.forward import forward as forward_messages
from app.chat.actions.hides import hide as hide_messages
from app.chat.actions.pins import pin as pin_message
from app.chat.actions.reactions import react as react_to_message
from app.chat.actions.recall import recall as recall_message
from app.chat.plays import play as play_message
from app.chat.read import mark_read
from app.chat.send import TYPING_INTERVAL, check_send_rate, notify_typing
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


def drop_dead_sockets(app) -> None:
    """Disconnect this process's sockets whose device session is no longer live. Run when the
    process has its link to Redis again: a ban or revocation made while Redis was away could only
    name the sockets of the process that made it."""
    with app.app_context():
        try:
            live = auth_services.live_device_ids(device for _, device in list(_identity.values()))
            dead = [sid for sid, (_, device) in list(_identity.items()) if device not in live]
        finally:
            db.session.remove()
        if dead:
            log.warning("dropping %d socket(s) whose device session ended meanwhile", len(dead))
            realtime.disconnect_sids(dead)


def _on(name: str):
    """Register a connect or disconnect handler with python-socketio itself, as `event` does
    for the other events: no Flask request context is pushed for it."""

    def decorate(handler):
        if socketio.server is not None:
            socketio.server.on(name, handler)
        else:  # bound when init_app makes the server
            socketio.handlers.append((name, handler, "/"))
        return handler

    return decorate


def _signed_in_device(app, environ):
    """The live device session named by the connection's session cookie (decoded once, here),
    with the same rules as a request's sign-in: a revoked, expired or banned one is None."""
    # populate_request=False: the request would otherwise stay in the environ, which lives as
    # long as the connection (memory held by every idle socket).
    request = app.request_class(environ, populate_request=False)
    session = app.session_interface.open_session(app, request)
    token = session.get(DEVICE_KEY) if session is not None else None
    user_id = session.get("_user_id") if token else None  # Flask-Login's key
    if not isinstance(user_id, str) or not user_id.isdigit():
        return None
    return auth_services.load_device(int(user_id), token)


@_on("connect")
def on_connect(sid, environ, auth=None):
    """Identify the socket from its session cookie, count it against the socket caps, join the
    user's room and, when the user just came online, tell everyone who may see it. It runs in an
    application context only (see `_on`)."""
    global _refresher_started
    app = environ["flask.app"]
    with app.app_context():
        if not _refresher_started:
            _refresher_started = True
            socketio.start_background_task(_keep_presence_fresh, app, realtime.presence())
        device = _signed_in_device(app, environ)
        if device is None:
            raise ConnectionRefusedError("Sign in first.", {"code": "unauthenticated"})
        user_id, device_id = device.user_id, device.id
        store = realtime.presence()
        try:
            came_online = store.add(
                sid,
                user_id,
                device_id,
                max_per_device=app.config["MAX_SOCKETS_PER_DEVICE"],
                max_per_user=app.config["MAX_SOCKETS_PER_USER"],
            )
        except SocketLimitReached as limit:
            message = f"Too many open connections (at most {limit.limit} per {limit.scope})."
            details = {"code": "too_many_sockets", "scope": limit.scope, "limit": limit.limit}
            raise ConnectionRefusedError(message, details) from None
        try:
            _identity[sid] = (user_id, device_id)
            socketio.server.enter_room(sid, realtime.user_room(user_id), namespace="/")
            if came_online:
                announce_presence(user_id, online=True)
        except Exception:
            # A failed connect gets no disconnect: forget the socket, or it would hold a place.
            _identity.pop(sid, None)
            store.remove(sid)
            raise
        metrics.socket_connected()


@_on("disconnect")
def on_disconnect(sid, reason=None):
    """Forget the socket; the user's last socket gone, record last seen and announce them
    offline (once, whichever process notices). An application context only (see `_on`)."""
    if _identity.pop(sid, None) is not None:
        metrics.socket_disconnected()
    for key in [key for key in _typing_sent if key[0] == sid]:
        del _typing_sent[key]
    environ = socketio.server.get_environ(sid)
    if environ is None:
        return
    with environ["flask.app"].app_context():
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
                # The language of this event's acks: the user's setting, read only if a text is
                # translated (app/locales.py).
                g.socket_user = (identity[0], environ)
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
    # Typing after a send is news again: the next "typing" from this socket is not throttled.
    _typing_sent.pop((current_sid(), data.conversation_id), None)
    with metrics.send_ack_timer():
        check_send_rate(user_id)
        body = data.body.model_dump()
        extras = data.extras()
        message, created = pipeline.send(user_id, data.conversation_id, data.client_msg_id, body, extras)
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


@event("message:recall", schemas.RecallIn)
def recall(user_id: int, data: schemas.RecallIn) -> dict:
    return recall_message(user_id, data.conversation_id, data.seq)


@event("message:edit", schemas.EditMessageIn)
def edit(user_id: int, data: schemas.EditMessageIn) -> dict:
    return edit_message(user_id, data.conversation_id, data.seq, data.msg, data.version)


@event("message:forward", schemas.ForwardIn)
def forward(user_id: int, data: schemas.ForwardIn) -> dict:
    targets = [(target.conversation_id, target.client_msg_id) for target in data.targets]
    return forward_messages(user_id, data.conversation_id, data.seqs, data.mode, targets, data.title)


@event("message:react", schemas.ReactIn)
def react(user_id: int, data: schemas.ReactIn) -> dict:
    return react_to_message(user_id, data.conversation_id, data.seq, data.emoji, data.add)


@event("message:pin", schemas.PinIn)
def pin(user_id: int, data: schemas.PinIn) -> dict:
    return pin_message(user_id, data.conversation_id, data.seq, data.pinned)


@event("message:hide", schemas.HideMessagesIn)
def hide(user_id: int, data: schemas.HideMessagesIn) -> dict:
    return hide_messages(user_id, data.conversation_id, data.seqs)


@event("message:play", schemas.PlayIn)
def play(user_id: int, data: schemas.PlayIn) -> dict:
    return play_message(user_id, data.conversation_id, data.seq)
