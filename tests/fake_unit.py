"""A stand-in for Baidu's access-token endpoint and UNIT's robot chat API 3.0, on 127.0.0.1.

It speaks Baidu's shapes (see app/bots/unit.py), checks what the client sends as Baidu would,
records every request, and has knobs for what can go wrong: error codes, expired tokens, a
chat call that hangs (for a bounded time), and malformed answers.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

API_KEY = "fake-unit-api-key"
SECRET_KEY = "fake-unit-secret-key"
SERVICE_ID = "S10000"

ERROR_MESSAGES = {
    4: "Open api request limit reached",
    17: "Open api daily request limit reached",
    18: "Open api qps request limit reached",
    19: "Open api total request limit reached",
    100: "Invalid parameter",
    110: "Access token invalid or no longer valid",
    111: "Access token expired",
    282000: "internal error",
    282004: "invalid parameter(s)",
}


@dataclass
class Request:
    path: str
    params: dict[str, str]
    body: dict | None
    started_at: float
    finished_at: float | None = None


@dataclass
class FakeUnit:
    """Knobs (set them between calls; every one is reset by `reset`):

    - `expires_in`: the lifetime of the tokens it hands out;
    - `chat_errors`: error codes the next chat calls answer with, one per call, in order;
    - `hang`: chat calls wait (up to `hang_seconds`, or until `release()`) before answering;
    - `malformed`: chat calls answer "not_json" (a cut-off body) or "no_answer" (valid JSON
      without `responses[0].actions[0].say`).
    """

    expires_in: int = 2592000
    chat_errors: list[int] = field(default_factory=list)
    hang: bool = False
    hang_seconds: float = 30.0
    malformed: str | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._tokens: set[str] = set()
        self._sessions = 0
        self._issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> FakeUnit:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.expires_in = 2592000
            self.chat_errors = []
            self.hang = False
            self.malformed = None
            self.requests = []
            self._tokens.clear()
            self._sessions = 0
            self._released = threading.Event()

    def release(self) -> None:
        """Let hanging chat calls answer now."""
        self._released.set()

    def expire_tokens(self) -> None:
        """Every token handed out so far is refused from now on (error 111)."""
        with self._lock:
            self._tokens.clear()

    # --- what was asked ---------------------------------------------------------------------

    def calls(self, kind: str) -> list[Request]:
        """The "token" or "chat" requests received so far."""
        path = "/oauth/2.0/token" if kind == "token" else "/rpc/2.0/unit/service/v3/chat"
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def wait_for_hanging_chat(self, timeout: float = 10.0) -> Request:
        """The chat call that is being held (with `hang` on), once it has arrived."""
        deadline = time.monotonic() + timeout
        while not (held := [call for call in self.calls("chat") if call.finished_at is None]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no chat call is hanging after {timeout} s")
            time.sleep(0.02)
        return held[0]

    # --- answering ---------------------------------------------------------------------------

    def _token(self, params: dict[str, str]) -> tuple[int, dict]:
        if params.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "unsupported grant type"}
        if params.get("client_id") != API_KEY:
            return 401, {"error": "invalid_client", "error_description": "unknown client id"}
        if params.get("client_secret") != SECRET_KEY:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        with self._lock:
            self._issued += 1
            token = f"24.fake-token-{self._issued}.{self.expires_in}"
            self._tokens.add(token)
        return 200, {
            "refresh_token": "25.fake-refresh",
            "expires_in": self.expires_in,
            "session_key": "fake-session-key",
            "access_token": token,
            "scope": "public brain_all_scope unit_理解与交互V2",
            "session_secret": "fake-session-secret",
        }

    def _chat(self, params: dict[str, str], body) -> dict:
        token = params.get("access_token")
        with self._lock:
            if not token:
                code = 100
            elif token not in self._tokens:
                code = 111
            elif not self._valid_chat_body(body):
                code = 282004
            else:
                code = self.chat_errors.pop(0) if self.chat_errors else 0
                if code in (110, 111):
                    self._tokens.discard(token)
        if code:
            return {"error_code": code, "error_msg": ERROR_MESSAGES.get(code, "error")}
        if self.hang:
            self._released.wait(self.hang_seconds)
        with self._lock:
            session_id = body["session_id"]
            if not session_id:
                self._sessions += 1
                session_id = f"service-{SERVICE_ID}-session-{self._sessions}"
        query = body["request"]["query"]
        return {
            "error_code": 0,
            "error_msg": "",
            "result": {
                "version": "3.0",
                "timestamp": "2024-01-01 12:00:00.000",
                "service_id": SERVICE_ID,
                "log_id": body["log_id"],
                "session_id": session_id,
                "responses": [
                    {
                        "status": 0,
                        "msg": "ok",
                        "origin": "1212121",
                        "schema": {"intents": [{"intent_name": "BUILT_CHAT", "intent_confidence": 1.0}]},
                        "actions": [
                            {
                                "action_id": "chat_satisfy",
                                "confidence": 1.0,
                                "type": "satisfy",
                                "say": f"UNIT heard: {query}",
                                "options": [],
                            }
                        ],
                        "raw_query": query,
                    }
                ],
            },
        }

    @staticmethod
    def _valid_chat_body(body) -> bool:
        if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
            return False
        request = body["request"]
        return (
            body.get("version") == "3.0"
            and body.get("service_id") == SERVICE_ID
            and isinstance(body.get("session_id"), str)
            and isinstance(body.get("log_id"), str)
            and bool(body["log_id"])
            and isinstance(request.get("terminal_id"), str)
            and bool(request["terminal_id"])
            and isinstance(request.get("query"), str)
            and bool(request["query"])
        )

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                """Quiet: tests read `fake.requests` instead."""

            def _answer(self, status: int, raw: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                parts = urlsplit(self.path)
                params = {key: values[0] for key, values in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = None
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                record = Request(parts.path, params, body, time.monotonic())
                with fake._lock:
                    fake.requests.append(record)
                if parts.path == "/oauth/2.0/token":
                    status, answer = fake._token(params)
                    payload = json.dumps(answer, ensure_ascii=False).encode()
                elif parts.path == "/rpc/2.0/unit/service/v3/chat":
                    status, answer = 200, fake._chat(params, body)
                    payload = json.dumps(answer, ensure_ascii=False).encode()
                    if fake.malformed == "not_json" and answer.get("error_code") == 0:
                        payload = payload[: len(payload) // 2]
                    elif fake.malformed == "no_answer" and answer.get("error_code") == 0:
                        answer["result"]["responses"] = []
                        payload = json.dumps(answer).encode()
                else:
                    status, payload = 404, b'{"error_code": 3, "error_msg": "Unsupported openapi method"}'
                record.finished_at = time.monotonic()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self._answer(status, payload)

        return Handler
