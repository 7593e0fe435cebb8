"""Helpers for chat tests on Flask-SocketIO's in-process test client.

A socket a test leaves connected is disconnected, and forgotten, when the test ends
(tests/conftest.py `_drop_socket_clients`); a test disconnects one itself only to test that."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from flask.testing import FlaskClient
from flask_socketio.test_client import SocketIOTestClient

from app.extensions import socketio

_ids = itertools.count(1)


def new_client_msg_id() -> str:
    return f"test-msg-{next(_ids):08d}"


@dataclass
class Device:
    """One signed-in device: its HTTP client and its socket."""

    http: FlaskClient
    socket: SocketIOTestClient
    user_id: int

    def send(self, conversation_id: int, text: str = "hello", client_msg_id: str | None = None, body=None):
        return self.socket.emit(
            "message:send",
            {
                "conversation_id": conversation_id,
                "client_msg_id": client_msg_id or new_client_msg_id(),
                "body": body if body is not None else {"type": "txt", "msg": text},
            },
            callback=True,
        )

    def emit(self, name: str, data):
        return self.socket.emit(name, data, callback=True)

    def received(self, name: str | None = None) -> list:
        events = self.socket.get_received()
        return [event["args"][0] for event in events if name is None or event["name"] == name]


def connect(app, http: FlaskClient) -> Device:
    user_id = http.get("/api/v1/auth/me").get_json()["user"]["id"]
    socket = socketio.test_client(app, flask_test_client=http)
    assert socket.is_connected()
    return Device(http, socket, user_id)
