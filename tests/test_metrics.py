"""Prometheus metrics (app/metrics.py): off by default, protected when on, counting what happens,
summed across processes, and the Grafana dashboard naming only what Parley exports."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

import tests.fake_github
import tests.test_github
import tests.test_push
import tests.test_webhooks
from app import metrics
from app.extensions import db
from app.models.jobs import Job
from app.webhooks import deliver
from config import BASE_DIR, Config, ConfigError
from tests.chat_helpers import connect
from tests.cluster import children
from tests.conftest import PASSWORD, LiveServer, free_port, server_env
from tests.socket_client import Device
from tests.test_bot import ask, open_bot
from tests.test_media import image_bytes, uploaded
from tests.test_push import send as push_send
from tests.test_push import settle as push_settle
from tests.test_push import subscribed as push_subscribed
from tests.test_webhooks import add_hook

TOKEN = "metrics-token-0123456789abcdef"
# Fixtures of the push and webhook tests: a fake push service, a fake integrator.
fake, push, direct = tests.test_push.fake, tests.test_push.push, tests.test_push.direct
integrator = tests.test_webhooks.integrator
# The fake GitHub (the fixture `github`) and an app that signs in through it.
github_fixture, gh_app = tests.fake_github.github_fixture, tests.test_github.gh_app
DASHBOARD = BASE_DIR / "docs" / "grafana" / "parley-dashboard.json"
# Every label Parley puts on a metric; their values are kinds, methods, rules and statuses.
LABELS = {"type", "conversation_kind", "method", "result", "kind", "endpoint", "status", "le"}


@pytest.fixture(scope="session")
def metrics_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture
def metrics_app(make_app, metrics_dir):
    """An application with metrics on (a process records once one of its apps enables them)."""
    application = make_app(METRICS_ENABLED="true", METRICS_TOKEN=TOKEN, METRICS_DIR=str(metrics_dir))
    yield application
    metrics.disable()


def scrape_text(application) -> str:
    response = application.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text_or_samples, name: str, **labels) -> float:
    found = samples(text_or_samples) if isinstance(text_or_samples, str) else text_or_samples
    return found.get((name, frozenset(labels.items())), 0.0)


# --- off, and protected ------------------------------------------------------------------------


def test_metrics_are_off_by_default(client, database_url, instance_path):
    assert Config.from_env(server_env(database_url, instance_path)).METRICS_ENABLED is False
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"METRICS_ENABLED": "true"}, "METRICS_ENABLED"),  # neither a token nor a port
        ({"METRICS_ENABLED": "maybe", "METRICS_TOKEN": TOKEN}, "METRICS_ENABLED"),
        ({"METRICS_ENABLED": "true", "METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"METRICS_ENABLED": "true", "METRICS_TOKEN": "with spaces in the token"}, "METRICS_TOKEN"),
        ({"METRICS_ENABLED": "true", "METRICS_PORT": "70000"}, "METRICS_PORT"),
        ({"METRICS_ENABLED": "true", "METRICS_PORT": "nine"}, "METRICS_PORT"),
        ({"METRICS_ENABLED": "true", "METRICS_PORT": "9100", "METRICS_BIND": "localhost"}, "METRICS_BIND"),
    ],
)
def test_bad_metrics_settings_stop_start_up_naming_the_setting(database_url, instance_path, settings, named):
    with pytest.raises(ConfigError) as raised:
        Config.from_env(server_env(database_url, instance_path, **settings))
    assert raised.value.name == named


def test_the_token_is_required_and_checked(metrics_app):
    http = metrics_app.test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        response = http.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json()["error"]["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"parley_" not in response.get_data()
    assert "parley_http_requests_total" in scrape_text(metrics_app)


# --- what is counted ---------------------------------------------------------------------------


def test_a_socket_send_moves_the_counters(metrics_app, app, make_user, login, befriend):
    befriend(make_user("alice"), make_user("bob"))
    before = samples(scrape_text(metrics_app))
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    response = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id})
    conversation_id = response.get_json()["conversation"]["id"]
    refused = app.test_client().post("/api/v1/auth/login", json={"username": "alice", "password": "nope"})
    assert refused.status_code == 401
    ack = alice.send(conversation_id, "hello")
    assert ack["ok"] is True
    assert any(message["seq"] == ack["message"]["seq"] for message in bob.received("message:new"))
    assert metrics_app.test_client().get("/healthz").status_code == 200
    during = samples(scrape_text(metrics_app))

    def moved(name, **labels):
        return value(during, name, **labels) - value(before, name, **labels)

    assert moved("parley_sockets_connected") == 2
    assert moved("parley_messages_sent_total", type="txt", conversation_kind="direct") == 1
    assert moved("parley_message_deliveries_total") == 2  # alice's room and bob's
    assert moved("parley_send_ack_seconds_count") == 1
    assert moved("parley_send_ack_seconds_bucket", le="+Inf") == 1
    assert moved("parley_sign_ins_total", method="password", result="success") == 2
    assert moved("parley_sign_ins_total", method="password", result="failure") == 1
    assert moved("parley_http_requests_total", endpoint="/healthz", method="GET", status="200") == 1
    assert moved("parley_http_request_duration_seconds_count", endpoint="/healthz") == 1
    assert moved("parley_http_request_db_seconds_count") >= 1
    assert value(during, "parley_http_request_db_seconds_sum") > value(
        before, "parley_http_request_db_seconds_sum"
    )

    bob.socket.disconnect()
    after = samples(scrape_text(metrics_app))
    assert value(after, "parley_sockets_connected") == value(during, "parley_sockets_connected") - 1


def test_a_refused_send_counts_no_message(metrics_app, app, make_user, login):
    make_user("alice")
    alice = connect(app, login("alice"))
    before = samples(scrape_text(metrics_app))
    ack = alice.send(999_999, "to nobody")
    assert ack["ok"] is False
    after = samples(scrape_text(metrics_app))
    assert value(after, "parley_send_ack_seconds_count") == value(before, "parley_send_ack_seconds_count") + 1
    sent = [key for key in after if key[0] == "parley_messages_sent_total"]
    assert all(after[key] == before.get(key, 0.0) for key in sent)


def test_queue_depths_are_read_at_scrape_time(metrics_app):
    assert value(scrape_text(metrics_app), "parley_job_queue_depth") == 0
    assert "parley_webhook_outbox_depth" in scrape_text(metrics_app)
    with metrics_app.app_context():
        db.session.add_all([Job(kind="test.nothing", payload={}) for _ in range(3)])
        db.session.commit()
    assert value(scrape_text(metrics_app), "parley_job_queue_depth") == 3


def test_no_label_carries_user_data(metrics_app, app, make_user, login, befriend):
    befriend(make_user("secretalice"), make_user("secretbob"))
    http = metrics_app.test_client()
    alice = connect(app, login("secretalice"))
    bob = connect(app, login("secretbob"))
    conversation_id = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id}).get_json()[
        "conversation"
    ]["id"]
    assert alice.send(conversation_id, "a private sentence")["ok"]
    http.get(f"/api/v1/conversations/{conversation_id}/messages?limit=7")
    http.get("/no/such/page/secretalice")
    http.post("/api/v1/auth/login", json={"username": "secretalice", "password": "wrong password"})
    text = scrape_text(metrics_app)
    for secret in ("secretalice", "secretbob", "private sentence", "no/such", "limit=7"):
        assert secret not in text
    rules = {rule.rule for rule in metrics_app.url_map.iter_rules()} | {"unmatched"}
    found = samples(text)
    for name, labels in found:
        assert name.startswith("parley_"), name
        for label, label_value in labels:
            assert label in LABELS, (name, label)
            if label == "endpoint":
                assert label_value in rules, label_value
            elif label == "status":
                assert re.fullmatch(r"\d{3}", label_value)
            elif label != "le":
                assert re.fullmatch(r"[A-Za-z_]{1,20}", label_value), (label, label_value)
    assert value(found, "parley_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    rule = "/api/v1/conversations/<int:conversation_id>/messages"
    assert any(dict(labels).get("endpoint") == rule for _, labels in found)


def test_made_up_methods_share_one_label(metrics_app):
    """A client's own method tokens never make new series: they are all "other"."""
    http = metrics_app.test_client()
    before = samples(scrape_text(metrics_app))
    for method in ("BREWCOFFEE", "XYZZY", "PROPFIND"):
        assert http.open("/healthz", method=method).status_code == 405
    assert http.open("/healthz", method="OPTIONS").status_code == 200
    text = scrape_text(metrics_app)
    for method in ("BREWCOFFEE", "XYZZY", "PROPFIND"):
        assert method not in text
    after = samples(text)

    def moved(**labels):
        return value(after, "parley_http_requests_total", **labels) - value(
            before, "parley_http_requests_total", **labels
        )

    assert moved(endpoint="unmatched", method="other", status="405") == 3
    assert moved(endpoint="/healthz", method="OPTIONS", status="200") == 1
    methods = {dict(labels).get("method") for name, labels in after if name == "parley_http_requests_total"}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_requests_refused_by_the_rate_limiter_are_counted(metrics_app, make_user):
    # The timer is the first hook: no hook before it (the limiter's, any added later) can refuse
    # a request uncounted.
    assert metrics_app.before_request_funcs[None][0] is metrics._before_request
    make_user("alice")
    http = metrics_app.test_client()
    before = samples(scrape_text(metrics_app))
    statuses = [
        http.post("/api/v1/auth/login", json={"username": "alice", "password": "nope"}).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]  # LOGIN_RATE_LIMIT of the tests: 5 per minute
    after = samples(scrape_text(metrics_app))
    labels = {"endpoint": "/api/v1/auth/login", "method": "POST"}
    for status, count in (("401", 5), ("429", 1)):
        moved = value(after, "parley_http_requests_total", status=status, **labels) - value(
            before, "parley_http_requests_total", status=status, **labels
        )
        assert moved == count, status


def test_with_a_token_the_separate_listener_asks_for_it_too(metrics_app):
    listener = Client(metrics._listener_app(metrics_app))
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": TOKEN}):
        response = listener.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"parley_" not in response.get_data()
    response = listener.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert b"parley_http_requests_total" in response.get_data()
    assert listener.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_uploads_are_counted_by_kind_and_bytes(metrics_app, make_user, login):
    make_user("alice")
    http = login("alice")
    before = samples(scrape_text(metrics_app))
    facts = uploaded(http, image_bytes("PNG", size=(30, 20)), "dot.png", purpose="message")
    after = samples(scrape_text(metrics_app))
    assert (
        value(after, "parley_uploads_total", kind="image")
        - value(before, "parley_uploads_total", kind="image")
        == 1
    )
    added = value(after, "parley_upload_bytes_total", kind="image") - value(
        before, "parley_upload_bytes_total", kind="image"
    )
    assert added == facts["size"] > 0


def test_failures_of_outside_services_and_robot_replies_are_counted(
    metrics_app, app, integrator, push, direct, make_user, login
):
    before = samples(scrape_text(metrics_app))

    add_hook(app, integrator, ["user.registered"])
    integrator.down()
    make_user("hana")
    assert deliver.deliver_due(app) == 0

    alice, bob, conversation_id, _ = direct
    push_subscribed(bob, push)
    push.status = 503
    push_send(alice, conversation_id, "one")
    push_settle(app)
    push.status = 429  # a slow-down: not a failure
    push_send(alice, conversation_id, "two")
    push_settle(app)

    robot_chat = open_bot(alice)["conversation_id"]
    assert ask(alice, robot_chat, "thanks!")["body"]["msg"] == "You're welcome, Alice!"

    after = samples(scrape_text(metrics_app))
    for name in (
        "parley_webhook_delivery_failures_total",
        "parley_push_failures_total",
        "parley_robot_reply_seconds_count",
    ):
        assert value(after, name) - value(before, name) == 1, name


def test_token_and_jwt_sign_ins_are_counted(metrics_app, app, make_user):
    from app.auth import tickets

    user_id = make_user("alice")
    with app.app_context():
        token, _ = tickets.issue_sign_in_token(user_id)
        db.session.commit()
    before = samples(scrape_text(metrics_app))
    assert app.test_client().post("/api/v1/auth/token", json={"token": token}).status_code == 200
    assert app.test_client().post("/api/v1/auth/token", json={"token": token}).status_code >= 400  # spent
    assert app.test_client().post("/api/v1/auth/token", json={"jwt": "not.a.jwt"}).status_code >= 400
    after = samples(scrape_text(metrics_app))
    for method, result in (("token", "success"), ("token", "failure"), ("jwt", "failure")):
        moved = value(after, "parley_sign_ins_total", method=method, result=result) - value(
            before, "parley_sign_ins_total", method=method, result=result
        )
        assert moved == 1, (method, result)


def test_github_sign_ins_are_counted(metrics_app, gh_app, github):
    from app.models import Sanction

    before = samples(scrape_text(metrics_app))
    visitor = gh_app.test_client()
    tests.fake_github.dance(visitor, github)
    user_id = tests.test_github.me(visitor)["user"]["id"]
    with gh_app.app_context():
        db.session.add(Sanction(user_id=user_id, kind="ban", reason="spam"))
        db.session.commit()
    refused = tests.fake_github.dance(gh_app.test_client(), github)
    assert refused.headers["Location"].endswith("/login")
    after = samples(scrape_text(metrics_app))
    for result in ("success", "failure"):
        moved = value(after, "parley_sign_ins_total", method="github", result=result) - value(
            before, "parley_sign_ins_total", method="github", result=result
        )
        assert moved == 1, result


# --- the dashboard ----------------------------------------------------------------------------


def dashboard_expressions() -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "expr" and isinstance(item, str):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def test_the_dashboard_names_only_metrics_parley_exports(metrics_app, app, make_user, login, befriend):
    befriend(make_user("alice"), make_user("bob"))
    alice = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    conversation_id = alice.http.post("/api/v1/conversations", json={"user_id": bob.user_id}).get_json()[
        "conversation"
    ]["id"]
    assert alice.send(conversation_id, "hi")["ok"]
    uploaded(alice.http, image_bytes("PNG", size=(4, 4)), "dot.png", purpose="message")
    assert metrics_app.test_client().get("/healthz").status_code == 200
    exported = {name for name, _ in samples(scrape_text(metrics_app))}
    expressions = dashboard_expressions()
    assert len(expressions) >= 10
    named = set()
    for expression in expressions:
        names = set(re.findall(r"\bparley_[a-z_]+", expression))
        assert names, expression
        named |= names
    assert named <= exported, sorted(named - exported)
    for wanted in ("parley_send_ack_seconds_bucket", "parley_sockets_connected", "parley_job_queue_depth"):
        assert wanted in named


# --- several processes -------------------------------------------------------------------------


def scrape_url(url: str, **kwargs) -> dict:
    response = requests.get(url, timeout=5, **kwargs)
    assert response.status_code == 200, response.text
    return samples(response.text)


def test_two_processes_share_one_folder_and_report_the_sums(database_url, instance_path, tmp_path, redis_url):
    """Two gunicorn processes on one host with one folder: each reports the sum of both, a
    separate port serves /metrics without a token, and a process killed outright stops counting
    in the live gauges while its counters stay."""
    folder = tmp_path / "metrics"
    port = free_port()
    common = {"METRICS_ENABLED": "true", "METRICS_DIR": str(folder), "REDIS_URL": redis_url}
    env_a = server_env(database_url, instance_path, METRICS_PORT=str(port), **common)
    env_b = server_env(database_url, instance_path, METRICS_TOKEN=TOKEN, **common)
    with ExitStack() as stack:
        first = LiveServer(env_a, tmp_path / "a.log")
        second = LiveServer(env_b, tmp_path / "b.log")
        stack.callback(first.stop)
        stack.callback(second.stop)
        first.start()
        second.start()
        listener = f"http://127.0.0.1:{port}/metrics"
        # A has no token: /metrics is not on its own port; its listener answers only /metrics.
        assert requests.get(f"{first.url}/metrics", timeout=5).status_code == 404
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 404
        assert requests.get(f"{second.url}/metrics", timeout=5).status_code == 401

        requests.post(f"{first.url}/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})
        requests.post(f"{first.url}/api/v1/auth/register", json={"username": "bob", "password": PASSWORD})
        devices = [Device(first.url, "alice", PASSWORD), Device(first.url, "bob", PASSWORD)]
        devices.append(Device(second.url, "alice", PASSWORD))
        for device in devices:
            stack.callback(device.close)
        for_b = f"{second.url}/metrics"
        token = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
        from_a, from_b = scrape_url(listener), scrape_url(for_b, **token)
        assert value(from_a, "parley_sockets_connected") == 3
        assert value(from_b, "parley_sockets_connected") == 3
        signed_in = value(from_a, "parley_sign_ins_total", method="password", result="success")
        assert signed_in == value(from_b, "parley_sign_ins_total", method="password", result="success") == 3

        # B dies without a word: its socket leaves the sum, its counts stay.
        killed = [*children(second.process.pid), second.process.pid]
        for pid in killed:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        second.process.wait(10)
        for pid in killed:
            wait_dead(pid)
        after = scrape_url(listener)
        assert value(after, "parley_sockets_connected") == 2
        assert value(after, "parley_sign_ins_total", method="password", result="success") == 3


def wait_dead(pid: int, timeout: float = 10.0) -> None:
    """Until `pid` is gone or a zombie (a SIGKILL takes effect asynchronously)."""
    deadline = time.monotonic() + timeout
    while metrics._alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.05)


def test_the_sweep_takes_out_only_the_live_gauges_of_dead_processes(tmp_path):
    """A dead process's open sockets leave the sum; its counters stay (sums never go back)."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    dead, alive = _dead_pid(), os.getpid()
    for name in (f"counter_{dead}.db", f"gauge_livesum_{dead}.db", f"gauge_livesum_{alive}.db"):
        (folder / name).write_bytes(b"")
    metrics.sweep(str(folder))
    assert {path.name for path in Path(folder).iterdir()} == {
        f"counter_{dead}.db",
        f"gauge_livesum_{alive}.db",
    }


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
