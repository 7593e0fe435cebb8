"""Cross-site request forgery rules for pages and the JSON API.

HTML form posts carry a CSRF token (Flask-WTF). API writes are accepted when
they are JSON: a cross-site page cannot send `Content-Type: application/json`
(nor DELETE) without a CORS preflight, which Parley never grants; any other API
write (multipart uploads) must carry the token in an `X-CSRFToken` header.
The session cookie is SameSite=Lax on top of both.
"""

from __future__ import annotations

from flask import Flask, request

from app.extensions import csrf

SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}


def register_csrf(app: Flask) -> None:
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    @app.before_request
    def check_csrf():
        if request.method in SAFE_METHODS or not app.config.get("WTF_CSRF_ENABLED", True):
            return
        if request.path.startswith("/api/") and (request.method == "DELETE" or request.is_json):
            return
        if request.path.startswith("/api/server/"):
            return  # authenticated by an API key in a header only, never by a cookie
        csrf.protect()
