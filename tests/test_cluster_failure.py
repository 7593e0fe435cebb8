"""Failure under load, behind nginx: a process killed with SIGKILL, Redis restarted.

Every device here sends without pause, one message after another, each with its own
`client_msg_id`, and keeps what was acknowledged. A device follows the protocol and nothing more:
when its socket drops it reconnects (through nginx, which sends it to a live process), resends
every unacknowledged message with the same `client_msg_id`, and runs `/sync` from its cursor after
every (re)connect and whenever the server asks it to (`resync`). What it knows is what it
received live plus what sync gave it. The checks: every acknowledged message is stored exactly
once and known exactly once to every device of both members; the users of a dead process are
announced offline once; while Redis is away sends and catch-up go on, and after its restart
delivery, presence and rate limits work again without anyone touching the processes.

Two faster tests pin down what the cluster tests found: a batch's senders are acknowledged only
after its deliveries left, and a socket that closed while Redis was away is settled (its user
announced offline) once Redis is back, whether or not Redis lost its data.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import pytest
import redis
import socketio
from sqlalchemy import select

from app.extensions import db
from app.models import Message, User
from app.moderation import services as moderation
from app.presence import RedisPresence
from tests.cluster import Cluster
from tests.conftest import REDIS_NAMESPACE, free_port, server_env
from tests.socket_client import Device

PAIRS = 6
TTL_SECONDS = 3
# A send not acknowledged within this is resent (same client_msg_id) once the socket is back.
SEND_TIMEOUT = 3.0
# Between two sends of one device: a dozen devices keep both processes busy on a small machine.
PAUSE = 0.02
LOAD_SECONDS = 2.0
QUIET_SECONDS = 0.5
RETRYABLE = {"internal_error", "rate_limited"}
LOGIN_RATE_LIMIT = "1000 per minute"  # every device signs in from 127.0.0.1


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def device_on(stack: ExitStack, cluster: Cluster, username: str, node: str, transport: str) -> Device:
    """A device of `username` signed in through nginx on process `node`, its socket open there."""
    device = stack.enter_context(cluster.device(node, username, transports=(transport,)))
    assert cluster.node_of(device.http) == node
    return device


def open_direct(device: Device, peer_id: int) -> int:
    response = device.post("/api/v1/conversations", {"user_id": peer_id})
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation"]["id"]


class Sender:
    """One device under load, in its own thread, behaving as a client must."""

    def __init__(self, name: str, device: Device, conversation_id: int, cluster: Cluster):
        self.name = name
        self.device = device
        self.conversation_id = conversation_id
        self.cluster = cluster
        self.cursor = device.get_json("/api/v1/conversations")["cursor"]
        self.acked: dict[str, dict] = {}  # client_msg_id -> the stored message its ack carried
        self.resent: set[str] = set()  # client_msg_ids sent more than once
        self.synced: dict[tuple[int, int], dict] = {}
        self.landed: list[str | None] = []  # where each reconnect's sync was served
        self.failed_syncs: list[tuple[float, int]] = []  # (when, status) of refused sync requests
        self.send_errors: Counter = Counter()
        self.resyncs_handled = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"sender-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def finish(self, timeout: float = 40.0) -> None:
        """Stop making new messages; wait until every one made is acknowledged."""
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} still has unacknowledged messages"
        if self.error is not None:
            raise AssertionError(f"{self.name} failed") from self.error

    def _run(self) -> None:
        try:
            self._send_until_stopped()
        except BaseException as error:  # reported by finish()
            self.error = error

    def _send_until_stopped(self) -> None:
        pending: deque[str] = deque()
        made = 0
        deadline = None
        while True:
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + 30
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"never acknowledged: {list(pending)} ({dict(self.send_errors)})")
            if not self.device.connected:
                self._reconnect()
                continue
            if len(self.device.events("resync")) > self.resyncs_handled:
                self.resyncs_handled = len(self.device.events("resync"))
                self.sync()
            if not pending:
                made += 1
                pending.append(f"{self.name}-{made:06d}")
            client_msg_id = pending[0]
            try:
                ack = self.device.send(
                    self.conversation_id, f"{client_msg_id} says hi", client_msg_id, timeout=SEND_TIMEOUT
                )
            except Exception as error:  # timed out, or the socket is gone: resend it
                self.resent.add(client_msg_id)
                self.send_errors[type(error).__name__] += 1
                time.sleep(0.05)
                continue
            if not ack["ok"]:
                # Only a failure on the server's side may be tried again.
                assert ack["error"]["code"] in RETRYABLE, ack
                self.resent.add(client_msg_id)
                self.send_errors[ack["error"]["code"]] += 1
                time.sleep(0.1)
                continue
            assert ack["message"]["client_msg_id"] == client_msg_id
            self.acked[client_msg_id] = ack["message"]
            pending.popleft()
            time.sleep(PAUSE)

    def _reconnect(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.device.connect(timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sync()
        self.landed.append(self.cluster.node_of(self.device.http))

    def sync(self) -> None:
        """Every sync page from the kept cursor; a refused request is tried again."""
        deadline = time.monotonic() + 30
        while True:
            response = self.device.get("/api/v1/sync", cursor=self.cursor, limit=500)
            if response.status_code != 200:
                self.failed_syncs.append((time.time(), response.status_code))
                assert time.monotonic() < deadline, f"sync kept answering {response.status_code}"
                time.sleep(0.2)
                continue
            page = response.json()
            for message in page["messages"]:
                self.synced[(message["conversation_id"], message["seq"])] = message
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return

    def live(self) -> list[dict]:
        return [m for m in self.device.events("message:new") if m["conversation_id"] == self.conversation_id]

    def known(self) -> dict[tuple[int, int], dict]:
        """What this device holds: live events and sync pages, upserted by (conversation, seq)."""
        known = dict(self.synced)
        for message in self.live():
            known.setdefault((message["conversation_id"], message["seq"]), message)
        return {key: message for key, message in known.items() if key[0] == self.conversation_id}


def make_pairs(make_user, befriend, prefix: str, count: int) -> list[tuple[int, int]]:
    pairs = []
    for index in range(count):
        left, right = make_user(f"{prefix}{index}x"), make_user(f"{prefix}{index}y")
        befriend(left, right)
        pairs.append((left, right))
    return pairs


def start_senders(stack, cluster, pairs, prefix: str, nodes=("a", "b")) -> list[Sender]:
    """Each pair has one member on each process; half the devices hold to long-polling."""
    senders = []
    for index, (_, right_id) in enumerate(pairs):
        transport = "polling" if index % 2 else "websocket"
        left = device_on(stack, cluster, f"{prefix}{index}x", nodes[0], transport)
        right = device_on(stack, cluster, f"{prefix}{index}y", nodes[1], transport)
        conversation_id = open_direct(left, right_id)
        senders += [
            Sender(f"{prefix}{index}x", left, conversation_id, cluster),
            Sender(f"{prefix}{index}y", right, conversation_id, cluster),
        ]
    for sender in senders:
        sender.start()
    return senders


@pytest.mark.parametrize("lost", [False, True], ids=["redis-kept-its-data", "redis-restarted-empty"])
def test_a_socket_closed_while_redis_was_away_is_settled_by_the_next_sweep(lost, redis_url, monkeypatch):
    """The disconnect could not reach Redis: once it is back, the process's sweep removes the
    socket and announces its user offline (once) if it was their last, whether Redis kept its
    data (the deadline is still there) or restarted empty (nobody else knows the user left)."""
    store = RedisPresence(redis_url, f"{REDIS_NAMESPACE}:away-{lost}", ttl_seconds=TTL_SECONDS)
    store.clear()
    store.add("solo", 7, 70)
    store.add("phone", 8, 80)
    store.add("laptop", 8, 81)

    def redis_is_away(*args, **kwargs):
        raise redis.ConnectionError("Connection refused.")

    monkeypatch.setattr(store, "_remove", redis_is_away)
    closed_at = time.time()
    assert store.remove("solo") == (7, False)
    assert store.remove("phone") == (8, False)
    with pytest.raises(redis.ConnectionError):
        store.sweep()  # still away: kept for the next one
    monkeypatch.undo()
    if lost:
        store.redis.delete(*store.redis.keys(f"{store.prefix}:*"))
        assert store.refresh() == [8]  # the laptop's socket put back: user 8 is online again
    else:
        assert store.refresh() == []

    [(user_id, last_seen)] = store.sweep()
    assert user_id == 7 and closed_at <= last_seen <= time.time()
    assert store.sweep() == []
    assert store.sids_of_user(7) == [] and store.sids_of_user(8) == ["laptop"]
    assert store.online([7, 8]) == {8}
    store.clear()


def check_nothing_lost(app, senders: list[Sender]) -> None:
    """Every acknowledged message stored once; each device knows every message of its
    conversation exactly once, and its live events never repeated one."""
    by_conversation: dict[int, list[Sender]] = {}
    for sender in senders:
        by_conversation.setdefault(sender.conversation_id, []).append(sender)
    with app.app_context():
        rows = db.session.execute(
            select(Message.conversation_id, Message.seq, Message.client_msg_id, Message.id)
            .where(Message.conversation_id.in_(by_conversation))
            .order_by(Message.conversation_id, Message.seq)
        ).all()
    stored: dict[int, list] = {}
    for row in rows:
        stored.setdefault(row.conversation_id, []).append(row)
    for conversation_id, members in by_conversation.items():
        acked = {cid: message for member in members for cid, message in member.acked.items()}
        assert acked, f"nothing acknowledged in conversation {conversation_id}"
        rows = stored[conversation_id]
        client_ids = Counter(row.client_msg_id for row in rows)
        assert [cid for cid, count in client_ids.items() if count > 1] == []
        # Everything stored was acknowledged (every sender waited for all its acks) and only once.
        assert set(client_ids) == set(acked)
        assert {row.client_msg_id: row.id for row in rows} == {c: m["id"] for c, m in acked.items()}
        assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
        resent = {cid for member in members for cid in member.resent}
        for member in members:
            live = Counter((m["conversation_id"], m["seq"]) for m in member.live())
            assert [key for key, count in live.items() if count > 1] == [], f"{member.name} got a repeat"
            missing = set(acked) - {message["client_msg_id"] for message in member.known().values()}
            assert not missing, (
                f"{member.name} never received {sorted(missing)[:10]} ({len(missing)}, "
                f"{len(missing & resent)} of them resent)"
            )
            known = member.known()
            known_ids = Counter(message["client_msg_id"] for message in known.values())
            assert [cid for cid, count in known_ids.items() if count > 1] == []
            assert {m["client_msg_id"]: m["id"] for m in known.values()} == {
                c: m["id"] for c, m in acked.items()
            }


@pytest.mark.postgresql
def test_a_process_killed_under_load_loses_and_repeats_no_acknowledged_message(
    app, make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    pairs = make_pairs(make_user, befriend, "k", PAIRS)
    env = server_env(database_url, instance_path, REDIS_URL=redis_url, LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT)
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path, 2)
        senders = start_senders(stack, cluster, pairs, "k")
        on_a, on_b = senders[0::2], senders[1::2]
        time.sleep(LOAD_SECONDS)
        before = {sender.name: len(sender.acked) for sender in senders}

        cluster.kill("a")

        deadline = time.monotonic() + 30
        while not all(sender.landed for sender in on_a) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(sender.landed for sender in on_a), "a device of the dead process never came back"
        time.sleep(LOAD_SECONDS)  # more load, now all on b
        # b finds a's beat gone and asks every socket to catch up: what a stored but never
        # published (committed, unacknowledged, answered as a resend by b) reaches the devices
        # that never lost their socket through that sync.
        deadline = time.monotonic() + 20
        while not all(sender.resyncs_handled for sender in on_b) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(sender.resyncs_handled for sender in on_b), "b never asked its sockets to catch up"
        for sender in senders:
            sender.finish()

        # The devices of a noticed, reconnected through nginx and were served by b from then on.
        for sender in on_a:
            assert set(sender.landed) == {"b"}, sender.landed
            assert cluster.node_of(sender.device.http) == "b"
            assert len(sender.acked) > before[sender.name], f"{sender.name} sent nothing after the kill"
        # The devices of b never lost their socket.
        assert all(sender.landed == [] for sender in on_b)
        assert any(sender.resent for sender in on_a), "the kill interrupted no send: not under load"
        check_nothing_lost(app, senders)


@pytest.mark.postgresql
def test_the_users_of_a_killed_process_are_announced_offline_once(
    app, make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    """bob's only socket is on the killed process: each of alice's devices, on the two surviving
    processes (both sweep), hears one offline, within about the TTL, and last-seen is written.
    carol has a socket on a survivor too: she stays online until that one closes."""
    alice_id, bob_id, carol_id = make_user("alice"), make_user("bob"), make_user("carol")
    befriend(alice_id, bob_id)
    befriend(alice_id, carol_id)
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT,
        PRESENCE_TTL_SECONDS=str(TTL_SECONDS),
    )
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path, 3)
        alice_phone = device_on(stack, cluster, "alice", "b", "websocket")
        alice_laptop = device_on(stack, cluster, "alice", "c", "polling")
        device_on(stack, cluster, "bob", "a", "polling")
        device_on(stack, cluster, "carol", "a", "websocket")
        carol_laptop = device_on(stack, cluster, "carol", "b", "websocket")
        for device in (alice_phone, alice_laptop):
            for user_id in (bob_id, carol_id):
                device.wait_for("presence", lambda e, u=user_id: e["user_id"] == u and e["online"])
        connected_at = time.time()

        cluster.kill("a")

        def offline(device: Device, user_id: int) -> list[dict]:
            return [e for e in device.events("presence") if e["user_id"] == user_id and not e["online"]]

        for device in (alice_phone, alice_laptop):
            device.wait_until(
                lambda device=device: bool(offline(device, bob_id)), timeout=TTL_SECONDS * 4, what="offline"
            )
        noticed_after = time.time() - connected_at
        time.sleep(TTL_SECONDS / 3 * 2 + QUIET_SECONDS)  # two more sweeps by each process

        [phone_heard], [laptop_heard] = offline(alice_phone, bob_id), offline(alice_laptop, bob_id)
        assert phone_heard == laptop_heard
        last_seen = parse(phone_heard["last_seen_at"])
        assert connected_at - 2 <= last_seen.timestamp() <= time.time()
        assert noticed_after <= TTL_SECONDS * 3
        with app.app_context():
            assert db.session.get(User, bob_id).last_seen_at == last_seen
        listed = alice_phone.get_json("/api/v1/presence", user_ids=f"{bob_id},{carol_id}")["presence"]
        assert sorted(listed, key=lambda entry: entry["user_id"]) == [
            {"user_id": bob_id, "online": False, "last_seen_at": phone_heard["last_seen_at"]},
            {"user_id": carol_id, "online": True, "last_seen_at": None},
        ]

        # carol's phone died with a, her laptop lives on b: never announced offline, until it closes.
        for device in (alice_phone, alice_laptop):
            assert [e["online"] for e in device.events("presence") if e["user_id"] == carol_id] == [True]
        carol_laptop.disconnect()
        gone = alice_phone.wait_for("presence", lambda e: e["user_id"] == carol_id and not e["online"])
        assert gone["last_seen_at"] is not None


class RedisServer:
    """A redis-server of this test's own on a free port (never the shared one), without
    persistence: a restart loses everything, as a crash of a cache server would."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                client.close()
                return self
            except redis.ConnectionError:
                assert self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.postgresql
def test_a_redis_restart_under_load_loses_nothing_and_everything_comes_back(
    app, make_user, befriend, database_url, instance_path, tmp_path
):
    pairs = make_pairs(make_user, befriend, "r", 4)
    probe_a, probe_b, leaver_id = make_user("probe_a"), make_user("probe_b"), make_user("leaver")
    befriend(probe_a, probe_b)
    befriend(probe_a, leaver_id)
    own_redis = RedisServer(tmp_path).start()
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=own_redis.url,
        LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT,
        PRESENCE_TTL_SECONDS=str(TTL_SECONDS),
        SEARCH_RATE_LIMIT="5 per minute",
    )
    with ExitStack() as stack:
        stack.callback(own_redis.kill)
        cluster = Cluster(stack, env, tmp_path, 2)
        watcher = device_on(stack, cluster, "probe_a", "a", "websocket")
        watched = device_on(stack, cluster, "probe_b", "b", "polling")
        probe_conversation = open_direct(watcher, probe_b)
        leaver = device_on(stack, cluster, "leaver", "b", "websocket")
        for user_id in (probe_b, leaver_id):
            watcher.wait_for("presence", lambda e, u=user_id: e["user_id"] == u and e["online"])
        senders = start_senders(stack, cluster, pairs, "r")
        time.sleep(LOAD_SECONDS)

        own_redis.kill()
        left_at = time.time()
        leaver.disconnect()  # while Redis is away: b cannot record it yet
        time.sleep(1.0)
        own_redis.start()
        restarted = time.time()

        # Live delivery across processes comes back on its own: a message from a reaches b live.
        delivered_after = None
        for attempt in range(100):
            ack = watcher.send(probe_conversation, f"probe {attempt}", timeout=SEND_TIMEOUT)
            if ack["ok"]:
                seq = ack["message"]["seq"]
                try:
                    watched.wait_for("message:new", lambda m, seq=seq: m["seq"] == seq, timeout=0.5)
                    delivered_after = time.time() - restarted
                    break
                except AssertionError:
                    pass
            else:
                time.sleep(0.2)
            if time.time() - restarted > 15:
                break
        assert delivered_after is not None and delivered_after < 10, delivered_after

        # Presence comes back: Redis lost every key; the process holding probe_b's socket puts
        # them back, and probe_a (on the other process) sees probe_b online again.
        def presence_of(user_id: int) -> dict:
            [entry] = watcher.get_json("/api/v1/presence", user_ids=str(user_id))["presence"]
            return entry

        deadline = time.monotonic() + TTL_SECONDS * 3
        while not presence_of(probe_b)["online"]:
            assert time.monotonic() < deadline, "probe_b never shown online again"
            time.sleep(0.2)

        # Whoever left during the outage is recorded as gone (last seen when they left) once
        # Redis is back. The `presence` event may reach nobody on a, if a's subscription is
        # not back yet: a device asked to `resync` asks for presence again.
        def recorded(entry: dict) -> bool:  # (signing in set a last-seen time too: an older one)
            seen = entry["last_seen_at"]
            return seen is not None and parse(seen).timestamp() >= left_at - 1

        deadline = time.monotonic() + TTL_SECONDS * 3
        while not recorded(entry := presence_of(leaver_id)):
            assert time.monotonic() < deadline, f"leaving during the outage was never recorded: {entry}"
            time.sleep(0.2)
        assert entry["online"] is False and parse(entry["last_seen_at"]).timestamp() <= time.time()
        heard = [e for e in watcher.events("presence") if e["user_id"] == leaver_id and not e["online"]]
        assert heard in ([], [entry])

        time.sleep(LOAD_SECONDS)
        for sender in senders:
            sender.finish()
        # Degraded, not down: sends were acknowledged while Redis was away, none failed on the
        # server's side, and no catch-up was refused (app/ratelimit.py, app/presence.py).
        during = [
            message
            for sender in senders
            for message in sender.acked.values()
            if left_at <= parse(message["created_at"]).timestamp() <= restarted
        ]
        assert during, "no send was acknowledged while Redis was away"
        assert [s.send_errors["internal_error"] for s in senders] == [0] * len(senders)
        assert [entry for s in senders for entry in s.failed_syncs] == []

        # Every device was asked to catch up once its process subscribed again.
        assert all(sender.resyncs_handled for sender in senders), [s.resyncs_handled for s in senders]
        # After the restart no REST request failed: the limiter's storage reconnected by itself.
        late = [(when - restarted, status) for s in senders for when, status in s.failed_syncs]
        assert [entry for entry in late if entry[0] > 0] == []
        check_nothing_lost(app, senders)

        # Rate limits work again, counted in the new Redis: the sixth search in a minute is refused.
        statuses = [watched.get("/api/v1/search/messages", q="probe").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]


@pytest.mark.postgresql
def test_a_ban_that_could_not_reach_a_socket_drops_it_once_redis_is_back(
    app, make_user, befriend, database_url, instance_path, tmp_path
):
    """While Redis is away a ban names only the sockets its own process knows; once the processes
    are subscribed again, each drops its sockets whose device session ended meanwhile."""
    alice_id, bob_id, root_id = make_user("alice"), make_user("bob"), make_user("root", is_admin=True)
    befriend(alice_id, bob_id)
    private = RedisServer(tmp_path).start()
    with ExitStack() as stack:
        stack.callback(private.kill)
        env = server_env(
            database_url, instance_path, REDIS_URL=private.url, LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT
        )
        cluster = Cluster(stack, env, tmp_path, 2)
        alice = device_on(stack, cluster, "alice", "a", "websocket")
        bob = device_on(stack, cluster, "bob", "b", "websocket")
        private.kill()
        # Banned from elsewhere (this test's process): nobody can name bob's socket on b.
        with app.app_context():
            moderation.ban_user(root_id, bob_id, "spam")
        time.sleep(0.5)
        assert bob.connected and alice.connected
        private.start()

        bob.wait_disconnected(timeout=15)
        assert alice.connected  # a live session keeps its socket
        with pytest.raises(socketio.exceptions.ConnectionError):
            bob.connect()
