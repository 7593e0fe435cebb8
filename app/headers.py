"""Security headers on every response: a strict Content-Security-Policy on HTML pages, and
framing, sniffing and referrer rules everywhere.

The chat client is ES modules served from /static, so pages need no inline script at all. The
admin console (Flask-Admin) writes a few inline scripts; they carry a nonce made per request,
which only /admin pages' policy accepts. A response that already has its own policy (media
files are served with a sandboxing one) keeps it.
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, g, request

# Inline event handlers and javascript: links cannot carry a nonce. Flask-Admin's menus have
# exactly these two, admitted by their hashes (CSP 3 'unsafe-hashes'), and nothing else.
ADMIN_HANDLER_HASHES = (
    "'sha256-2rvfFrggTCtyF5WOiTri1gDS8Boibj4Njn0e+VCBmDI='",  # onclick="return false;"
    "'sha256-rRMdkshZyJlCmDX27XnL7g3zXaxv7ei6Sg+yt4R3svU='",  # href="javascript:void(0)"
)

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def csp_nonce() -> str:
    """This request's script nonce (Flask-Admin asks for it once per tag; it is one per page)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(host: str | None, nonce: str | None = None) -> str:
    """The policy of an HTML page served at `host`; `nonce` admits the page's inline scripts."""
    connect = ["'self'"]
    if host and _HOST.match(host):
        # 'self' covers ws(s) of the same host in current browsers; older ones need them named.
        connect += [f"ws://{host}", f"wss://{host}"]
    script = ["'self'"]
    if nonce:
        script += [f"'nonce-{nonce}'", "'unsafe-hashes'", *ADMIN_HANDLER_HASHES]
    directives = {
        "default-src": ["'self'"],
        "script-src": script,
        "style-src": ["'self'"],
        # Avatars may be any https image; photos and previews of picked files are blob: or data:.
        "img-src": ["'self'", "data:", "blob:", "https:"],
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'"],
        "connect-src": connect,
        # The service worker (/sw.js) and the web app manifest are Parley's own files.
        "worker-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html" and "Content-Security-Policy" not in headers:
            nonce = g.get("csp_nonce") if request.path.startswith("/admin") else None
            headers["Content-Security-Policy"] = content_security_policy(request.host, nonce)
        return response
