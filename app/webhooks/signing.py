"""How every webhook request is signed and sent.

`X-Parley-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` with the unix time
in `X-Parley-Timestamp`: a receiver recomputes it over the bytes it received and refuses a
timestamp older than a few minutes, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import requests

from app.models import utcnow
from app.presenters import iso

USER_AGENT = "Parley-Webhooks/1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def envelope(event: str, data: dict, event_id: str | None = None) -> dict:
    """The JSON every webhook request carries."""
    return {"id": event_id or str(uuid.uuid4()), "event": event, "created_at": iso(utcnow()), "data": data}


def conversation_ref(conversation_id: int, kind: str, group_id: int | None) -> dict:
    ref = {"id": conversation_id, "kind": kind}
    if group_id is not None:
        ref["group_id"] = group_id
    return ref


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def headers(event: str, event_id: str, secret: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Parley-Event": event,
        "X-Parley-Delivery": event_id,
        "X-Parley-Timestamp": str(timestamp),
        "X-Parley-Signature": sign(secret, timestamp, body),
    }


def shown_url(url: str) -> str:
    """A hook's URL as logs, the audit log and the console show it: without user:password@, the
    query or the fragment, where a receiver's token would be (the stored URL keeps them)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + (f":{port}" if port else ""), parts.path, "", ""))


# A query string quoted in an error message (urllib3's "... with url: /path?token=..."). Each
# ends at whitespace or a quote: a message's punctuation around it stays.
_QUERY = re.compile(r"\?[^\s'\"()<>]+")


def scrub(text: str, url: str) -> str:
    """An error's message about a request to `url`, without the secrets of the URL it may quote
    (the whole URL, its user:password@, its query): it is logged and shown in the console."""
    text = text.replace(url, shown_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return _QUERY.sub("", text)
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        text = text.replace(userinfo + "@", "")
    if parts.fragment:
        text = text.replace("#" + parts.fragment, "")
    return _QUERY.sub("", text)


class NoRedirects(requests.Session):
    """A receiver answers; it never sends the request elsewhere (a redirect to an inner
    address would reach what the configured URL does not)."""

    def request(self, method, url, *args, **kwargs):
        kwargs["allow_redirects"] = False
        return super().request(method, url, *args, **kwargs)


_session: NoRedirects | None = None


def session() -> NoRedirects:
    """One pooled HTTP session per process (kept-alive connections to each receiver)."""
    global _session
    if _session is None:
        _session = NoRedirects()
        adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=64)
        _session.mount("http://", adapter)
        _session.mount("https://", adapter)
    return _session
