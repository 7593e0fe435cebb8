"""Real-time messaging end to end: gunicorn + geventwebsocket serving Parley, real socket.io
clients over websocket, several devices per user, and (with PostgreSQL and Redis) several
server processes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
import socketio

from app.groups.services import create_group
from tests.cluster import Cluster
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.socket_client import Device

# Long enough for an event that should not come to have arrived if it were coming.
QUIET_SECONDS = 0.5
# Every device here signs in from 127.0.0.1, far more often than the default limit allows.
LOGIN_RATE_LIMIT = "1000 per minute"


@pytest.fixture(scope="module")
def server(app, database_url, instance_path, tmp_path_factory):
    """A live server like `live_server`, except for the login rate limit."""
    env = server_env(database_url, instance_path, LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT)
    live = LiveServer(env, tmp_path_factory.mktemp("realtime") / "server.log")
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def device(server):
    """Sign in a new device of `username` on the server and connect its socket; without a
    username, a visitor who never signed in. Every device is closed at the end of the test."""
    with ExitStack() as stack:

        def make(username: str | None = None, *, connect: bool = True) -> Device:
            password = PASSWORD if username else None
            return stack.enter_context(Device(server.url, username, password, connect=connect))

        yield make


def open_direct(device: Device, peer_id: int) -> int:
    response = device.post("/api/v1/conversations", {"user_id": peer_id})
    assert response.status_code in (200, 201), response.text
    return response.json()["conversation"]["id"]


def summary_of(device: Device, conversation_id: int) -> dict:
    conversations = device.get_json("/api/v1/conversations")["conversations"]
    return next(summary for summary in conversations if summary["id"] == conversation_id)


def send_many(device: Device, conversation_id: int, prefix: str, count: int) -> list[dict]:
    """Send `count` messages one after the other; every ack must be ok."""
    acks = [device.send(conversation_id, f"{prefix} {n}") for n in range(count)]
    assert all(ack["ok"] for ack in acks), [ack for ack in acks if not ack["ok"]]
    return acks


def test_a_socket_without_a_session_is_refused_as_unauthenticated(device):
    visitor = device(connect=False)

    with pytest.raises(socketio.exceptions.ConnectionError):
        visitor.connect()

    assert not visitor.connected
    [refusal] = visitor.events("connect_error")  # socket.io's {"message", "data"}
    assert (refusal.get("data") or {}).get("code") == "unauthenticated", f"refused with {refusal}"


def test_every_device_of_a_user_connects_and_hears_what_the_user_hears(device, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)

    phone, laptop = device("alice"), device("alice")

    assert phone.connected and laptop.connected
    assert phone.user_id == laptop.user_id == alice_id
    assert phone.device_id != laptop.device_id
    conversation_id = open_direct(phone, bob_id)
    assert phone.patch(f"/api/v1/conversations/{conversation_id}", {"pinned": True}).status_code == 200
    for own in (phone, laptop):
        update = own.wait_for("conversation:update")
        assert (update["id"], update["pinned"]) == (conversation_id, True)


def test_a_message_reaches_every_device_of_both_users_exactly_once(device, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice_phone, alice_laptop = device("alice"), device("alice")
    bob_phone, bob_laptop = device("bob"), device("bob")
    conversation_id = open_direct(alice_phone, bob_id)

    ack = alice_phone.send(conversation_id, "hello bob", client_msg_id="hello-0001")

    assert ack["ok"] is True
    assert ack["duplicate"] is False
    message = ack["message"]
    assert message["seq"] == 1
    assert message["conversation_id"] == conversation_id
    assert message["sender"]["id"] == alice_id
    assert message["body"] == {"type": "txt", "msg": "hello bob"}
    assert message["client_msg_id"] == "hello-0001"
    everyone = [alice_phone, alice_laptop, bob_phone, bob_laptop]
    for receiver in everyone:
        receiver.wait_for("message:new")
    time.sleep(QUIET_SECONDS)
    for receiver in everyone:
        assert receiver.events("message:new") == [message]


def test_a_resent_client_msg_id_returns_the_original_and_delivers_nothing(device, make_user, befriend):
    bob_id = make_user("bob")
    befriend(make_user("alice"), bob_id)
    alice, bob = device("alice"), device("bob")
    conversation_id = open_direct(alice, bob_id)
    first = alice.send(conversation_id, "only once", client_msg_id="resend-0001")
    bob.wait_for("message:new")

    again = alice.send(conversation_id, "only once", client_msg_id="resend-0001")

    assert again == {"ok": True, "message": first["message"], "duplicate": True}
    time.sleep(QUIET_SECONDS)
    for receiver in (alice, bob):
        assert receiver.events("message:new") == [first["message"]]
    following = alice.send(conversation_id, "next one")
    assert following["message"]["seq"] == first["message"]["seq"] + 1 == 2


def test_concurrent_senders_in_a_group_get_unique_seqs_delivered_in_order(app, device, make_user, befriend):
    senders, per_sender = 10, 100
    usernames = [f"sender{n}" for n in range(senders)] + ["listener"]
    owner_id, *others = [make_user(name) for name in usernames]
    for other in others:
        befriend(owner_id, other)  # a group starts with the owner's friends
    with app.app_context():
        conversation_id = create_group(owner_id, "Busy group", others).conversation_id
    members = [device(name) for name in usernames]
    deadline = time.monotonic() + 60

    def send_all(sender: Device, index: int) -> list[dict]:
        acks = []
        for n in range(per_sender):
            assert time.monotonic() < deadline, f"sender {index} still sending after 60 s"
            acks.append(sender.send(conversation_id, f"from {index}: {n}"))
        return acks

    with ThreadPoolExecutor(max_workers=senders) as pool:
        per_sender_acks = list(pool.map(send_all, members[:senders], range(senders)))

    acks = [ack for sent in per_sender_acks for ack in sent]
    assert all(ack["ok"] and not ack["duplicate"] for ack in acks), [a for a in acks if not a["ok"]][:3]
    sent = {ack["message"]["seq"]: ack["message"] for ack in acks}
    expected_seqs = list(range(2, senders * per_sender + 2))  # seq 1 is the "group created" message
    assert sorted(ack["message"]["seq"] for ack in acks) == expected_seqs
    for sent_by_one in per_sender_acks:
        seqs = [ack["message"]["seq"] for ack in sent_by_one]
        assert seqs == sorted(seqs)
    for member in members:
        member.wait_until(
            lambda member=member: len(member.events("message:new")) >= len(expected_seqs),
            timeout=max(deadline - time.monotonic(), 1),
            what=f"all messages on {member.user_id}",
        )
    time.sleep(QUIET_SECONDS)
    for member in members:
        received = member.events("message:new")
        assert [message["seq"] for message in received] == expected_seqs
        assert received == [sent[seq] for seq in expected_seqs]


def test_unread_counts_and_reads_sync_across_devices_and_to_the_sender(device, make_user, befriend):
    bob_id = make_user("bob")
    befriend(make_user("alice"), bob_id)
    alice = device("alice")
    bob_phone, bob_laptop = device("bob"), device("bob")
    conversation_id = open_direct(alice, bob_id)
    last = send_many(alice, conversation_id, "unread", 3)[-1]["message"]
    bob_laptop.wait_for("message:new", lambda message: message["seq"] == 3)

    summary = summary_of(bob_phone, conversation_id)
    assert (summary["last_seq"], summary["read_seq"], summary["unread"]) == (3, 0, 3)
    assert summary["last_message"]["id"] == last["id"]
    assert summary_of(alice, conversation_id)["unread"] == 0

    assert bob_phone.read(conversation_id, 2) == {
        "ok": True,
        "conversation_id": conversation_id,
        "read_seq": 2,
        "unread": 1,
        "unread_mentions": 0,
    }
    assert summary_of(bob_laptop, conversation_id)["unread"] == 1
    assert bob_phone.read(conversation_id, 3)["unread"] == 0

    read_state = {"conversation_id": conversation_id, "user_id": bob_id}
    bob_laptop.wait_for("conversation:read", lambda event: event["read_seq"] == 3)
    assert bob_laptop.events("conversation:read") == [
        {**read_state, "read_seq": 2, "unread": 1, "unread_mentions": 0},
        {**read_state, "read_seq": 3, "unread": 0, "unread_mentions": 0},
    ]
    alice.wait_for("receipt:read", lambda event: event["read_seq"] == 3)
    assert alice.events("receipt:read") == [{**read_state, "read_seq": 2}, {**read_state, "read_seq": 3}]
    time.sleep(QUIET_SECONDS)
    assert alice.events("conversation:read") == []
    assert bob_phone.events("receipt:read") == bob_laptop.events("receipt:read") == []
    assert summary_of(bob_laptop, conversation_id)["unread"] == 0


def test_presence_follows_a_users_first_and_last_device(device, make_user, befriend):
    bob_id = make_user("bob")
    befriend(make_user("alice"), bob_id)
    alice = device("alice")
    conversation_id = open_direct(alice, bob_id)

    bob_phone = device("bob")
    online = alice.wait_for("presence", lambda event: event["user_id"] == bob_id)
    assert online == {"user_id": bob_id, "online": True, "last_seen_at": None}
    assert summary_of(alice, conversation_id)["online"] is True
    bob_laptop = device("bob")
    bob_phone.disconnect()
    time.sleep(QUIET_SECONDS)
    assert [event for event in alice.events("presence") if event["user_id"] == bob_id] == [online]

    bob_laptop.disconnect()
    offline = alice.wait_for("presence", lambda event: event["user_id"] == bob_id and not event["online"])
    last_seen = datetime.fromisoformat(offline["last_seen_at"])
    assert last_seen.tzinfo is not None
    assert timedelta(0) <= datetime.now(UTC) - last_seen < timedelta(seconds=30)
    assert summary_of(alice, conversation_id)["online"] is False


class Replica:
    """What a client keeps of its conversations: messages by (conversation, seq), and the state
    of each conversation, merged from REST summaries and live `message:new` events."""

    def __init__(self, user_id: int, listing: dict):
        """Start from a `GET /conversations` answer, keeping its cursor."""
        self.user_id = user_id
        self.messages: dict[tuple[int, int], dict] = {}
        self.conversations: dict[int, dict] = {}
        self.cursor: str = listing["cursor"]
        for summary in listing["conversations"]:
            self.apply_summary(summary)

    @staticmethod
    def state(summary: dict) -> dict:
        """The fields of a summary that a client's copy must agree on."""
        last = summary["last_message"]
        return {
            "id": summary["id"],
            "last_seq": summary["last_seq"],
            "read_seq": summary["read_seq"],
            "unread": summary["unread"],
            "last_message_id": last["id"] if last else None,
        }

    def apply_summary(self, summary: dict) -> None:
        self.conversations[summary["id"]] = self.state(summary)

    def apply_message(self, message: dict) -> None:
        key = (message["conversation_id"], message["seq"])
        known = self.messages.setdefault(key, message)
        assert known == message, f"two different messages at {key}"
        state = self.conversations[message["conversation_id"]]
        if message["seq"] > state["last_seq"]:
            state["last_seq"], state["last_message_id"] = message["seq"], message["id"]
            if message["sender"]["id"] == self.user_id:
                state["read_seq"] = message["seq"]
            state["unread"] = state["last_seq"] - state["read_seq"]

    def replay_sync(self, device: Device, limit: int, max_pages: int = 100) -> int:
        """Apply `/sync` pages from the kept cursor until `has_more` is false; returns how many
        pages it took."""
        for pages in range(1, max_pages + 1):
            page = device.get_json("/api/v1/sync", cursor=self.cursor, limit=limit)
            assert len(page["messages"]) <= limit
            for summary in page["conversations"]:
                self.apply_summary(summary)
            for message in page["messages"]:
                self.apply_message(message)
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return pages
        raise AssertionError(f"sync still had more after {max_pages} pages")


def test_a_reconnecting_device_catches_up_through_sync_and_live_events(device, make_user, befriend):
    bob_id = make_user("bob")
    befriend(make_user("alice"), bob_id)
    alice, bob_laptop = device("alice"), device("bob")
    conversation_id = open_direct(alice, bob_id)
    replica = Replica(bob_id, bob_laptop.get_json("/api/v1/conversations"))
    bob_laptop.disconnect()

    send_many(alice, conversation_id, "while away", 30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        live_sends = pool.submit(send_many, alice, conversation_id, "live", 20)
        bob_laptop.connect()
        pages = replica.replay_sync(bob_laptop, limit=7)
        live_sends.result(timeout=30)

    everything = {(conversation_id, seq) for seq in range(1, 51)}

    def caught_up() -> bool:
        live = {(message["conversation_id"], message["seq"]) for message in bob_laptop.events("message:new")}
        return everything <= live | replica.messages.keys()

    bob_laptop.wait_until(caught_up, timeout=10, what="every message by sync or live")
    for message in bob_laptop.events("message:new"):
        replica.apply_message(message)

    assert pages > 1
    assert sorted(replica.messages) == sorted(everything)
    texts = [replica.messages[(conversation_id, seq)]["body"]["msg"] for seq in range(1, 51)]
    assert texts == [f"while away {n}" for n in range(30)] + [f"live {n}" for n in range(20)]
    fresh = bob_laptop.get_json("/api/v1/conversations")["conversations"]
    assert replica.conversations == {summary["id"]: Replica.state(summary) for summary in fresh}
    assert replica.conversations[conversation_id]["unread"] == 50


def test_a_revoked_device_loses_its_socket_and_cannot_reconnect(device, make_user):
    make_user("bob")
    phone, laptop = device("bob"), device("bob")
    revoked_cookie = laptop.cookie

    assert phone.delete(f"/api/v1/auth/devices/{laptop.device_id}").status_code == 204

    laptop.wait_disconnected(timeout=1.5)
    with pytest.raises(socketio.exceptions.ConnectionError):
        laptop.connect(cookie=revoked_cookie)
    assert laptop.get("/api/v1/auth/me").status_code == 401
    assert phone.connected


def test_signing_out_drops_the_socket_and_the_old_cookie_cannot_reconnect(device, make_user):
    make_user("bob")
    phone, laptop = device("bob"), device("bob")
    old_cookie = laptop.cookie

    assert laptop.post("/api/v1/auth/logout", {}).status_code == 204

    laptop.wait_disconnected(timeout=1.5)
    with pytest.raises(socketio.exceptions.ConnectionError):
        laptop.connect(cookie=old_cookie)
    assert phone.connected


def test_typing_reaches_the_other_member_but_not_the_typists_devices(device, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice_phone, alice_laptop, bob = device("alice"), device("alice"), device("bob")
    conversation_id = open_direct(alice_phone, bob_id)

    assert alice_phone.typing(conversation_id) == {"ok": True, "throttled": False}
    assert alice_phone.typing(conversation_id) == {"ok": True, "throttled": True}

    assert bob.wait_for("typing") == {
        "conversation_id": conversation_id,
        "user_id": alice_id,
        "nickname": "alice",
    }
    time.sleep(QUIET_SECONDS)
    assert len(bob.events("typing")) == 1
    assert alice_phone.events("typing") == alice_laptop.events("typing") == []


@pytest.mark.postgresql
def test_two_processes_share_delivery_presence_receipts_and_revocation(
    make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    env = server_env(database_url, instance_path, REDIS_URL=redis_url, LOGIN_RATE_LIMIT=LOGIN_RATE_LIMIT)
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path)
        # Sockets close before their servers stop (the ExitStack unwinds in reverse).
        alice = stack.enter_context(cluster.device("a", "alice"))
        bob_phone = stack.enter_context(cluster.device("a", "bob", connect=False))
        conversation_id = open_direct(alice, bob_id)
        bob_laptop = stack.enter_context(cluster.device("b", "bob"))

        online = alice.wait_for("presence", lambda event: event["user_id"] == bob_id)
        assert online == {"user_id": bob_id, "online": True, "last_seen_at": None}
        assert summary_of(alice, conversation_id)["online"] is True

        to_bob = alice.send(conversation_id, "from process A")["message"]
        assert bob_laptop.wait_for("message:new") == to_bob
        assert bob_laptop.read(conversation_id, 1)["read_seq"] == 1
        receipt = alice.wait_for("receipt:read")
        assert receipt == {"conversation_id": conversation_id, "user_id": bob_id, "read_seq": 1}

        to_alice = bob_laptop.send(conversation_id, "from process B")["message"]
        assert alice.wait_for("message:new", lambda message: message["seq"] == 2) == to_alice
        assert alice.read(conversation_id, 2)["read_seq"] == 2
        receipt = bob_laptop.wait_for("receipt:read")
        assert receipt == {"conversation_id": conversation_id, "user_id": alice_id, "read_seq": 2}

        assert bob_phone.delete(f"/api/v1/auth/devices/{bob_laptop.device_id}").status_code == 204
        bob_laptop.wait_disconnected(timeout=2)
        with pytest.raises(socketio.exceptions.ConnectionError):
            bob_laptop.connect()
        offline = alice.wait_for("presence", lambda event: event["user_id"] == bob_id and not event["online"])
        assert offline["last_seen_at"] is not None


def test_a_burst_from_one_device_is_stored_in_the_order_it_was_sent(device, make_user, befriend):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    alice = device("alice")
    conversation_id = open_direct(alice, bob_id)
    acks: dict[int, dict] = {}
    all_acked = threading.Event()

    def acked(index: int, ack: dict) -> None:
        acks[index] = ack
        if len(acks) == 40:
            all_acked.set()

    for index in range(40):  # no waiting for acks in between
        alice.sio.emit(
            "message:send",
            {
                "conversation_id": conversation_id,
                "client_msg_id": f"burst-{index:04d}",
                "body": {"type": "txt", "msg": f"burst {index}"},
            },
            callback=lambda ack, index=index: acked(index, ack),
        )
    assert all_acked.wait(20)
    assert [acks[index]["message"]["seq"] for index in range(40)] == list(range(1, 41))
