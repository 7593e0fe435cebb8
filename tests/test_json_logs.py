"""LOG_FORMAT=json (app/logging_setup.py) and the request id every response carries."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from app import logging_setup
from app.extensions import db
from app.models import User
from config import Config, ConfigError
from tests.conftest import server_env


@pytest.fixture
def json_app(make_app):
    """An application set up with LOG_FORMAT=json, its JSON lines written to a buffer."""
    application = make_app(LOG_FORMAT="json")
    handler = logging_setup._handler
    buffer = io.StringIO()
    handler.setStream(buffer)
    application.log_buffer = buffer
    yield application
    logging.getLogger().removeHandler(handler)
    logging_setup._handler = None


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_bad_log_format_stops_start_up(database_url, instance_path):
    with pytest.raises(ConfigError) as raised:
        Config.from_env(server_env(database_url, instance_path, LOG_FORMAT="xml"))
    assert raised.value.name == "LOG_FORMAT"
    assert "text or json" in str(raised.value)
    assert Config.from_env(server_env(database_url, instance_path)).LOG_FORMAT == "text"
    assert Config.from_env(server_env(database_url, instance_path, LOG_FORMAT="JSON")).LOG_FORMAT == "json"


def test_a_request_id_is_taken_when_well_formed_and_echoed(client):
    for given in ("req-42", "a.B_c-9", "x" * 64):
        assert client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "has space", "x" * 65, "semi;colon", 'quote"d', "ünïcode", "a/b"])
def test_a_malformed_request_id_is_replaced(client, given):
    echoed = client.get("/healthz", headers={"X-Request-ID": given}).headers["X-Request-ID"]
    assert echoed != given
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_every_request_gets_its_own_id(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second


def test_json_lines_carry_the_request_id_and_the_exception(json_app):
    @json_app.post("/api/v1/explode")
    def explode():
        db.session.add(User(username="ghost", username_key="ghost", nickname="ghost"))
        db.session.flush()
        logging.getLogger("app.test").info('before "the" fall\nsecond line')
        raise RuntimeError("boom inside")

    response = json_app.test_client().post("/api/v1/explode", json={}, headers={"X-Request-ID": "req-77"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-77"
    records = lines(json_app.log_buffer)
    assert len(json_app.log_buffer.getvalue().splitlines()) == len(records)  # one object per line
    info = next(record for record in records if record["logger"] == "app.test")
    assert info["message"] == 'before "the" fall\nsecond line'
    assert info["level"] == "INFO"
    assert info["request_id"] == "req-77"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", info["time"])
    assert "exception" not in info
    error = next(record for record in records if record["logger"] == "app.errors")
    assert error["level"] == "ERROR"
    assert error["request_id"] == "req-77"
    assert "RuntimeError: boom inside" in error["exception"]
    assert "Traceback" in error["exception"]


def test_a_generated_request_id_reaches_the_log(json_app):
    @json_app.get("/api/v1/say")
    def say():
        logging.getLogger("app.test").warning("said")
        return {"ok": True}

    response = json_app.test_client().get("/api/v1/say", headers={"X-Request-ID": "bad id"})
    said = next(record for record in lines(json_app.log_buffer) if record["message"] == "said")
    assert said["request_id"] == response.headers["X-Request-ID"] != "bad id"


def test_a_socket_event_logs_with_one_id_of_its_own(json_app):
    from flask import g

    with json_app.app_context():
        g.sid = "socket-1"  # as app/chat/events.py does while it handles an event
        logging.getLogger("app.test").warning("first")
        logging.getLogger("app.test").warning("second")
    with json_app.app_context():
        logging.getLogger("app.test").warning("outside an event")
    records = {record["message"]: record for record in lines(json_app.log_buffer)}
    assert re.fullmatch(r"[0-9a-f]{32}", records["first"]["request_id"])
    assert records["first"]["request_id"] == records["second"]["request_id"]
    assert records["outside an event"]["request_id"] is None
