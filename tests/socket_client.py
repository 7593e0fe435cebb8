"""A Parley client for tests against a live server.

A `Device` is one device session: it signs in over REST (a `requests.Session` keeps the cookie)
and opens a socket.io connection over websocket with that cookie. Every event the socket receives
is recorded, in the order it came off the wire, and tests wait on the record.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import engineio
import requests
import socketio

TIMEOUT = 10.0


class _OrderedEngineIOClient(engineio.Client):
    """An engine.io client that hands incoming messages on one at a time, in arrival order.

    The stock client starts a thread per incoming message, so two events the server sent in
    order can reach the handlers in either order; `inbox` is drained by a single thread instead.
    """

    def __init__(self, inbox: queue.SimpleQueue, **options):
        super().__init__(**options)
        self.inbox = inbox

    def _trigger_event(self, event, *args, run_async=False, **kwargs):
        if event == "message" and run_async:
            self.inbox.put(functools.partial(self.handlers[event], *args))
            return None
        return super()._trigger_event(event, *args, run_async=run_async, **kwargs)


class _OrderedClient(socketio.Client):
    def __init__(self, inbox: queue.SimpleQueue, **options):
        self._inbox = inbox
        super().__init__(**options)

    def _engineio_client_class(self):
        return functools.partial(_OrderedEngineIOClient, self._inbox)


class Device:
    """One signed-in device (or, without a username, a visitor who never signed in).

    Events are recorded as `(name, data)`; `connect_error` and `disconnect` are recorded too.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        connect: bool = True,
        transports: tuple[str, ...] = ("websocket",),
    ):
        self.base_url = base_url.rstrip("/")
        # ("polling",): long-polling only, as a client behind a proxy that refuses WebSockets.
        self.transports = list(transports)
        self.http = requests.Session()
        self.user_id: int | None = None
        self.device_id: int | None = None
        self.sio: socketio.Client | None = None
        self._received: list[tuple[str, Any]] = []
        self._connection_start = 0
        self._changed = threading.Condition()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
        self._dispatcher.start()
        try:
            if username is not None:
                self.sign_in(username, password)
            if connect:
                self.connect()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- REST ----------------------------------------------------------------------------

    def get(self, path: str, **params) -> requests.Response:
        return self.http.get(self.base_url + path, params=params, timeout=TIMEOUT)

    def get_json(self, path: str, **params) -> dict:
        response = self.get(path, **params)
        if response.status_code != 200:
            raise AssertionError(f"GET {path} answered {response.status_code}: {response.text}")
        return response.json()

    def post(self, path: str, json: dict | None = None) -> requests.Response:
        return self.http.post(self.base_url + path, json=json, timeout=TIMEOUT)

    def patch(self, path: str, json: dict) -> requests.Response:
        return self.http.patch(self.base_url + path, json=json, timeout=TIMEOUT)

    def delete(self, path: str) -> requests.Response:
        return self.http.delete(self.base_url + path, timeout=TIMEOUT)

    def sign_in(self, username: str, password: str | None) -> None:
        """A new device session for `username`, in this device's cookie."""
        response = self.post("/api/v1/auth/login", {"username": username, "password": password})
        if response.status_code != 200:
            raise AssertionError(f"login as {username} answered {response.status_code}: {response.text}")
        me = response.json()
        self.user_id, self.device_id = me["user"]["id"], me["device"]["id"]

    @property
    def cookie(self) -> str:
        """The `Cookie` header this device sends."""
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.http.cookies)

    # --- socket ----------------------------------------------------------------------------

    def connect(self, cookie: str | None = None, timeout: float = 5.0) -> None:
        """Open a socket with `cookie` (this device's own by default). A refusal raises
        `socketio.exceptions.ConnectionError` and is recorded as `connect_error`."""
        cookie = self.cookie if cookie is None else cookie
        client = _OrderedClient(self._inbox, reconnection=False, handle_sigint=False)
        client.on("*", self._record)
        client.on("connect_error", functools.partial(self._record, "connect_error"))
        client.on("disconnect", functools.partial(self._record, "disconnect"))
        with self._changed:
            self._connection_start = len(self._received)
        self.sio = client
        client.connect(
            self.base_url,
            headers={"Cookie": cookie} if cookie else {},
            transports=self.transports,
            wait_timeout=timeout,
        )

    @property
    def connected(self) -> bool:
        return self.sio is not None and self.sio.connected

    def disconnect(self) -> None:
        if self.connected:
            self.sio.disconnect()

    def close(self) -> None:
        self.disconnect()
        self._inbox.put(None)
        self._dispatcher.join(TIMEOUT)
        self.http.close()

    def call(self, event: str, data: dict, timeout: float = TIMEOUT) -> dict:
        """Emit `event` and return the server's ack."""
        return self.sio.call(event, data, timeout=timeout)

    def send(
        self, conversation_id: int, text: str, client_msg_id: str | None = None, timeout: float = TIMEOUT
    ) -> dict:
        data = {
            "conversation_id": conversation_id,
            "client_msg_id": client_msg_id or uuid.uuid4().hex,
            "body": {"type": "txt", "msg": text},
        }
        return self.call("message:send", data, timeout)

    def read(self, conversation_id: int, seq: int) -> dict:
        return self.call("conversation:read", {"conversation_id": conversation_id, "seq": seq})

    def typing(self, conversation_id: int) -> dict:
        return self.call("typing", {"conversation_id": conversation_id})

    # --- what was received -------------------------------------------------------------------

    def events(self, name: str) -> list:
        """The data of every `name` event received so far, in arrival order."""
        with self._changed:
            return [data for event, data in self._received if event == name]

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0, what: str = "a condition"):
        """Wait until `condition()` holds; it is checked whenever an event arrives."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [event for event, _ in self._received]
                    raise AssertionError(f"no {what} within {timeout} s; received {names}")
                self._changed.wait(remaining)

    def wait_for(self, name: str, predicate: Callable[[Any], bool] | None = None, timeout: float = 5.0):
        """The first `name` event (matching `predicate`) received, waiting for it if need be."""

        def matching() -> list:
            return [data for data in self.events(name) if predicate is None or predicate(data)]

        self.wait_until(lambda: bool(matching()), timeout, f"{name!r} event")
        return matching()[0]

    def wait_disconnected(self, timeout: float = 5.0) -> str:
        """Wait until the current socket is dropped; returns the reason."""

        def reasons() -> list[str]:
            with self._changed:
                current = self._received[self._connection_start :]
            return [data for event, data in current if event == "disconnect"]

        self.wait_until(lambda: bool(reasons()), timeout, "disconnection")
        return reasons()[0]

    def _record(self, name: str, *args) -> None:
        with self._changed:
            self._received.append((name, args[0] if len(args) == 1 else args))
            self._changed.notify_all()

    def _dispatch(self) -> None:
        while (handle := self._inbox.get()) is not None:
            handle()
