"""Shared fixtures: a real database (SQLite or PostgreSQL), the app, clients, factories,
a query counter and a live gunicorn + geventwebsocket server.

`PARLEY_TEST_DB=sqlite` (default) or `postgresql` picks the database; with
PostgreSQL a throwaway database is created on 127.0.0.1:5432 and dropped at the
end (`TEST_DATABASE_URL` overrides). An unreachable server fails the run.

Each test starts from emptied tables and ends with no in-process socket left connected
(`_clean_state`). `PARLEY_TEST_RSS=1` prints the process's memory and time per test file at the
end (tests/memory_report.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from flask_migrate import upgrade
from flask_socketio.test_client import SocketIOTestClient
from sqlalchemy import event, text

from app import create_app, speak_cache
from app.auth import services as auth_services
from app.extensions import db, limiter, login_manager, socketio
from app.server_api import keys as api_keys
from app.webhooks import registry as webhook_registry
from app.wordfilter import cache as wordfilter_cache
from config import BASE_DIR, Config
from tests.memory_report import (  # noqa: F401 (hooks: PARLEY_TEST_RSS=1 reports memory per file)
    pytest_runtest_logfinish,
    pytest_runtest_logstart,
    pytest_terminal_summary,
)

TEST_DB = os.environ.get("PARLEY_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# This run's own namespace on the shared Redis server (an empty REDIS_NAMESPACE override in
# `server_env` gives a deployment its derived default instead).
REDIS_NAMESPACE = f"parley-test-{uuid.uuid4().hex[:12]}"
PASSWORD = "correct horse battery"


def pytest_report_header(config):
    return f"parley database: {TEST_DB}"


def pytest_configure(config):
    config.addinivalue_line("markers", "postgresql: needs PostgreSQL itself; runs in the PostgreSQL pass")


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgresql` belong to the PostgreSQL pass; the SQLite pass leaves them out."""
    if TEST_DB == "postgresql":
        return
    kept = [item for item in items if "postgresql" not in item.keywords]
    deselected = [item for item in items if "postgresql" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'parley-test.db'}"
        return
    if TEST_DB != "postgresql":
        pytest.exit(f"PARLEY_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}", returncode=4)
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.exit(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error}", returncode=3)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def redis_url():
    """The test Redis server, shared with other runs: this run writes only under its own
    REDIS_NAMESPACE (`server_env` passes it) and deletes only those keys at the end."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.exit(f"Redis is not reachable at {REDIS_URL}: {error}", returncode=3)
    yield REDIS_URL
    delete_redis_namespace(REDIS_URL, REDIS_NAMESPACE)
    client.close()


def delete_redis_namespace(url: str, namespace: str) -> None:
    """Delete every key a deployment with `namespace` wrote on the Redis server at `url`."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{namespace}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def server_env(database_url: str, instance: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PARLEY_ENV": "testing",
        "SECRET_KEY": "test-secret-key-0123456789",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "LOGIN_RATE_LIMIT": "5 per minute",
        "REGISTER_RATE_LIMIT": "1000 per minute",
        "MESSAGE_RATE_LIMIT": "10000 per second",
        "REDIS_NAMESPACE": REDIS_NAMESPACE,
        # Live servers outlive the tests and share their database: none delivers webhook rows
        # other tests wrote, unless a test asks for it.
        "WEBHOOK_DELIVERY": "false",
        # Nor takes over other tests' jobs or runs periodic jobs (its own jobs, e.g. the robot's
        # answers, it runs either way), unless a test asks for it.
        "JOB_WORKER": "false",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def instance_path(tmp_path_factory):
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def app(database_url, instance_path):
    config = Config.from_env(server_env(database_url, instance_path))
    config.WTF_CSRF_ENABLED = True
    # Word lists change through their services (at once in this process); a periodic look at the
    # database would add statements to whichever counted send it fell in.
    config.WORDFILTER_CACHE_SECONDS = 3600
    application = create_app(config)
    with application.app_context():
        upgrade()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def make_app(app, database_url, instance_path):
    """Another application on the test database (a second process, or other settings);
    its connections are closed at the end of the test. Flask-SocketIO binds one app at a
    time: the session app keeps its socket.io server."""
    made = []

    def make(**overrides: str):
        server = socketio.server
        application = create_app(Config.from_env(server_env(database_url, instance_path, **overrides)))
        socketio.server = server
        made.append(application)
        return application

    yield make
    for application in made:
        with application.app_context():
            db.engine.dispose()


def _clean(application) -> None:
    with application.app_context():
        tables = [table.name for table in reversed(db.metadata.sorted_tables)]
        # DELETE beats TRUNCATE on tables this small, on both databases.
        with db.engine.begin() as connection:
            for name in tables:
                if name == "stream_counter":
                    connection.execute(text("UPDATE stream_counter SET pos = 0"))
                elif name == "admin_roles":  # the built-in roles are the migration's rows
                    connection.execute(text("DELETE FROM admin_roles WHERE NOT builtin"))
                else:
                    connection.execute(text(f'DELETE FROM "{name}"'))
        db.session.remove()


def _drop_socket_clients(made_before: set[str]) -> None:
    """Disconnect and forget the Flask-SocketIO test clients made since `made_before`.

    Flask-SocketIO keeps every test client it ever made (`SocketIOTestClient.clients`, keyed by
    engine.io sid) and python-socketio its environ (`server.environ`), even after a disconnect. A
    client left connected stays in its `user:<id>` room, and the tables are emptied between tests,
    so on SQLite the next test's user with the same id is "also on" that stale socket: it would
    receive, and queue for the rest of the run, everything sent to that user (gigabytes by the end
    of the suite). A client a test or the server disconnected already is only forgotten. Clients
    made before the test (by a fixture of a wider scope) are left to that fixture."""
    made = [eio_sid for eio_sid in SocketIOTestClient.clients if eio_sid not in made_before]
    failures = []
    for eio_sid in made:
        client = SocketIOTestClient.clients[eio_sid]
        for namespace, connected in list(client.connected.items()):
            if connected:
                try:
                    client.disconnect(namespace)
                except Exception as error:  # the rest are still dropped; the error is reported
                    failures.append(error)
    for eio_sid in made:
        client = SocketIOTestClient.clients.pop(eio_sid)
        client.queue.clear()
        socketio.server.environ.pop(eio_sid, None)
    if failures:
        raise failures[0]


@pytest.fixture(autouse=True)
def _fresh_redis_namespace(request):
    """Every test that uses Redis starts without the sockets earlier tests' live servers left in
    the presence store. The ids of the emptied tables come round again, so a socket of an earlier
    test's server (kept until the presence TTL when that process was killed) would otherwise count
    for this test's user or device of the same id. Only presence: the servers of a module share
    the rest (their processes' heartbeats, their channels) across its tests."""
    if "redis_url" in request.fixturenames:
        delete_redis_namespace(REDIS_URL, f"{REDIS_NAMESPACE}:presence")


@pytest.fixture(autouse=True)
def _clean_state(app):
    """Every test starts from an empty database and fresh rate-limit counters, and leaves no
    socket connected (torn down last of the test's fixtures, so with their patches undone)."""
    _clean(app)
    with app.app_context():
        limiter.reset()
    app.extensions["parley.presence"].clear()
    speak_cache.clear()  # the ids of the emptied tables come round again
    webhook_registry.known_empty()  # the webhooks table was emptied too
    wordfilter_cache.reset(app)  # the word lists were emptied under the process's automaton
    pushes = app.extensions.get("parley.push")
    if pushes is not None:
        pushes.jobs.clear()  # earlier tests' messages, whose conversation ids come round again
    # Server API refusals counted per minute: a window an earlier test left is flushed (its
    # emptied audit row read) by the first audited request of a later minute, which then runs
    # more statements than the same request would otherwise — whenever a minute ends between tests.
    app.extensions.pop(api_keys.REFUSALS, None)
    made_before = set(SocketIOTestClient.clients)
    yield
    _drop_socket_clients(made_before)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_user(app):
    """Create an account through the service, as registration does."""
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, password: str = PASSWORD, **kwargs):
        with app.app_context():
            user = auth_services.create_user(username or f"user{next(counter)}", password, **kwargs)
            db.session.commit()
            return user.id

    return make


@pytest.fixture
def befriend(app):
    """Make two users friends through the request-and-accept services."""

    def make_friends(user_id: int, other_id: int) -> None:
        from app.social import services as social

        with app.app_context():
            request, _ = social.send_friend_request(user_id, other_id, "")
            social.respond_to_request(other_id, request["id"], accept=True)

    return make_friends


@pytest.fixture
def login(app):
    """A new test client signed in as `username` (a new device session each call)."""

    addresses = iter(range(1, 60000))

    def sign_in(username: str, password: str = PASSWORD, user_agent: str = "pytest"):
        # Each device signs in from its own address, so only the per-username limit applies.
        number = next(addresses)
        new_client = app.test_client()
        new_client.environ_base["REMOTE_ADDR"] = f"10.{number // 250}.{number % 250}.1"
        response = new_client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": password},
            headers={"User-Agent": user_agent},
        )
        assert response.status_code == 200, response.get_json()
        return new_client

    return sign_in


@pytest.fixture
def spies(app, monkeypatch):
    """Count session decodes and user-loader runs."""
    counts = {"session": 0, "user": 0}
    interface = app.session_interface
    open_session, load_user = interface.open_session, login_manager._user_callback

    def counting_open(*args, **kwargs):
        counts["session"] += 1
        return open_session(*args, **kwargs)

    def counting_load(*args, **kwargs):
        counts["user"] += 1
        return load_user(*args, **kwargs)

    monkeypatch.setattr(interface, "open_session", counting_open)
    monkeypatch.setattr(login_manager, "_user_callback", counting_load)
    return counts


@pytest.fixture
def pair(app, make_user, login, befriend):
    """Alice (phone and laptop) and Bob (phone), friends with a direct conversation; each a
    device of tests/chat_helpers.py."""
    from tests.chat_helpers import connect

    befriend(make_user("alice"), make_user("bob"))
    alice_phone = connect(app, login("alice"))
    alice_laptop = connect(app, login("alice"))
    bob = connect(app, login("bob"))
    response = alice_phone.http.post("/api/v1/conversations", json={"user_id": bob.user_id})
    assert response.status_code == 200
    conversation_id = response.get_json()["conversation"]["id"]
    for device in (alice_phone, alice_laptop, bob):
        device.received()  # drop the connect-time events
    return alice_phone, alice_laptop, bob, conversation_id


@pytest.fixture
def api_key(app):
    """Make a server API key (through the service, as the console does) and return headers
    carrying it: `api_key()` has every scope; `api_key("read", "users")` only those."""
    from app.models.integrations import API_SCOPES
    from app.server_api.keys import create_key

    def make(*scopes: str, **options) -> dict[str, str]:
        with app.app_context():
            _, key = create_key(options.pop("name", "test key"), list(scopes or API_SCOPES), **options)
            db.session.commit()
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def count_queries(app):
    """Counts the SQL statements run inside the `with` block — but not the push worker's, which
    plans the pushes of earlier messages in greenlets of its own whenever the test yields, nor the
    reload of the webhook list every WEBHOOK_CACHE_SECONDS (app/webhooks/registry.py)."""

    @contextmanager
    def counting():
        statements: list[str] = []

        def record(conn, cursor, statement, parameters, context, executemany):
            if "push_subscriptions" not in statement and "FROM webhooks" not in statement:
                statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", record)

    return counting


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """gunicorn + geventwebsocket serving Parley on a free port, as in production."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Tests empty the tables under a server that outlives them, and SQLite then hands out the
        # same ids again: entries its right-to-speak cache keeps could belong to a previous test.
        # Unless a test asks for it, that cache is off for SQLite (PostgreSQL never reuses ids).
        defaults = {"SPEAK_CACHE": "false"} if TEST_DB == "sqlite" else {}
        self.env = {**os.environ, **defaults, **env}
        self.process: subprocess.Popen | None = None

    def start(self) -> LiveServer:
        self.launch()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()  # a server that did not come up in time is not left running
            raise

    def launch(self) -> LiveServer:
        """Start the process without waiting for it (`wait_ready` does)."""
        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [
            str(gunicorn),
            "-k",
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
            "-w",
            "1",
            "--graceful-timeout",
            "2",
            "--bind",
            f"127.0.0.1:{self.port}",
            "wsgi:app",
        ]
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=BASE_DIR, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def wait_ready(self) -> LiveServer:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # again, if `stop_soon` asked already: harmless
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture(scope="session")
def live_server(app, database_url, instance_path, tmp_path_factory):
    server = LiveServer(
        server_env(database_url, instance_path), tmp_path_factory.mktemp("logs") / "live.log"
    ).start()
    yield server
    server.stop()


@pytest.fixture
def http():
    """A requests session, for talking to the live server like a real client."""
    with requests.Session() as session:
        yield session
