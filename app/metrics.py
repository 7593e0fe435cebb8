"""Prometheus metrics: every metric object of Parley, the hooks the rest of the code calls, and
`/metrics` (docs/ARCHITECTURE.md, "Metrics").

Off unless `METRICS_ENABLED`: then every hook (`message_sent`, `socket_connected`, …) returns at
once. On, the values live in prometheus-client's multiprocess files (`METRICS_DIR`, by default
`metrics/<host name>` in the instance folder), so a scrape of any process that shares the folder
reports the sum over every process of the host — gunicorn's workers, or several gunicorn
processes started with the same settings. Each process takes out its live gauges (the open
sockets) when it exits, and the gauges of processes that died without doing so are taken out by
the next process to start or to be scraped. Counters of dead processes stay while any process of
the folder lives, so sums never go backwards; a start with no live process empties the folder.

Labels carry only bounded, non-personal values: message and upload kinds, sign-in methods,
Flask's URL rules (never the raw path), status codes.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hmac
import logging
import os
import re
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from flask import Flask, Response, current_app, g, has_request_context, jsonify, request
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Whether this process records; the metric objects (made once per process, on first enabling).
_on = False
_dir: str | None = None
_m = None

ACK_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ROBOT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

_PID_FILE = re.compile(r"_(\d+)\.db$")


class _Metrics:
    """The metric objects; made after the multiprocess folder is chosen."""

    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram

        self.messages_sent = Counter(
            "parley_messages_sent",
            "Messages stored, by message type and conversation kind.",
            ["type", "conversation_kind"],
            registry=None,
        )
        self.deliveries = Counter(
            "parley_message_deliveries",
            "message:new emits, one per recipient's room (every device of the user).",
            registry=None,
        )
        self.send_ack = Histogram(
            "parley_send_ack_seconds",
            "Time from a socket's message:send to its ack.",
            buckets=ACK_BUCKETS,
            registry=None,
        )
        self.sockets = Gauge(
            "parley_sockets_connected",
            "Signed-in sockets connected (summed over the live processes).",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.sign_ins = Counter(
            "parley_sign_ins", "Sign-in attempts, by method and result.", ["method", "result"], registry=None
        )
        self.uploads = Counter("parley_uploads", "Uploads stored, by kind.", ["kind"], registry=None)
        self.upload_bytes = Counter(
            "parley_upload_bytes", "Bytes of the uploads stored, by kind.", ["kind"], registry=None
        )
        self.db_time = Histogram(
            "parley_http_request_db_seconds",
            "Time spent in database statements per HTTP request.",
            buckets=DB_BUCKETS,
            registry=None,
        )
        self.http_requests = Counter(
            "parley_http_requests",
            "HTTP requests, by URL rule, method and status.",
            ["endpoint", "method", "status"],
            registry=None,
        )
        self.http_duration = Histogram(
            "parley_http_request_duration_seconds",
            "HTTP request duration, by URL rule.",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
            registry=None,
        )
        self.webhook_failures = Counter(
            "parley_webhook_delivery_failures", "Webhook delivery attempts that failed.", registry=None
        )
        self.push_failures = Counter(
            "parley_push_failures", "Web Push sends that failed (a 429 slow-down is none).", registry=None
        )
        self.robot_reply = Histogram(
            "parley_robot_reply_seconds",
            "Time from starting the robot's answer to sending it.",
            buckets=ROBOT_BUCKETS,
            registry=None,
        )


def enabled() -> bool:
    return _on


# --- the hooks ---------------------------------------------------------------------------------


def message_sent(message_type: str, conversation_kind: str) -> None:
    if _on:
        _m.messages_sent.labels(message_type, conversation_kind).inc()


def messages_delivered(rooms: int) -> None:
    if _on and rooms:
        _m.deliveries.inc(rooms)


@contextmanager
def send_ack_timer():
    """Times a socket send from its arrival to its ack (refusals included)."""
    if not _on:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        _m.send_ack.observe(time.perf_counter() - started)


def socket_connected() -> None:
    if _on:
        _m.sockets.inc()


def socket_disconnected() -> None:
    if _on:
        _m.sockets.dec()


def sign_in(method: str, success: bool) -> None:
    if _on:
        _m.sign_ins.labels(method, "success" if success else "failure").inc()


def counts_sign_in(method):
    """Decorate a function that signs someone in (returns) or refuses (raises): `method` names
    the sign-in method, or is a function of the call's arguments that does."""

    def decorate(function):
        @functools.wraps(function)
        def wrapped(*args, **kwargs):
            try:
                result = function(*args, **kwargs)
            except Exception:
                if _on:
                    sign_in(method(*args, **kwargs) if callable(method) else method, False)
                raise
            if _on:
                sign_in(method(*args, **kwargs) if callable(method) else method, True)
            return result

        return wrapped

    return decorate


def upload_stored(kind: str, size: int) -> None:
    if _on:
        _m.uploads.labels(kind).inc()
        _m.upload_bytes.labels(kind).inc(size)


def webhook_failed() -> None:
    if _on:
        _m.webhook_failures.inc()


def push_failed() -> None:
    if _on:
        _m.push_failures.inc()


def robot_replied(seconds: float) -> None:
    if _on:
        _m.robot_reply.observe(seconds)


# --- HTTP requests and their database time ----------------------------------------------------


def _before_request() -> None:
    if _on:
        g.metrics_started = time.perf_counter()
        g.metrics_db_seconds = 0.0


# The methods a label may name; any other token a client sends is counted as "other", so a
# client cannot make a new series per made-up method.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


def _after_request(response):
    started = g.pop("metrics_started", None)
    if _on and started is not None:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        _m.http_requests.labels(rule, method_label(request.method), str(response.status_code)).inc()
        _m.http_duration.labels(rule).observe(time.perf_counter() - started)
        _m.db_time.observe(g.pop("metrics_db_seconds", 0.0))
    return response


_STATEMENT_STARTS = "parley.metrics.starts"


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    if _on:
        conn.info.setdefault(_STATEMENT_STARTS, []).append(time.perf_counter())


def _after_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    starts = conn.info.get(_STATEMENT_STARTS)
    if not starts:
        return
    elapsed = time.perf_counter() - starts.pop()
    if has_request_context() and "metrics_db_seconds" in g:
        g.metrics_db_seconds += elapsed


def _handle_error(context) -> None:
    """A statement that failed gets no after_cursor_execute: drop its start."""
    connection = context.connection
    starts = connection.info.get(_STATEMENT_STARTS) if connection is not None else None
    if starts:
        starts.pop()


# --- the multiprocess folder ------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether process `pid` of this host is running (a zombie is not: it died unreaped)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to ask: alive, as kill said
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _pids(directory: str) -> set[int]:
    found = set()
    for name in os.listdir(directory):
        match = _PID_FILE.search(name)
        if match:
            found.add(int(match.group(1)))
    return found


def sweep(directory: str) -> None:
    """Take out the live gauges of processes of the folder that died without doing so."""
    from prometheus_client import multiprocess

    for pid in _pids(directory):
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, directory)


def _prepare(directory: str) -> None:
    """Under the folder's lock: empty it when no process of it lives (a fresh start), else take
    out the dead ones' live gauges; then make this process's files, so a process starting next
    sees this one alive."""
    from prometheus_client import multiprocess, values

    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            others = _pids(directory) - {os.getpid()}
            if not any(_alive(pid) for pid in others):
                for name in os.listdir(directory):
                    if name.endswith(".db"):
                        os.remove(os.path.join(directory, name))
            else:
                sweep(directory)
                # Live gauges a dead process with this one's pid left behind.
                multiprocess.mark_process_dead(os.getpid(), directory)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
            values.ValueClass = values.MultiProcessValue()
            global _m
            _m = _Metrics()
            _m.sockets.inc(0)  # this process's live-gauge file now exists
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _exit() -> None:
    if _dir is not None:
        from prometheus_client import multiprocess

        with suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), _dir)


def enable(directory: str) -> None:
    """Start recording in this process, into `directory` (the first folder a process enables
    with is the one it keeps)."""
    global _on, _dir
    if _m is None:
        _prepare(directory)
        _dir = directory
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
        event.listen(Engine, "after_cursor_execute", _after_cursor_execute)
        event.listen(Engine, "handle_error", _handle_error)
        atexit.register(_exit)
    _on = True


def disable() -> None:
    """Stop recording (the metric objects stay for a later `enable`)."""
    global _on
    _on = False


# --- the scrape --------------------------------------------------------------------------------


class _DepthCollector:
    """The job queue's and the webhook outbox's depth, one COUNT each at scrape time."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from app.extensions import db
        from app.models.integrations import WebhookDelivery
        from app.models.jobs import Job

        counts = {}
        try:
            counts["jobs"] = db.session.scalar(select(func.count()).select_from(Job))
            counts["webhooks"] = db.session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
            )
            db.session.rollback()
        except Exception:
            db.session.rollback()
            log.warning("metrics: could not count the queues", exc_info=True)
        if "jobs" in counts:
            yield GaugeMetricFamily("parley_job_queue_depth", "Jobs queued or running.", value=counts["jobs"])
        if "webhooks" in counts:
            yield GaugeMetricFamily(
                "parley_webhook_outbox_depth", "Webhook deliveries waiting.", value=counts["webhooks"]
            )


def exposition() -> bytes:
    """Every process's metrics of this folder, and the queue depths (in an app context)."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    sweep(_dir)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_dir)
    registry.register(_DepthCollector())
    return generate_latest(registry)


def _token_ok(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _metrics_view():
    from app.errors import ApiError

    if not _token_ok(request.headers.get("Authorization"), current_app.config["METRICS_TOKEN"]):
        error = ApiError("unauthenticated", "A valid metrics token is required.", 401)
        response = jsonify(error=error.to_dict())
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return Response(exposition(), mimetype=None, content_type=CONTENT_TYPE)


def _on_message_stored(context, message) -> None:
    """Counted once the message's transaction has committed (a rolled-back one never is)."""
    if _on:
        from app import realtime

        message_type, kind = message.type, context.conversation.kind
        realtime.on_commit(lambda: message_sent(message_type, kind))


def _on_messages_forwarded(context, messages) -> None:
    if _on:
        from app import realtime

        kinds = [(message.type, context.conversation.kind) for message in messages]
        realtime.on_commit(lambda: [message_sent(*kind) for kind in kinds])


def init_app(app: Flask) -> None:
    """With METRICS_ENABLED: record in this process, time every request, and serve `/metrics`
    on the application's port when METRICS_TOKEN is set (METRICS_PORT: `start_listener`)."""
    if not app.config["METRICS_ENABLED"]:
        return
    enable(app.config["METRICS_DIR"])
    from app.chat.actions.forward import message_forwarded
    from app.chat.send import message_stored

    message_stored.connect(_on_message_stored)
    message_forwarded.connect(_on_messages_forwarded)
    # First of the hooks (Flask-Limiter's own is registered before this): a request any other
    # hook refuses is still timed and counted.
    app.before_request_funcs.setdefault(None, []).insert(0, _before_request)
    app.after_request(_after_request)
    if app.config["METRICS_TOKEN"]:
        app.add_url_rule("/metrics", "metrics", _metrics_view, methods=["GET"])
        from app.extensions import csrf, limiter

        csrf.exempt(_metrics_view)
        limiter.exempt(_metrics_view)


# --- the separate listener ---------------------------------------------------------------------


def _listener_app(app: Flask):
    token = app.config["METRICS_TOKEN"]

    def serve(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if token and not _token_ok(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
            return [b"a valid metrics token is required\n"]
        with app.app_context():
            body = exposition()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return serve


def start_listener(app: Flask, retry_seconds: float = 5.0):
    """Serve `/metrics` alone on METRICS_BIND:METRICS_PORT. The processes sharing the folder
    share the port too: whichever binds it serves the folder's sums, and the others try again
    every `retry_seconds`, so one takes over when it exits."""
    import gevent
    from gevent.pywsgi import WSGIServer

    address = (app.config["METRICS_BIND"], app.config["METRICS_PORT"])

    def keep_serving():
        while True:
            server = WSGIServer(address, _listener_app(app), log=None, error_log=log)
            try:
                server.serve_forever()
            except OSError as error:
                log.debug("metrics port %s:%s is taken (%s); trying again", *address, error)
            gevent.sleep(retry_seconds)

    return gevent.spawn(keep_serving)
