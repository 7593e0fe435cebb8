"""Every deployment writes to Redis under its own namespace: two deployments sharing one Redis
server never see each other's events, presence, rate-limit counters or robot switch."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from flask_migrate import upgrade
from limits import parse

from app import create_app
from app.auth import services as auth_services
from app.bots import state
from app.extensions import db, limiter, socketio
from app.social import services as social
from config import Config, ConfigError, default_redis_namespace
from tests.conftest import PASSWORD, LiveServer, delete_redis_namespace, server_env
from tests.socket_client import Device

QUIET_SECONDS = 0.5


# --- the default namespace -------------------------------------------------------------------


def test_the_default_namespace_differs_by_database_and_redis_db_and_hides_the_password():
    postgres = "postgresql://parley:s3cret-pw@db.example:5432/parley"
    base = default_redis_namespace(postgres, "redis://cache:6379/0")

    assert re.fullmatch(r"parley-[0-9a-f]{12}", base)
    assert "s3cret" not in base
    assert default_redis_namespace(postgres, "redis://cache:6379/1") != base
    assert default_redis_namespace(postgres, "redis://cache:6379?db=1") != base
    assert default_redis_namespace(postgres.replace("/parley", "/other"), "redis://cache:6379/0") != base
    assert default_redis_namespace(postgres.replace("db.example", "db2.example"), "redis://cache/0") != base
    assert default_redis_namespace("sqlite:////srv/a.db", None) != default_redis_namespace(
        "sqlite:////srv/b.db", None
    )
    # Every process of one deployment agrees, whatever spelling of the same settings it got.
    assert default_redis_namespace(postgres.replace("s3cret-pw", "rotated"), "redis://cache:6379/0") == base
    assert (
        default_redis_namespace(postgres.replace("postgresql:", "postgresql+psycopg:"), "redis://cache:6379")
        == base
    )


def test_the_namespace_is_read_from_the_environment_and_checked(tmp_path):
    settings = {"INSTANCE_PATH": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/2"}
    derived = Config.from_env(settings)
    expected = default_redis_namespace(derived.SQLALCHEMY_DATABASE_URI, settings["REDIS_URL"])
    assert expected == derived.REDIS_NAMESPACE
    assert derived.RATELIMIT_STORAGE_OPTIONS["key_prefix"] == f"{expected}:limits"

    chosen = Config.from_env({**settings, "REDIS_NAMESPACE": "shop-eu"})
    assert chosen.REDIS_NAMESPACE == "shop-eu"
    assert chosen.RATELIMIT_KEY_PREFIX == "shop-eu"

    for bad in ("has space", "*", "x" * 65, "-leading"):
        with pytest.raises(ConfigError) as caught:
            Config.from_env({**settings, "REDIS_NAMESPACE": bad})
        assert caught.value.name == "REDIS_NAMESPACE"


def test_every_key_parley_writes_carries_the_namespace(make_app, redis_url, login, make_user):
    """Presence, robot state and rate-limit counters of an app on Redis, with a fresh namespace."""
    namespace = f"parley-keys-{time.monotonic_ns()}"
    application = make_app(REDIS_URL=redis_url, REDIS_NAMESPACE=namespace)
    client = redis.Redis.from_url(redis_url)
    before = set(client.keys("*"))
    try:
        presence = application.extensions["parley.presence"]
        presence.add("sid-1", 1, 1)
        with application.app_context():
            state.set_enabled(False)
            # A counter hit straight on the storage, as the send and upload limits do.
            limiter.limiter.hit(parse("5 per minute"), "probe", "1")
        response = application.test_client().post(
            "/api/v1/auth/login", json={"username": "nobody", "password": "wrong password"}
        )
        assert response.status_code == 401
        # Other test runs may share this Redis server, each under its own `parley-test-` namespace.
        written = {
            key.decode() for key in set(client.keys("*")) - before if not key.startswith(b"parley-test-")
        }
        assert any(key.startswith(f"{namespace}:presence:") for key in written), written
        assert f"{namespace}:bot:enabled" in written
        assert any(key.startswith(f"{namespace}:limits:") for key in written), written
        assert written and all(key.startswith(f"{namespace}:") for key in written), written
    finally:
        delete_redis_namespace(redis_url, namespace)
        client.close()


# --- two live deployments on one Redis server -------------------------------------------------


def _other_db(url: str) -> str:
    """The same Redis server, another DB number."""
    match = re.fullmatch(r"(redis://[^/]+)/(\d+)", url)
    assert match, f"TEST_REDIS_URL must end in a DB number: {url}"
    return f"{match.group(1)}/{(int(match.group(2)) + 1) % 16}"


class Deployment:
    """A Parley deployment of its own: a fresh SQLite database with alice, bob (friends), carol
    and a root user (ids 1-4 in every deployment), served by one live process on `redis_url`
    with the namespace derived by default."""

    def __init__(self, root: Path, name: str, redis_url: str, stack: ExitStack):
        self.redis_url = redis_url
        self.database_url = f"sqlite:///{root / f'{name}.db'}"
        instance = root / f"instance-{name}"
        self.namespace = default_redis_namespace(self.database_url, redis_url)
        stack.callback(delete_redis_namespace, redis_url, self.namespace)
        overrides = {"LOGIN_RATE_LIMIT": "1000 per minute", "MESSAGE_RATE_LIMIT": "3 per minute"}
        server = socketio.server
        setup = create_app(Config.from_env(server_env(self.database_url, instance, **overrides)))
        socketio.server = server  # the session app keeps its socket.io server
        with setup.app_context():
            upgrade()
            self.ids = {
                username: auth_services.create_user(username, PASSWORD, is_admin=username == "root").id
                for username in ("alice", "bob", "carol", "root")
            }
            db.session.commit()
            request, _ = social.send_friend_request(self.ids["alice"], self.ids["bob"], "")
            social.respond_to_request(self.ids["bob"], request["id"], accept=True)
            db.session.remove()
            db.engine.dispose()
        env = server_env(self.database_url, instance, REDIS_URL=redis_url, REDIS_NAMESPACE="", **overrides)
        self.server = LiveServer(env, root / f"{name}.log")
        stack.callback(self.server.stop)
        self.server.start()
        self._stack = stack

    def device(self, username: str, *, connect: bool = True) -> Device:
        return self._stack.enter_context(Device(self.server.url, username, PASSWORD, connect=connect))


@pytest.mark.parametrize("redis_db", ["another DB number", "the same DB"])
def test_two_deployments_on_one_redis_server_never_cross(redis_url, tmp_path, redis_db):
    with ExitStack() as stack:
        a = Deployment(tmp_path, "a", redis_url, stack)
        b = Deployment(
            tmp_path, "b", _other_db(redis_url) if redis_db == "another DB number" else redis_url, stack
        )
        assert a.ids == b.ids and a.namespace != b.namespace
        ids = a.ids
        # In B alice (1) and carol (3) listen; bob stays offline.
        b_alice, b_carol = b.device("alice"), b.device("carol")
        b_conversation = b_alice.post("/api/v1/conversations", {"user_id": ids["bob"]}).json()
        time.sleep(QUIET_SECONDS)
        heard_in_b = (list(b_alice._received), list(b_carol._received))
        a_alice = a.device("alice")
        a_bob = a.device("bob")
        assert a_alice.wait_for("presence", lambda event: event["user_id"] == ids["bob"])["online"] is True

        # A message, a friend request and a new conversation in A.
        conversation_id = a_alice.post("/api/v1/conversations", {"user_id": ids["bob"]}).json()[
            "conversation"
        ]["id"]
        assert a_alice.send(conversation_id, "only in A")["ok"]
        assert a_bob.wait_for("message:new")["body"]["msg"] == "only in A"
        assert a_alice.post("/api/v1/friend-requests", {"user_id": ids["carol"]}).status_code in (200, 201)
        # The rate limit (3 per minute) runs out in A.
        assert a_alice.send(conversation_id, "two")["ok"] and a_alice.send(conversation_id, "three")["ok"]
        assert a_alice.send(conversation_id, "four")["error"]["code"] == "rate_limited"
        # The robot is switched off in A (what the admin console's switch writes).
        state.RedisStore(a.redis_url, f"{a.namespace}:bot").set(state.ENABLED_KEY, "0")
        assert a_alice.get_json("/api/v1/bot")["conversation"]["online"] is False

        time.sleep(QUIET_SECONDS)
        assert (b_alice._received, b_carol._received) == heard_in_b
        [bob_in_b] = b_alice.get_json("/api/v1/presence", user_ids=str(ids["bob"]))["presence"]
        assert bob_in_b["online"] is False
        ack = b_alice.send(b_conversation["conversation"]["id"], "B has its own counters")
        assert ack["ok"], ack
        assert b_alice.get_json("/api/v1/bot")["conversation"]["online"] is True
