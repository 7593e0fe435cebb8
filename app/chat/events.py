"""socket.io handlers: authenticate the connection, then parse, call one service, ack.

Identity is fixed when the socket connects, from the session cookie's device session;
nothing a client sends about who it is is trusted. A revoked device, a signed-out
session or a ban disconnects the socket from the service that caused it.
"""

from __future__ import annotations

import functools
import logging
import time

from flask import current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room
from limits import parse

from app import presenters, realtime
from app.auth.session import current_device
from app.chat import schemas, services
from app.errors import ApiError
from app.extensions import db, limiter, socketio
from app.models import User
from app.presence import REFRESH_SECONDS
from app.presence_service import announce_presence
from app.validation import validate

log = logging.getLogger(__name__)

# sid -> (user_id, device_id) for the sockets connected to this process.
_identity: dict[str, tuple[int, int]] = {}
# (sid, conversation_id) -> when this socket last sent a typing event there.
_typing_sent: dict[tuple[str, int], float] = {}
TYPING_INTERVAL = 2.0


_refresher_started = False


def _keep_presence_fresh(store) -> None:
    """Refresh this process's presence entries so they outlive their expiry while connected."""
    while True:
        socketio.sleep(REFRESH_SECONDS)
        try:
            store.refresh()
        except Exception:
            log.exception("presence refresh failed")


@socketio.on("connect")
def on_connect(auth=None):
    global _refresher_started
    if not _refresher_started:
        _refresher_started = True
        socketio.start_background_task(_keep_presence_fresh, realtime.presence())
    if not current_user.is_authenticated:
        raise ConnectionRefusedError("Sign in first.", {"code": "unauthenticated"})
    device = current_device()
    user_id = current_user.id
    _identity[request.sid] = (user_id, device.id)
    join_room(realtime.user_room(user_id))
    if realtime.presence().add(request.sid, user_id, device.id):
        announce_presence(user_id, online=True)


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


def event(name: str, schema=None):
    """Register a socket event whose return value is the ack `{"ok": true, ...}`."""

    def decorate(handler):
        @functools.wraps(handler)
        def wrapped(data=None):
            identity = _identity.get(request.sid)
            if identity is None:
                return _error(ApiError("unauthenticated", "Sign in first.", 401))
            try:
                payload = validate(schema, data) if schema is not None else data
                return {"ok": True, **handler(identity[0], payload)}
            except ApiError as error:
                db.session.rollback()
                return _error(error)
            except Exception:
                db.session.rollback()
                log.exception("socket event %s failed", name)
                return _error(ApiError("internal_error", "Something went wrong on our side.", 500))

        socketio.on_event(name, wrapped)
        return wrapped

    return decorate


def check_send_rate(user_id: int) -> None:
    """A burst of sends from one user is refused with `rate_limited`, never dropped silently."""
    item = parse(current_app.config["MESSAGE_RATE_LIMIT"])
    if not limiter.limiter.hit(item, "send", str(user_id)):
        raise ApiError("rate_limited", "You are sending too fast; wait a moment.", 429)


@event("message:send", schemas.SendIn)
def send(user_id: int, data: schemas.SendIn) -> dict:
    check_send_rate(user_id)
    message, created = services.send_message(
        user_id, data.conversation_id, data.client_msg_id, data.body.model_dump()
    )
    return {"message": message, "duplicate": not created}


@event("conversation:read", schemas.ReadIn)
def read(user_id: int, data: schemas.ReadIn) -> dict:
    return services.mark_read(user_id, data.conversation_id, data.seq)


@event("typing", schemas.TypingIn)
def typing(user_id: int, data: schemas.TypingIn) -> dict:
    """Tell the other members someone is typing; at most one event per 2 s per socket."""
    key = (request.sid, data.conversation_id)
    now = time.monotonic()
    if now - _typing_sent.get(key, 0.0) < TYPING_INTERVAL:
        return {"throttled": True}
    services.require_member(user_id, data.conversation_id)
    _typing_sent[key] = now
    others = [uid for uid in services.active_member_ids(data.conversation_id) if uid != user_id]
    payload = presenters.typing(data.conversation_id, db.session.get(User, user_id))
    realtime.emit_to_users("typing", payload, others)
    return {"throttled": False}
