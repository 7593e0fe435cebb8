"""The one error type of Parley's API, and the handlers that render it.

Services raise `ApiError`; HTTP routes render it as
`{"error": {"code", "message", "fields"}}` with its status, socket handlers as
the ack `{"ok": false, "error": {...}}`. Codes are stable strings listed in
docs/PROTOCOL.md. Anything else that escapes is rolled back, logged with the
request id and answered with a generic 500.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db

log = logging.getLogger(__name__)

# Status codes werkzeug raises on its own, with the codes Parley names them by.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        fields: dict[str, str] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields or {}
        # Seconds a refused client should wait before trying again (the `Retry-After` header).
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


def not_found(what: str = "resource") -> ApiError:
    return ApiError("not_found", f"No such {what}.", 404)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def _render(error: ApiError):
    if wants_json():
        response = make_response(jsonify(error=error.to_dict()), error.status)
    else:
        page = render_template("error.html", error=error, request_id=g.get("request_id"))
        response = make_response(page, error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def assign_request_id():
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        db.session.rollback()
        return _render(error)

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError):
        db.session.rollback()
        return _render(ApiError("csrf_failed", "The form expired or its CSRF token is missing.", 400))

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException):
        db.session.rollback()
        status = error.code or 500
        code = HTTP_CODES.get(status, "http_error")
        message = error.description or "Request failed."
        if status == 429:
            message = "Too many requests; slow down and try again shortly."
        return _render(ApiError(code, message, status))

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        db.session.rollback()
        log.exception("unhandled error (request id %s)", g.get("request_id"))
        return _render(ApiError("internal_error", "Something went wrong on our side.", 500))
