"""Parley served by gunicorn + geventwebsocket, as `make run` serves it."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import requests

from tests.conftest import PASSWORD


def register(http: requests.Session, base: str, username: str) -> dict:
    response = http.post(f"{base}/api/v1/auth/register", json={"username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.json()


def test_live_server_registers_and_refuses_a_revoked_device(live_server, http):
    base = live_server.url
    register(http, base, "alice")
    laptop = requests.Session()
    assert laptop.post(f"{base}/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).ok
    laptop_id = laptop.get(f"{base}/api/v1/auth/me").json()["device"]["id"]
    assert http.delete(f"{base}/api/v1/auth/devices/{laptop_id}").status_code == 204
    refused = laptop.get(f"{base}/api/v1/auth/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"


def test_live_server_serves_the_pages(live_server, http):
    page = http.get(f"{live_server.url}/login")
    assert page.status_code == 200
    assert "Sign in" in page.text
    assert http.get(f"{live_server.url}/static/css/parley.css").status_code == 200


@pytest.mark.postgresql
def test_a_slow_query_does_not_stall_other_requests(live_server, database_url):
    """psycopg 3 yields to gevent while it waits, so one worker keeps serving."""
    blocker = psycopg.connect(database_url.replace("+psycopg", ""))
    blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # held until rollback
    slow_result: dict = {}

    def slow_register():
        started = time.monotonic()
        response = requests.post(
            f"{live_server.url}/api/v1/auth/register",
            json={"username": "waiting", "password": PASSWORD},
            timeout=30,
        )
        slow_result["status"] = response.status_code
        slow_result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow_register)
    thread.start()
    time.sleep(0.5)  # the register request is now waiting on the lock inside the server
    try:
        fast = [requests.get(f"{live_server.url}/healthz", timeout=2) for _ in range(5)]
        assert all(response.ok for response in fast)
        assert thread.is_alive(), "the blocked request should still be waiting on the lock"
    finally:
        time.sleep(0.5)
        blocker.rollback()
        blocker.close()
    thread.join(10)
    assert slow_result["status"] == 201
    assert slow_result["seconds"] >= 1.0
