"""A stand-in for a browser vendor's push service (RFC 8030) on 127.0.0.1, for the Web Push tests.

`subscription()` plays the browser: it makes a P-256 key pair and a 16-byte auth secret and
returns what `PushSubscription.toJSON()` gives, with an endpoint at this service. A push
(`POST /push/<token>`) is checked as a push service checks it:

- `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292): an ES256 JWT signed by the key `k`, whose
  `aud` is this service's origin, `exp` in the future and at most 24 hours away, and `sub` a
  mailto: or https: contact;
- `TTL` present, `Content-Encoding: aes128gcm`;

and its body is decrypted (RFC 8291) with the subscription's private key and auth secret, as the
browser would. Every push is recorded (`pushes`) with its headers, the decrypted JSON and the
answer given. Knobs: `status` (the answer to every push: 201, 404, 410, 429, 500…), `statuses`
(per subscription token) and `hang` (pushes wait, at most `hang_seconds` or until `release()`).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    token: str
    headers: dict[str, str]  # names lower-cased
    payload: dict | None  # the decrypted JSON
    status: int  # what the fake answered
    error: str | None = None  # why the push was refused (401/400), if it was
    received_at: float = 0.0


@dataclass
class FakePushService:
    status: int = 201
    statuses: dict[str, int] = field(default_factory=dict)
    hang: bool = False
    hang_seconds: float = 30.0
    pushes: list[Push] = field(default_factory=list)
    arrived: int = 0  # pushes that reached the service, answered or still held

    def __post_init__(self):
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.origin = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> FakePushService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.status, self.statuses, self.hang, self.pushes, self.arrived = 201, {}, False, [], 0
            self._released = threading.Event()

    def release(self) -> None:
        """Let hanging pushes answer now."""
        self._released.set()

    # --- the browser's side ------------------------------------------------------------------

    def subscription(self) -> dict:
        """A new subscription at this service, as the browser hands it to the page."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        token = secrets.token_urlsafe(12)
        self._keys[token] = (key, auth)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{token}",
            "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
        }

    @staticmethod
    def token_of(subscription: dict) -> str:
        return subscription["endpoint"].rsplit("/", 1)[1]

    def received(self, subscription: dict | None = None) -> list[Push]:
        """Pushes accepted (2xx answers), for one subscription or all."""
        with self._lock:
            pushes = list(self.pushes)
        token = None if subscription is None else self.token_of(subscription)
        return [push for push in pushes if push.status < 300 and token in (None, push.token)]

    def answered(self) -> list[Push]:
        with self._lock:
            return list(self.pushes)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Push]:
        """Wait (from a thread that is not the pushing one) until `count` pushes were answered."""
        deadline = time.monotonic() + timeout
        while len(self.answered()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.answered())} pushes within {timeout} s, not {count}")
            time.sleep(0.02)
        return self.answered()

    # --- checking a push ---------------------------------------------------------------------

    def _check_vapid(self, authorization: str) -> str | None:
        """Why the Authorization header is refused, or None (RFC 8292)."""
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return f"scheme {scheme!r}"
        parts = dict(item.strip().split("=", 1) for item in params.split(",") if "=" in item)
        if "t" not in parts or "k" not in parts:
            return "t or k missing"
        try:
            point = unb64url(parts["k"])
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
            header_b64, claims_b64, signature_b64 = parts["t"].split(".")
            header = json.loads(unb64url(header_b64))
            claims = json.loads(unb64url(claims_b64))
            signature = unb64url(signature_b64)
        except ValueError as error:
            return f"malformed: {error}"
        if header.get("alg") != "ES256" or len(signature) != 64:
            return f"not ES256: {header}"
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            key.verify(
                encode_dss_signature(r, s), f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return "bad signature"
        now = time.time()
        if claims.get("aud") != self.origin:
            return f"aud {claims.get('aud')!r} is not {self.origin!r}"
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 24 * 3600:
            return f"exp {claims.get('exp')!r}"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            return f"sub {claims.get('sub')!r}"
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        token = handler.path.removeprefix("/push/")
        headers = {name.lower(): value for name, value in handler.headers.items()}
        body = handler.rfile.read(int(headers.get("content-length", 0)))
        with self._lock:
            self.arrived += 1
        if self.hang:
            self._released.wait(self.hang_seconds)
        payload, error, status = None, None, self.statuses.get(token, self.status)
        keys = self._keys.get(token)
        if handler.command != "POST" or keys is None:
            error, status = "no such subscription", 404
        elif (problem := self._check_vapid(headers.get("authorization", ""))) is not None:
            error, status = f"vapid: {problem}", 401
        elif "ttl" not in headers or headers.get("content-encoding") != "aes128gcm":
            error, status = "TTL or Content-Encoding missing", 400
        else:
            try:
                plain = http_ece.decrypt(body, private_key=keys[0], auth_secret=keys[1], version="aes128gcm")
                payload = json.loads(plain)
            except Exception as failure:  # noqa: BLE001 (any failure to decrypt is the test's finding)
                error, status = f"decrypt: {failure!r}", 400
        with self._lock:
            self.pushes.append(Push(token, headers, payload, status, error, time.monotonic()))
        handler.send_response(status)
        if status < 300:
            handler.send_header("Location", f"{self.origin}/message/{secrets.token_hex(8)}")
        if status == 429:
            handler.send_header("Retry-After", "60")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                fake._handle(self)

            def log_message(self, format, *args):
                pass

        return Handler
