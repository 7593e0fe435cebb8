"""Push subscriptions: one per device session, checked before it is stored, gone with its device.

An endpoint is a URL Parley will POST to, so it is checked as one would check any URL a user
hands a server (SSRF): https only, no user name or password, and a host that is a public address
or a name resolving only to public addresses. `PUSH_ALLOWED_HOSTS` lets listed host[:port]s
through even over http or on a private address (a push service inside a closed network). The
sender checks the host again before each push (app/push/sender.py), as names can change.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import socket
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from py_vapid import Vapid
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app import presenters
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import DeviceSession, PushSubscription, utcnow

MAX_ENDPOINT = 1000
P256DH_BYTES = 65  # an uncompressed P-256 point (RFC 8291)
AUTH_BYTES = 16


def b64url_decode(text: str) -> bytes:
    """base64url with or without its padding; ValueError if it is not."""
    if not text or any(char not in _B64URL for char in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


# --- the server's key ------------------------------------------------------------------------


@functools.cache
def _vapid(pem: str) -> Vapid:
    return Vapid.from_pem(pem.encode())


def vapid() -> Vapid:
    """The VAPID signer for `VAPID_PRIVATE_KEY` (config.py generates one once if none is set)."""
    return _vapid(current_app.config["VAPID_PRIVATE_KEY"])


def public_key() -> str:
    """The key browsers subscribe with (`applicationServerKey`): the uncompressed P-256 point in
    base64url."""
    point = vapid().public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(point)


# --- checking a subscription -----------------------------------------------------------------


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError("invalid_subscription", "This push subscription cannot be used.", 400, {field: problem})


def _host_and_port(parts) -> tuple[str, int]:
    try:
        port = parts.port
    except ValueError:
        raise _invalid("endpoint", "an invalid port") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise _invalid("endpoint", "must name a host")
    return host, port or {"https": 443, "http": 80}[parts.scheme]


def allowed_host(host: str, port: int) -> bool:
    """Whether `PUSH_ALLOWED_HOSTS` lists the host (any port) or host:port."""
    allowed = current_app.config["PUSH_ALLOWED_HOSTS"]
    shown = f"[{host}]" if ":" in host else host
    return shown in allowed or f"{shown}:{port}" in allowed


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_endpoint(endpoint: str) -> None:
    """Refuse (`invalid_subscription`) an endpoint Parley must not POST to (see the module's
    docstring). A name is resolved here: every address it has must be public."""
    if len(endpoint) > MAX_ENDPOINT:
        raise _invalid("endpoint", _l("at most %(max)s characters", max=MAX_ENDPOINT))
    parts = urlsplit(endpoint)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        raise _invalid("endpoint", "must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise _invalid("endpoint", "must not carry a user name or password")
    if any(char.isspace() or ord(char) < 0x21 for char in endpoint):
        raise _invalid("endpoint", "must not contain spaces or control characters")
    host, port = _host_and_port(parts)
    if allowed_host(host, port):
        return
    if parts.scheme != "https":
        raise _invalid("endpoint", "must be an https URL")
    try:
        addresses = [host] if _is_ip(host) else _resolve(host, port)
    except OSError:
        raise _invalid("endpoint", "its host does not resolve") from None
    if not addresses or not all(_public(address) for address in addresses):
        raise _invalid("endpoint", "must be a public host")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def check_keys(p256dh: str, auth: str) -> None:
    """The browser's keys: a P-256 point (uncompressed, 65 bytes) and a 16-byte secret."""
    try:
        point = b64url_decode(p256dh)
        if len(point) != P256DH_BYTES or point[0] != 4:
            raise ValueError("not an uncompressed point")
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise _invalid("keys.p256dh", "must be an uncompressed P-256 point in base64url") from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        secret = b""
    if len(secret) != AUTH_BYTES:
        raise _invalid("keys.auth", _l("must be %(count)s bytes in base64url", count=AUTH_BYTES))


# --- the writes ------------------------------------------------------------------------------


def subscribe(user_id: int, device_id: int, endpoint: str, p256dh: str, auth: str) -> dict:
    """Store this device session's push subscription, replacing the one it had. A browser's
    endpoint belongs to the session that registered it last: another session's subscription to
    the same endpoint (someone else signed in on that browser earlier) is removed."""
    check_endpoint(endpoint)
    check_keys(p256dh, auth)
    device = db.session.get(DeviceSession, device_id)
    if device is None or device.user_id != user_id or device.revoked_at is not None:
        raise ApiError("unauthenticated", "Sign in first.", 401)
    for attempt in range(2):
        db.session.execute(
            delete(PushSubscription).where(
                PushSubscription.endpoint == endpoint, PushSubscription.device_session_id != device_id
            )
        )
        row = db.session.scalar(
            select(PushSubscription).where(PushSubscription.device_session_id == device_id)
        )
        if row is None:
            row = PushSubscription(device_session_id=device_id, user_id=user_id)
            db.session.add(row)
        row.endpoint, row.p256dh, row.auth = endpoint, p256dh, auth
        row.failures, row.last_success_at = 0, None
        try:
            db.session.commit()
        except IntegrityError:
            # The same device subscribing twice at once: the other request's row is replaced.
            db.session.rollback()
            if attempt:
                raise
            continue
        break
    return presenters.push_subscription(row, device, device_id)


def unsubscribe(device_id: int) -> None:
    """Forget this device session's push subscription (nothing happens if it has none)."""
    forget_devices([device_id])
    db.session.commit()


def forget_devices(device_ids: list[int]) -> None:
    """Delete the subscriptions of device sessions being signed out, in the caller's transaction."""
    if device_ids:
        db.session.execute(delete(PushSubscription).where(PushSubscription.device_session_id.in_(device_ids)))


def list_subscriptions(user_id: int, current_device_id: int | None) -> list[dict]:
    """The user's signed-in devices that receive pushes, for the Me page."""
    rows = db.session.execute(
        select(PushSubscription, DeviceSession)
        .join(DeviceSession, DeviceSession.id == PushSubscription.device_session_id)
        .where(
            PushSubscription.user_id == user_id,
            DeviceSession.revoked_at.is_(None),
            DeviceSession.expires_at > utcnow(),
        )
        .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())
    ).all()
    return [presenters.push_subscription(row, device, current_device_id) for row, device in rows]
