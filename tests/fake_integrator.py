"""A stand-in for a company's backend receiving Parley's webhooks, on 127.0.0.1.

It checks every request as docs/INTEGRATION.md tells a receiver to — the HMAC-SHA256 signature of
`<X-Parley-Timestamp>.<raw body>` with the hook's secret, a timestamp at most five minutes old —
with its own code (not Parley's), and records each request (`received`) with its verdict and the
answer it gave. After-events are answered `status` (200). `message.before_send` is answered
`decision` (allow by default; a dict, or a function of the request's JSON returning one), after
`delay` seconds (slow), with `before_send_status` (500…). `down()` closes the port (connection
refused) and `up()` opens the same port again.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def signature_ok(secret: str, headers, body: bytes) -> bool:
    """The receiver's check (the example of docs/INTEGRATION.md)."""
    timestamp = headers.get("X-Parley-Timestamp", "")
    signature = headers.get("X-Parley-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v1={expected}", signature)


@dataclass
class Received:
    event: str
    delivery: str  # X-Parley-Delivery, the event id
    headers: dict[str, str]
    payload: dict
    signed: bool  # the signature and timestamp checked out
    status: int  # the answer given
    at: float = 0.0


@dataclass
class FakeIntegrator:
    secret: str = "fake-integrator-secret"
    status: int = 200
    decision: object = field(default_factory=lambda: {"action": "allow"})
    delay: float = 0.0
    before_send_status: int = 200
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self.port = 0
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/parley"

    # --- running ---------------------------------------------------------------------------

    def start(self) -> FakeIntegrator:
        return self.up()

    def up(self) -> FakeIntegrator:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: every request is refused until `up()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    stop = down

    # --- what was received -----------------------------------------------------------------

    def events(self, name: str | None = None, *, delivered: bool = True) -> list[Received]:
        """Requests received (answered 2xx when `delivered`), of event `name` when given."""
        with self._lock:
            items = list(self.received)
        return [
            item
            for item in items
            if (name is None or item.event == name) and (not delivered or 200 <= item.status < 300)
        ]

    def wait_for(self, count: int, name: str | None = None, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"expected {count} {name or 'events'}, got {len(self.events(name))}")

    # --- answering -------------------------------------------------------------------------

    def _answer(self, headers, body: bytes) -> tuple[int, dict]:
        payload = json.loads(body)
        event = headers.get("X-Parley-Event", "")
        signed = signature_ok(self.secret, headers, body)
        if event == "message.before_send":
            if self.delay:
                time.sleep(self.delay)
            decision = self.decision(payload) if callable(self.decision) else self.decision
            status = self.before_send_status if signed else 401
            answer = decision if status == 200 else {"error": "no"}
        else:
            status = self.status if signed else 401
            answer = {"ok": status == 200}
        with self._lock:
            self.received.append(
                Received(
                    event,
                    headers.get("X-Parley-Delivery", ""),
                    dict(headers),
                    payload,
                    signed,
                    status,
                    time.time(),
                )
            )
        return status, answer

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without TCP_NODELAY the body waits for the
            # client's delayed ACK (~40 ms), as no real receiver's server would make it.
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fake._server is None:
                    # Down: a connection kept alive from before is dropped unanswered.
                    self.close_connection = True
                    return
                status, answer = fake._answer(self.headers, body)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(OSError):  # Parley gave up waiting (a slow check)
                    self.wfile.write(raw)

            def log_message(self, *args):
                pass

        return Handler
