"""API keys: made (shown once, stored as a SHA-256), checked on every server API request, revoked.

A key looks like `pk_<8 characters>_<43 characters>`; its first part (`pk_<8 characters>`) is
its `prefix`, which names it in the console and the audit log. A request carries it as
`Authorization: Bearer <key>`. It is refused with `unauthenticated` (401) when missing, unknown,
revoked or expired, `forbidden` (403) from an address outside its allow-list or without a scope
the route needs, `rate_limited` (429, `Retry-After`) past `API_KEY_RATE_LIMIT`. Every request
made with a known key — refused or not — is audited (action `api_request`). A request the key
check let through writes its own row and the key's last use. A request the key check refused
(revoked, expired, allow-list, scope, rate) does not touch the key's last use, and its rows are
bounded, so a flood with a revoked or throttled key cannot write without end: per key and status,
the first refusal of each minute writes a row (`details.count` 1) and the later ones of that
minute only count in memory; the count is written into that row (one UPDATE) by the first
audited request after the minute ends. A process that stops loses at most its last minute's
count, never the row.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, g, request
from sqlalchemy import select, update

from app import ratelimit
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import ApiKey, AuditLog, utcnow
from app.models.integrations import API_SCOPES
from app.moderation import rights
from app.server_api import bp

PREFIX = "pk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def check_networks(entries: list[str] | None) -> list[str] | None:
    """An allow-list as stored: each entry a valid address or CIDR network (normalised), or
    None for "anywhere". Raises ValueError naming a bad entry."""
    if not entries:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValueError(_l("not an address or network: %(entry)s", entry=repr(entry))) from None
    return networks


def create_key(
    name: str,
    scopes: list[str],
    *,
    allowed_ips: list[str] | None = None,
    expires_at: datetime | None = None,
    created_by_id: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key (added to the session, not committed) and its plaintext, which is never
    stored: show it once."""
    unknown = sorted(set(scopes) - set(API_SCOPES))
    if unknown or not scopes:
        fields = {"scopes": _l("choose from %(scopes)s", scopes=", ".join(API_SCOPES))}
        raise ApiError("invalid_input", "Unknown or missing scopes.", 400, fields)
    try:
        networks = check_networks(allowed_ips)
    except ValueError as error:
        raise ApiError(
            "invalid_input", "Some fields are invalid.", 400, {"allowed_ips": error.args[0]}
        ) from None
    prefix = PREFIX + secrets.token_hex(4)
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=[scope for scope in API_SCOPES if scope in scopes],
        allowed_ips=networks,
        expires_at=expires_at,
        created_by_id=created_by_id,
    )
    db.session.add(row)
    return row, key


def revoke_key(key_id: int) -> None:
    db.session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
    )


def create_key_audited(
    admin_id: int | None,
    name: str,
    scopes: list[str],
    *,
    allowed_ips: list[str] | None = None,
    expires_at: datetime | None = None,
    via: str = "console",
) -> tuple[ApiKey, str]:
    """`create_key` for the console (an account with `manage_api_keys`) or the CLI (`admin_id`
    None): committed with its audit row (`api_key_created`). Returns the row and the plaintext
    key, to be shown once."""
    _require_manager(admin_id)
    row, key = create_key(
        name, scopes, allowed_ips=allowed_ips, expires_at=expires_at, created_by_id=admin_id
    )
    db.session.flush()
    _audit_admin(admin_id, "api_key_created", row, via=via)
    db.session.commit()
    return row, key


def revoke_key_audited(admin_id: int | None, key_id: int, via: str = "console") -> ApiKey:
    """Revoke a key from the console or the CLI, with its audit row (`api_key_revoked`); an
    unknown key is `not_found`, a revoked one `already_revoked`."""
    _require_manager(admin_id)
    row = db.session.get(ApiKey, key_id)
    if row is None:
        raise ApiError("not_found", "No such API key.", 404)
    if row.revoked_at is not None:
        raise ApiError("already_revoked", "This API key was revoked already.", 409)
    revoke_key(key_id)
    _audit_admin(admin_id, "api_key_revoked", row, via=via)
    db.session.commit()
    return row


def _require_manager(admin_id: int | None) -> None:
    """From the console: the account holds `manage_api_keys`, else 403 (nothing done). None is a
    shell on the server itself (`flask create-api-key`)."""
    if admin_id is not None:
        rights.require(admin_id, "manage_api_keys")


def _audit_admin(admin_id: int | None, action: str, row: ApiKey, via: str) -> None:
    details = {"name": row.name, "prefix": row.prefix, "scopes": row.scopes, "via": via}
    db.session.add(
        AuditLog(admin_id=admin_id, action=action, target_type="api_key", target_id=row.id, details=details)
    )


def current_key() -> ApiKey:
    """The key of the server API request being handled (after `requires` let it through)."""
    return g.api_key


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _allowed_from(key: ApiKey, address: str | None) -> bool:
    if not key.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry) for entry in key.allowed_ips)


def authenticate(scopes: tuple[str, ...]) -> ApiKey:
    """The request's key, checked: known, live, from an allowed address, with one of `scopes`,
    within its rate."""
    token = _bearer()
    if token is None:
        raise ApiError("unauthenticated", "Send an API key: Authorization: Bearer <key>.", 401)
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    if key is None:
        raise ApiError("unauthenticated", "Unknown API key.", 401)
    g.api_key_id = key.id
    try:
        _check(key, scopes)
    except ApiError:
        g.api_key_refused = key.prefix  # names its refusal windows (random, unlike a reused id)
        raise
    g.api_key = key
    return key


def _check(key: ApiKey, scopes: tuple[str, ...]) -> None:
    now = utcnow()
    if key.revoked_at is not None:
        raise ApiError("unauthenticated", "This API key was revoked.", 401)
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiError("unauthenticated", "This API key has expired.", 401)
    if not _allowed_from(key, request.remote_addr):
        raise ApiError("forbidden", "This API key may not be used from this address.", 403)
    if not set(scopes) & set(key.scopes):
        needed = " or ".join(scopes)
        raise ApiError(
            "forbidden", _l("This API key lacks the scope this needs (%(scopes)s).", scopes=needed), 403
        )
    rate = current_app.config["API_KEY_RATE_LIMIT"]
    ratelimit.require(rate, "api-key", str(key.id), message="Too many requests with this API key.")


def requires(*scopes: str):
    """A server API route needing a key with any one of `scopes`."""
    for scope in scopes:
        assert scope in API_SCOPES, scope

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            authenticate(scopes)
            return view(*args, **kwargs)

        wrapped.api_scopes = scopes
        return wrapped

    return decorate


REFUSALS = "parley.api_key_refusals"
REFUSAL_WINDOW = 60  # seconds


@dataclass
class _Window:
    """One key's refusals with one status in one minute: its audit row and the count so far."""

    minute: int
    row_id: int | None = None
    written: int = 1
    count: int = 1


def _minute() -> int:
    return int(time.time() // REFUSAL_WINDOW)


def _windows() -> dict[tuple[str, int, int], _Window]:
    return current_app.extensions.setdefault(REFUSALS, {})


def _flush_windows(minute: int) -> None:
    """Write the counts of the minutes that ended into their rows (the caller commits)."""
    windows = _windows()
    for key, window in list(windows.items()):
        if window.minute >= minute:
            continue
        del windows[key]
        if window.row_id is not None and window.count != window.written:
            row = db.session.get(AuditLog, window.row_id)
            if row is not None and row.action == "api_request" and row.details.get("count") == window.written:
                row.details = {**row.details, "count": window.count}


def _details(response) -> dict:
    return {
        "method": request.method,
        "path": request.path[:300],
        "status": response.status_code,
        "ip": request.remote_addr,
        "request_id": g.get("request_id"),
    }


@bp.after_request
def _audit(response):
    """Every request made with a known key is written down, refused ones included (bounded:
    see the module's docstring)."""
    key_id = g.pop("api_key_id", None)
    if key_id is None:
        return response
    refused = g.pop("api_key_refused", None)
    now = utcnow()
    minute = _minute()
    window = None
    if refused:
        windows = _windows()
        window = windows.get((refused, response.status_code, minute))
        if window is not None and window.minute == minute:
            window.count += 1  # counted; written with the next minute's first audit
            return response
        window = windows[(refused, response.status_code, minute)] = _Window(minute)
    try:
        db.session.rollback()  # nothing the route left half-done is committed with the audit row
        _flush_windows(minute)
        details = _details(response)
        if refused:
            details["count"] = 1
        row = AuditLog(
            admin_id=None,
            action="api_request",
            target_type="api_key",
            target_id=key_id,
            details=details,
            created_at=now,
        )
        db.session.add(row)
        if not refused:
            used = {"last_used_at": now, "last_used_ip": request.remote_addr}
            db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**used))
        db.session.flush()
        row_id = row.id
        db.session.commit()
        if window is not None:
            window.row_id = row_id
    except Exception:
        db.session.rollback()
        current_app.logger.exception("could not audit a server API request")
    return response
