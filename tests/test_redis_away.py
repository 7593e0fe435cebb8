"""Parley keeps serving while Redis is away: degraded, not down.

A live server on a redis-server of this test's own; Redis is stopped under signed-in devices.
Meanwhile a device can still send (acknowledged, stored, delivered on this process), `/sync`,
`/conversations` and presence answer, a device signs in, registers and connects, and rate limits
still bite (counted in the process's memory). Once Redis is back everything is as before: the
counters are in Redis again, and so is the socket that connected during the outage.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
import redis
from sqlalchemy import select

from app.extensions import db
from app.models import Message
from app.presence import RedisPresence, SocketLimitReached
from app.ratelimit import RECHECK_SECONDS
from tests.conftest import PASSWORD, REDIS_NAMESPACE, LiveServer, free_port, server_env
from tests.socket_client import Device
from tests.test_cluster_failure import RedisServer

SEARCHES = 3  # per minute
TTL_SECONDS = 3  # presence: the keeper refreshes every second


def test_presence_without_redis_answers_from_this_process_and_caps_its_sockets(caplog):
    """Nobody listens on the port: every call meets Redis away. Connects are recorded here,
    within the caps counted on this process's sockets; reads answer from those sockets."""
    store = RedisPresence(f"redis://127.0.0.1:{free_port()}/0", f"{REDIS_NAMESPACE}:nowhere")
    assert store.add("phone", 7, 70, max_per_device=1, max_per_user=2) is True
    assert store.add("laptop", 7, 71, max_per_device=1, max_per_user=2) is False  # already online
    with pytest.raises(SocketLimitReached) as refused:
        store.add("tab", 7, 70, max_per_device=1, max_per_user=5)
    assert refused.value.scope == "device"
    with pytest.raises(SocketLimitReached) as refused:
        store.add("tablet", 7, 72, max_per_device=1, max_per_user=2)
    assert refused.value.scope == "user"
    assert store.add("desk", 8, 80) is True
    assert store.online([7, 8, 9]) == {7, 8}
    assert sorted(store.sids_of_user(7)) == ["laptop", "phone"]
    assert store.sids_of_device(80) == ["desk"]
    assert store.online_count() == 2
    assert store.remove("desk") == (8, False)  # settled once Redis is back (test_cluster_failure)
    assert store.online([8]) == set()
    away = [r for r in caplog.records if "Presence store unreachable" in r.getMessage()]
    assert len(away) == 1


def searches(device: Device, count: int) -> list[int]:
    return [device.get("/api/v1/search/messages", q="away").status_code for _ in range(count)]


@pytest.mark.postgresql
def test_while_redis_is_away_devices_send_sync_and_sign_in_and_it_all_comes_back(
    app, make_user, befriend, database_url, instance_path, tmp_path
):
    alice, bob = make_user("alice"), make_user("bob")
    befriend(alice, bob)
    own_redis = RedisServer(tmp_path).start()
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=own_redis.url,
        LOGIN_RATE_LIMIT="1000 per minute",
        SEARCH_RATE_LIMIT=f"{SEARCHES} per minute",
        PRESENCE_TTL_SECONDS=str(TTL_SECONDS),
    )
    with ExitStack() as stack:
        stack.callback(own_redis.kill)
        server = LiveServer(env, tmp_path / "server.log").start()
        stack.callback(server.stop)
        sender = stack.enter_context(Device(server.url, "alice", PASSWORD))
        receiver = stack.enter_context(Device(server.url, "bob", PASSWORD))
        conversation = sender.post("/api/v1/conversations", {"user_id": bob}).json()["conversation"]["id"]
        cursor = receiver.get_json("/api/v1/conversations")["cursor"]

        own_redis.kill()

        # A send is acknowledged, stored and delivered to the other device on this process.
        ack = sender.send(conversation, "while Redis is away")
        assert ack["ok"], ack
        message = ack["message"]
        receiver.wait_for("message:new", lambda m: m["id"] == message["id"])
        with app.app_context():
            stored = db.session.scalar(select(Message).where(Message.id == message["id"]))
            assert stored is not None and stored.seq == message["seq"]
        assert receiver.read(conversation, message["seq"])["ok"]

        # Catch-up, the conversation list and presence answer; presence from this process's sockets.
        synced = receiver.get_json("/api/v1/sync", cursor=cursor)
        assert message["id"] in [m["id"] for m in synced["messages"]]
        page = receiver.get_json("/api/v1/conversations")
        assert [c["id"] for c in page["conversations"]] == [conversation]
        [entry] = receiver.get_json("/api/v1/presence", user_ids=str(alice))["presence"]
        assert entry["online"] is True
        assert receiver.get("/api/v1/friends").status_code == 200
        assert receiver.get("/").status_code == 200  # the client's page (it asks whether the robot is on)

        # A device signs in and connects (recorded on this process only), and hears what is sent.
        phone = stack.enter_context(Device(server.url, "bob", PASSWORD))
        ack = sender.send(conversation, "to the phone too")
        assert ack["ok"], ack
        phone.wait_for("message:new", lambda m: m["id"] == ack["message"]["id"])
        # A newcomer registers (a limit Flask-Limiter's decorator counts).
        response = sender.http.post(
            server.url + "/api/v1/auth/register", json={"username": "carol", "password": PASSWORD}
        )
        assert response.status_code == 201, response.text

        # Rate limits still bite, counted in this process's memory.
        assert searches(sender, SEARCHES + 1) == [200] * SEARCHES + [429]

        own_redis.start()
        time.sleep(RECHECK_SECONDS + 0.5)

        # Back in Redis: the counters start again there (this Redis restarted empty) ...
        assert searches(receiver, SEARCHES + 1) == [200] * SEARCHES + [429]
        shared = stack.enter_context(redis.Redis.from_url(own_redis.url))
        assert shared.keys(f"{REDIS_NAMESPACE}:limits*")
        # ... and so is the phone's socket, put there by the keeper's refresh.
        phone_sockets = f"{REDIS_NAMESPACE}:presence:d:{phone.device_id}"
        deadline = time.monotonic() + TTL_SECONDS * 2
        while not shared.zcard(phone_sockets):
            assert time.monotonic() < deadline, "the phone's socket never reached Redis"
            time.sleep(0.2)
        ack = sender.send(conversation, "Redis is back")
        assert ack["ok"], ack
        phone.wait_for("message:new", lambda m: m["id"] == ack["message"]["id"])

    # Nothing failed, and each outage was logged once (and its end).
    log = server.log_path.read_text()
    assert "unhandled error" not in log and "socket event" not in log, log[-3000:]
    assert '" 500 ' not in log
    assert log.count("Rate limit counters unreachable") == 1
    assert log.count("Rate limit counters reachable again") == 1
    assert log.count("Presence store unreachable") == 1
