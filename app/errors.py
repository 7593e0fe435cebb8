"""The one error type of Parley's API, and the handlers that render it.

Services raise `ApiError`; HTTP routes render it as
`{"error": {"code", "message", "fields"}}` with its status, socket handlers as
the ack `{"ok": false, "error": {...}}`. Codes are stable strings listed in
docs/PROTOCOL.md. Anything else that escapes is rolled back, logged with the
request id and answered with a generic 500.

Messages and field texts are English msgids, translated when the error is shown (`message`,
`fields`, `to_dict()`), in the language of the request or socket event that shows it
(app/locales.py): a literal is looked up in the catalogue, a text carrying values is
`_l("... %(name)s ...", name=value)`. Codes never change with the language.
"""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_babel import gettext
from flask_babel.speaklater import LazyString
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.locales import N_, _l, word
from app.logging_setup import request_id_from

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


# Werkzeug's own descriptions of the statuses it raises, marked for the catalogue: an
# HTTPException's description is shown as the message (tests/test_translations.py keeps these equal).
HTTP_MESSAGES = {
    400: N_("The browser (or proxy) sent a request that this server could not understand."),
    401: N_(
        "The server could not verify that you are authorized to access the URL requested. You"
        " either supplied the wrong credentials (e.g. a bad password), or your browser doesn't"
        " understand how to supply the credentials required."
    ),
    403: N_(
        "You don't have the permission to access the requested resource. It is either"
        " read-protected or not readable by the server."
    ),
    404: N_(
        "The requested URL was not found on the server. If you entered the URL manually please"
        " check your spelling and try again."
    ),
    405: N_("The method is not allowed for the requested URL."),
    413: N_("The data value transmitted exceeds the capacity limit."),
    415: N_("The server does not support the media type transmitted in the request."),
}


def translate(text):
    """A message or field text in the current language: a msgid, or a lazy text with values."""
    if isinstance(text, LazyString):
        try:
            return str(text)
        except (KeyError, TypeError, ValueError):  # values that do not fit (a worker's answer)
            return str(text._args[0])
    if isinstance(text, str) and text:
        return gettext(text)
    return text


def text_to_wire(text):
    """A text as JSON (a worker's answer): lazy texts keep their msgid and values."""
    if isinstance(text, LazyString):
        msgid, params = text._args[0], text._kwargs
        return {"msgid": msgid, "params": {key: text_to_wire(value) for key, value in params.items()}}
    return text


def text_from_wire(value):
    if isinstance(value, dict) and isinstance(value.get("msgid"), str):
        params = value.get("params") if isinstance(value.get("params"), dict) else {}
        return _l(value["msgid"], **{str(key): text_from_wire(item) for key, item in params.items()})
    return value if isinstance(value, int | float) else str(value)[:500]


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message,
        status: int = 400,
        fields: dict | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.code = code
        # English msgids (or lazy texts): `message` and `fields` read them in the current language.
        self.msgid = message
        self.raw_fields = fields or {}
        self.status = status
        # Seconds a refused client should wait before trying again (the `Retry-After` header).
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return translate(self.msgid)

    @property
    def fields(self) -> dict:
        return {name: translate(text) for name, text in self.raw_fields.items()}

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}

    def to_wire(self) -> dict:
        """The error as JSON that keeps its msgids (a media worker's answer, re-raised here)."""
        return {
            "code": self.code,
            "message": text_to_wire(self.msgid),
            "fields": {name: text_to_wire(text) for name, text in self.raw_fields.items()},
            "status": self.status,
        }


def not_found(what: str = "resource") -> ApiError:
    return ApiError("not_found", _l("No such %(what)s.", what=word(what)), 404)


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
        # The client's id when well-formed (it reaches the logs), else a new one.
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))

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
        message = error.description or N_("Request failed.")
        if status == 429:
            message = N_("Too many requests; slow down and try again shortly.")
        return _render(ApiError(code, message, status))

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        db.session.rollback()
        log.exception("unhandled error (request id %s)", g.get("request_id"))
        return _render(ApiError("internal_error", "Something went wrong on our side.", 500))
