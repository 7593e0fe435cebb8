"""Targeted delivery across processes (app/socket_manager.py), checked on the real Redis server:
which channels an emit is published on, which processes subscribe to them, and what happens
when the subscriptions are cut."""

from __future__ import annotations

import re
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from app.socket_manager import FIELD, HEADER_END, TargetedRedisManager
from tests.cluster import Cluster, pin
from tests.conftest import PASSWORD, REDIS_NAMESPACE, free_port, server_env
from tests.socket_client import Device

CHANNEL = f"{REDIS_NAMESPACE}:socketio"
FANOUT_ROOMS = 3


def room_channel(user_id: int) -> str:
    return f"{CHANNEL}:room:/:user:{user_id}"


@pytest.fixture(scope="module")
def cluster(database_url, instance_path, redis_url, tmp_path_factory):
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        SOCKET_FANOUT_ROOMS=str(FANOUT_ROOMS),
        LOGIN_RATE_LIMIT="1000 per minute",
    )
    with ExitStack() as stack:
        yield Cluster(stack, env, tmp_path_factory.mktemp("targeted"), 2)


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def on(cluster):
    """on("a", "alice"): alice's device, signed in and connected through nginx to process a."""
    with ExitStack() as stack:

        def device(node: str, username: str, **options) -> Device:
            made = stack.enter_context(Device(cluster.url, connect=False, **options))
            pin(made.http, node)
            made.sign_in(username, PASSWORD)
            made.connect()
            assert cluster.node_of(made.http) == node
            return made

        yield device


class Published:
    """Every message published under this run's socket.io channels, with its channel."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(f"{CHANNEL}*")
        self.seen: list[tuple[str, bytes]] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "pmessage":
                self.seen.append((message["channel"].decode(), message["data"]))

    def channels(self) -> list[str]:
        return [channel for channel, _ in self.seen]

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def published(redis_url):
    watcher = Published(redis_url)
    time.sleep(0.2)  # the pattern subscription is in place
    yield watcher
    watcher.close()


def subscribers(client: redis.Redis, *user_ids: int) -> list[int]:
    return [count for _, count in client.pubsub_numsub(*(room_channel(user_id) for user_id in user_ids))]


def wait_for(condition, timeout: float = 5.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def direct_conversation(device: Device, peer_id: int) -> int:
    return device.post("/api/v1/conversations", {"user_id": peer_id}).json()["conversation"]["id"]


@pytest.mark.postgresql
def test_a_process_subscribes_to_a_users_room_while_it_holds_one_of_their_sockets(
    on, make_user, redis_client
):
    alice_id = make_user("alice")
    assert subscribers(redis_client, alice_id) == [0]
    phone = on("a", "alice")
    assert subscribers(redis_client, alice_id) == [1]
    laptop = on("a", "alice")
    assert subscribers(redis_client, alice_id) == [1]  # one subscription per process, not per socket
    tablet = on("b", "alice")
    assert subscribers(redis_client, alice_id) == [2]
    phone.disconnect()
    tablet.disconnect()
    wait_for(lambda: subscribers(redis_client, alice_id) == [1], what="process b unsubscribing")
    laptop.disconnect()
    wait_for(lambda: subscribers(redis_client, alice_id) == [0], what="process a unsubscribing")


@pytest.mark.postgresql
def test_a_direct_message_is_published_only_on_the_two_users_rooms(
    on, make_user, befriend, redis_client, published
):
    alice_id, bob_id, carol_id = make_user("alice"), make_user("bob"), make_user("carol")
    befriend(alice_id, bob_id)
    alice, bob, carol = on("a", "alice"), on("b", "bob"), on("b", "carol")
    conversation_id = direct_conversation(alice, bob_id)
    published.seen.clear()

    sent = alice.send(conversation_id, "hello")["message"]
    assert bob.wait_for("message:new") == sent
    wait_for(lambda: len(published.seen) >= 2, what="the publishes")
    time.sleep(0.2)
    message_channels = sorted(c for c, data in published.seen if b'"message:new"' in data)
    assert message_channels == sorted([room_channel(alice_id), room_channel(bob_id)])
    # Nothing on the channel every process reads; carol's process is not sent alice's copy, and
    # alice's own copy reached her from her process, once.
    assert CHANNEL not in published.channels() and f"{CHANNEL}:fanout" not in published.channels()
    assert subscribers(redis_client, alice_id, bob_id, carol_id) == [1, 1, 1]
    assert [event for event in alice.events("message:new")] == [sent]
    assert carol.events("message:new") == []


@pytest.mark.postgresql
def test_a_group_message_is_one_publish_delivered_once_to_every_device(on, make_user, befriend, published):
    names = ["owner", "member1", "member2", "member3", "member4"]
    ids = {name: make_user(name) for name in names}
    for name in names[1:]:
        befriend(ids["owner"], ids[name])
    devices = {name: on("ab"[index % 2], name) for index, name in enumerate(names)}
    devices["member1b"] = on("b", "member1")  # a second device of member1, on the other process
    created = devices["owner"].post(
        "/api/v1/groups", {"name": "Team", "member_ids": [ids[name] for name in names[1:]]}
    )
    conversation_id = created.json()["group"]["conversation_id"]
    for name in names:
        devices[name].wait_for("message:new", lambda message: message["conversation_id"] == conversation_id)
    published.seen.clear()

    sent = devices["member2"].send(conversation_id, "to everyone")["message"]
    for device in devices.values():
        device.wait_for("message:new", lambda message: message["id"] == sent["id"])
    time.sleep(0.3)
    fanout = [data for channel, data in published.seen if channel == f"{CHANNEL}:fanout"]
    assert len([data for data in fanout if b'"message:new"' in data]) == 1
    # The header names every member's room, and the payload follows it undecoded.
    header = fanout[0][: fanout[0].index(HEADER_END)].decode().split(FIELD)
    assert sorted(header[2].split("\x1f")) == sorted(f"user:{ids[name]}" for name in names)
    for device in devices.values():
        assert [m["id"] for m in device.events("message:new") if m["id"] == sent["id"]] == [sent["id"]]


@pytest.mark.postgresql
def test_garbage_on_a_room_channel_is_ignored(on, make_user, befriend, redis_client):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice, bob = on("a", "alice"), on("b", "bob")
    conversation_id = direct_conversation(alice, bob_id)
    for junk in (
        b"",
        b"no header",
        b"x" + FIELD.encode() + b"/" + FIELD.encode() + f"user:{bob_id}\n{{".encode(),
    ):
        redis_client.publish(room_channel(bob_id), junk)
    sent = alice.send(conversation_id, "still here")["message"]
    assert bob.wait_for("message:new") == sent


@pytest.mark.postgresql
def test_cut_subscriptions_come_back_and_every_socket_is_told_to_catch_up(
    on, make_user, befriend, redis_client
):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice, bob = on("a", "alice"), on("b", "bob", transports=("polling",))
    conversation_id = direct_conversation(alice, bob_id)
    listeners = [c for c in redis_client.client_list(_type="pubsub") if c["name"] == f"{CHANNEL}:listener"]
    assert len(listeners) == 2  # one per process
    for client in listeners:
        redis_client.client_kill_filter(_id=client["id"])

    alice.wait_for("resync", timeout=10)
    bob.wait_for("resync", timeout=10)
    wait_for(lambda: subscribers(redis_client, alice_id, bob_id) == [1, 1], what="the rooms subscribed again")
    sent = alice.send(conversation_id, "after the cut")["message"]
    assert bob.wait_for("message:new") == sent


def test_parley_emits_only_to_user_rooms():
    """Targeted routing cannot reach a socket id on another process: every emit goes through
    realtime.emit_to_users, whose rooms are user rooms (the `resync`s in app/__init__.py go to
    this process's sockets, or to every socket through the channel every process reads)."""
    root = Path(__file__).resolve().parent.parent / "app"
    pattern = re.compile(
        r"\b(socketio|server|manager)\.(emit|send)\(|flask_socketio import .*\b(emit|send)\b"
    )
    calls = []
    for path in root.rglob("*.py"):
        if path.name != "socket_manager.py":
            for line in path.read_text().splitlines():
                if pattern.search(line):
                    calls.append((str(path.relative_to(root)), line.strip()))
    assert sorted(calls) == [
        ("__init__.py", 'manager.emit("resync", {}, namespace="/")'),
        ("__init__.py", 'manager.emit("resync", {}, namespace="/", ignore_queue=True)'),
        ("realtime.py", "socketio.emit(name, data, to=rooms, skip_sid=skip_sid)"),
    ]


@pytest.mark.postgresql
def test_a_process_that_stops_beating_makes_every_socket_catch_up(on, make_user, redis_client):
    make_user("alice"), make_user("bob")
    alice, bob = on("a", "alice"), on("b", "bob", transports=("polling",))
    beats = f"{CHANNEL}:processes"
    assert redis_client.zcard(beats) == 2  # both processes beat
    # A process that died 30 s ago: its last beat stays behind.
    redis_client.zadd(beats, {"f" * 32: time.time() - 30})
    alice.wait_for("resync", timeout=10)
    bob.wait_for("resync", timeout=10)
    assert redis_client.zcard(beats) == 2  # taken out, once
    time.sleep(3)
    assert len(alice.events("resync")) == len(bob.events("resync")) == 1


def test_a_failed_publish_stops_publishing_until_redis_answers_then_everyone_catches_up(redis_url):
    missed = []
    manager = TargetedRedisManager(
        f"redis://127.0.0.1:{free_port()}/0", f"{REDIS_NAMESPACE}:breaker", on_missed=lambda: missed.append(1)
    )
    manager._publish_rooms("message:new", {"id": 1}, "/", ["user:1"], None)  # nobody listens there
    assert manager._missed
    started = time.monotonic()
    for _ in range(100):  # no emit waits on a Redis that failed
        manager._publish_rooms("message:new", {"id": 1}, "/", ["user:1"], None)
    assert time.monotonic() - started < 0.1
    assert missed == []

    manager.redis_url = redis_url  # Redis answers again: the next beat has every socket resync
    manager.beat_once()
    assert missed == [1] and not manager._missed
    manager.beat_once()
    assert missed == [1]
    manager._leave()
