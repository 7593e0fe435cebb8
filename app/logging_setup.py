"""How Parley logs: `LOG_FORMAT=text` (the default: one readable line per record) or `json` (one
JSON object per line: time, level, logger, message, request_id, exception), for log collectors.

The request id is the HTTP request's (`X-Request-ID` when the client sent a well-formed one, else
made here: app/errors.py), or one made per socket event while it is handled.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from flask import g, has_app_context, has_request_context

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The client's `X-Request-ID` if well-formed (at most 64 of A-Z a-z 0-9 . _ -), else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the HTTP request or socket event being handled, if any."""
    if not has_app_context():
        return None
    request_id = g.get("request_id")
    if request_id is None and not has_request_context() and "sid" in g:
        # A socket event (app/chat/events.py): one id for everything it logs.
        request_id = g.request_id = uuid.uuid4().hex
    return request_id


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            try:
                record.request_id = current_request_id()
            except Exception:  # a record logged while a context is torn down
                record.request_id = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# The handler `json` installs on the root logger (one per process, whatever the apps made).
_handler: logging.Handler | None = None


def configure(level: str, log_format: str, stream=None) -> logging.Handler | None:
    """Set up the root logger. `text` keeps the standard library's own set-up; `json` puts one
    handler writing JSON lines to `stream` (stderr) on the root logger and gunicorn's loggers."""
    global _handler
    if log_format == "text":
        logging.basicConfig(level=level, format=TEXT_FORMAT)
        return None
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(JsonFormatter())
    _handler.addFilter(RequestIdFilter())
    root.addHandler(_handler)
    root.setLevel(level)
    # gunicorn's workers log through handlers of their own: the same lines, as JSON.
    for name in ("gunicorn.error", "gunicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(RequestIdFilter())
    return _handler
