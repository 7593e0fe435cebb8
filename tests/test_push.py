"""Web Push against a local fake push service (tests/fake_push.py) that checks the VAPID JWT and
decrypts every push with the key the test made for the subscription, as a browser would: what is
pushed, to which devices, collapsed per conversation, what the push service's answers do, the
subscription routes and their SSRF checks, and (on a live server) that a hanging push service
does not slow sends."""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack

import gevent
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from app.errors import ApiError
from app.extensions import db
from app.models import Group, PushSubscription
from app.push import sender, services
from config import Config, ConfigError
from tests.chat_helpers import connect, new_client_msg_id
from tests.cluster import Cluster
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.fake_push import FakePushService, b64url, unb64url
from tests.socket_client import Device


@pytest.fixture(scope="module")
def fake():
    service = FakePushService().start()
    yield service
    service.stop()


@pytest.fixture
def push(app, fake, monkeypatch):
    """The fake service is the one host allowed over plain http on a loopback address."""
    fake.reset()
    monkeypatch.setitem(app.config, "PUSH_ALLOWED_HOSTS", (fake.host,))
    yield fake
    settle(app)


def settle(app, timeout: float = 10.0) -> None:
    """Let this process's push worker finish what it was given (it runs in greenlets)."""
    worker = sender.worker(app)
    deadline = time.monotonic() + timeout
    while not worker.idle():
        assert time.monotonic() < deadline, "the push worker did not settle"
        gevent.sleep(0.005)


def subscribe(client, subscription: dict):
    return client.post("/api/v1/push/subscriptions", json=subscription)


def subscribed(client, fake: FakePushService) -> dict:
    subscription = fake.subscription()
    response = subscribe(client, subscription)
    assert response.status_code == 201, response.get_json()
    return subscription


def send(client, conversation_id: int, text: str = "hello", **extras) -> dict:
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": new_client_msg_id(), "body": {"type": "txt", "msg": text}, **extras},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def subscription_rows(app) -> list[PushSubscription]:
    with app.app_context():
        rows = list(db.session.scalars(select(PushSubscription).order_by(PushSubscription.id)))
        db.session.expunge_all()
        return rows


@pytest.fixture
def direct(app, make_user, login, befriend):
    """Alice and Bob, friends, with their direct conversation; Bob's browser is closed (signed
    in, no socket)."""
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice, bob = login("alice"), login("bob")
    opened = alice.post("/api/v1/conversations", json={"user_id": bob_id})
    return alice, bob, opened.get_json()["conversation"]["id"], bob_id


@pytest.fixture
def team(make_user, login, befriend):
    """A group "Team" of Alice (owner), Bob and Carol, each signed in without a socket."""
    ids = {name: make_user(name, nickname=name.title()) for name in ("alice", "bob", "carol")}
    for name in ("bob", "carol"):
        befriend(ids["alice"], ids[name])
    clients = {name: login(name) for name in ids}
    created = clients["alice"].post(
        "/api/v1/groups", json={"name": "Team", "member_ids": [ids["bob"], ids["carol"]]}
    )
    assert created.status_code == 201, created.get_json()
    return clients, ids, created.get_json()["group"]["conversation_id"]


# --- delivery ----------------------------------------------------------------------------------


def test_a_message_is_pushed_signed_and_encrypted_to_an_offline_device(app, push, direct):
    alice, bob, conversation_id, _ = direct
    subscription = subscribed(bob, push)
    send(alice, conversation_id, "晚上七点见 — see you at seven")
    settle(app)
    [delivered] = push.answered()
    assert delivered.status == 201, delivered.error  # the VAPID JWT checked out, the body decrypted
    assert delivered.token == push.token_of(subscription)
    assert delivered.payload == {
        "conversation_id": conversation_id,
        "title": "Alice",
        "body": "晚上七点见 — see you at seven",
        "tag": f"conversation-{conversation_id}",
        "url": f"/#/chat/{conversation_id}",
    }
    assert delivered.headers["topic"] == f"conversation-{conversation_id}"
    assert delivered.headers["ttl"] == str(sender.TTL_SECONDS)
    assert delivered.headers["urgency"] == "normal"
    assert delivered.headers["content-encoding"] == "aes128gcm"
    # The push was signed with the key browsers subscribe with.
    key = delivered.headers["authorization"].split("k=", 1)[1].split(",")[0].strip()
    assert key == bob.get("/api/v1/push/key").get_json()["public_key"]
    [status] = bob.get("/api/v1/push/subscriptions").get_json()["subscriptions"]
    assert status["last_success_at"] is not None


def test_the_sender_and_a_message_in_a_group_are_named(app, push, team):
    clients, _, conversation_id = team
    bob_subscription = subscribed(clients["bob"], push)
    alice_subscription = subscribed(clients["alice"], push)
    send(clients["alice"], conversation_id, "x" * 150)
    settle(app)
    assert push.received(alice_subscription) == []  # never to the sender's own devices
    [delivered] = push.received(bob_subscription)
    assert delivered.payload["title"] == "Team"
    assert delivered.payload["body"] == "Alice: " + "x" * 99 + "…"


def test_private_previews_push_only_new_message(app, push, direct):
    alice, bob, conversation_id, _ = direct
    subscribed(bob, push)
    changed = bob.patch("/api/v1/auth/me", json={"notification_previews": False})
    assert changed.status_code == 200
    assert changed.get_json()["user"]["notification_previews"] is False
    send(alice, conversation_id, "the secret plan")
    settle(app)
    [delivered] = push.received()
    assert (delivered.payload["title"], delivered.payload["body"]) == ("Parley", "New message")
    assert "secret" not in str(delivered.payload)


def test_a_connected_device_gets_no_push_and_the_users_offline_one_does(app, push, direct, login):
    alice, bob_laptop, conversation_id, _ = direct
    laptop = subscribed(bob_laptop, push)
    bob_phone = connect(app, login("bob"))
    phone = subscribed(bob_phone.http, push)
    send(alice, conversation_id, "hi")
    settle(app)
    assert [pushed.token for pushed in push.received()] == [push.token_of(laptop)]
    assert push.received(phone) == []
    assert bob_phone.received("message:new")  # the connected device had the message live
    bob_phone.socket.disconnect()
    send(alice, conversation_id, "now both are closed")
    settle(app)
    assert len(push.received(phone)) == 1


def test_a_muted_conversation_pushes_only_mentions(app, push, team):
    clients, ids, conversation_id = team
    bob = subscribed(clients["bob"], push)
    muted = clients["bob"].patch(f"/api/v1/conversations/{conversation_id}", json={"muted": True})
    assert muted.status_code == 200, muted.get_json()
    send(clients["alice"], conversation_id, "lunch?")
    settle(app)
    assert push.received(bob) == []
    send(clients["alice"], conversation_id, "@Bob lunch?", mentions=[ids["bob"]])
    settle(app)
    [delivered] = push.received(bob)
    assert delivered.payload["body"] == "Alice: @Bob lunch?"
    assert delivered.headers["urgency"] == "high"
    send(clients["alice"], conversation_id, "@all lunch!", mention_all=True)
    settle(app)
    assert len(push.received(bob)) == 2


def test_a_blocked_sender_pushes_nothing(app, push, team):
    clients, ids, conversation_id = team
    bob, carol = subscribed(clients["bob"], push), subscribed(clients["carol"], push)
    assert clients["bob"].post("/api/v1/blocks", json={"user_id": ids["alice"]}).status_code == 204
    send(clients["alice"], conversation_id, "hello team")
    settle(app)
    assert push.received(bob) == []
    assert len(push.received(carol)) == 1


def open_direct(clients: dict, ids: dict, name: str, other: str) -> int:
    opened = clients[name].post("/api/v1/conversations", json={"user_id": ids[other]})
    return opened.get_json()["conversation"]["id"]


def test_pushes_carry_one_topic_per_conversation(app, push, team):
    clients, ids, group_id = team
    direct_id = open_direct(clients, ids, "alice", "bob")
    subscribed(clients["bob"], push)
    send(clients["alice"], direct_id, "one")
    send(clients["alice"], direct_id, "two")
    send(clients["alice"], group_id, "three")
    settle(app)
    topics = [pushed.headers["topic"] for pushed in push.received()]
    assert sorted(topics) == sorted([f"conversation-{direct_id}"] * 2 + [f"conversation-{group_id}"])
    # RFC 8030: at most 32 characters of the base64url alphabet.
    assert all(len(topic) <= 32 and set(topic) <= set(services._B64URL) - {"="} for topic in topics)


def test_a_forward_pushes_its_target(app, push, team):
    clients, ids, group_id = team
    alice, direct_id = clients["alice"], open_direct(clients, ids, "alice", "bob")
    carol = subscribed(clients["carol"], push)
    message = send(alice, direct_id, "pass this on")
    forwarded = alice.post(
        "/api/v1/messages/forward",
        json={
            "conversation_id": direct_id,
            "seqs": [message["seq"]],
            "mode": "separate",
            "targets": [{"conversation_id": group_id, "client_msg_id": new_client_msg_id()}],
        },
    )
    assert forwarded.status_code == 200, forwarded.get_json()
    settle(app)
    [delivered] = push.received(carol)
    assert delivered.payload["body"] == "Alice: pass this on"


# --- what the push service answers -------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_an_expired_subscription_is_removed(app, push, direct, status):
    alice, bob, conversation_id, _ = direct
    subscribed(bob, push)
    push.status = status
    send(alice, conversation_id, "anyone there?")
    settle(app)
    assert [answer.status for answer in push.answered()] == [status]
    assert subscription_rows(app) == []
    assert bob.get("/api/v1/push/subscriptions").get_json()["subscriptions"] == []


def alice_id(client) -> int:
    return client.get("/api/v1/auth/me").get_json()["user"]["id"]


def test_a_burst_to_one_device_is_its_first_push_and_then_its_latest(app, push, direct):
    alice, bob, conversation_id, _ = direct
    subscribed(bob, push)
    sent = send(alice, conversation_id, "burst 0")
    settle(app)
    worker = sender.worker(app)
    [first] = push.answered()
    # Four more messages reach the worker at once (a burst, planned together).
    for number in range(1, 5):
        body = {"type": "txt", "msg": f"burst {number}"}
        worker.submit(
            sender.PushJob(
                sent["id"],
                conversation_id,
                sent["seq"],
                alice_id(alice),
                "Alice",
                True,
                "txt",
                body,
                frozenset(),
                False,
            )
        )
    settle(app)
    bodies = [answer.payload["body"] for answer in push.answered()]
    assert bodies == ["burst 0", "burst 1", "burst 4"]  # one in flight, then the newest waiting
    assert worker.coalesced >= 2 and worker.in_flight == {}
    assert first.payload["body"] == "burst 0"


def test_a_member_gets_no_push_of_a_message_sent_before_they_joined(app, push, direct):
    alice, bob, conversation_id, _ = direct
    subscribed(bob, push)
    send(alice, conversation_id, "before")
    worker = sender.worker(app)
    [job] = list(worker.jobs)
    worker.jobs[0] = dataclasses.replace(job, seq=0)  # as if bob had joined after it
    settle(app)
    assert push.answered() == []


def test_failures_are_counted_and_the_tenth_in_a_row_removes_the_subscription(app, push, direct):
    alice, bob, conversation_id, _ = direct
    subscribed(bob, push)
    push.status = 429  # slow down: not a failure (a burst must not cost the subscription)
    send(alice, conversation_id, "zero")
    settle(app)
    [row] = subscription_rows(app)
    assert row.failures == 0 and len(push.answered()) == 1
    push.status = 503
    send(alice, conversation_id, "one")
    settle(app)
    [row] = subscription_rows(app)
    assert row.failures == 1  # counted, not retried
    assert len(push.answered()) == 2
    push.status = 201
    send(alice, conversation_id, "two")
    settle(app)
    [row] = subscription_rows(app)
    assert row.failures == 0 and row.last_success_at is not None
    push.status = 503
    for number in range(sender.MAX_FAILURES):
        send(alice, conversation_id, f"try {number}")
        settle(app)
    assert subscription_rows(app) == []


def test_a_full_queue_drops_the_oldest_jobs(app, push, monkeypatch, caplog):
    worker = sender.worker(app)
    monkeypatch.setattr(worker, "size", 2)
    dropped = worker.dropped

    def job(message_id: int) -> sender.PushJob:
        return sender.PushJob(
            message_id, 999_999, 1, 1, "Alice", True, "txt", {"type": "txt", "msg": "x"}, frozenset(), False
        )

    monkeypatch.setattr(sender, "DROP_LOG_SECONDS", 0)
    for message_id in (1, 2, 3):
        worker.submit(job(message_id))
    assert [queued.message_id for queued in worker.jobs] == [2, 3]
    assert worker.dropped == dropped + 1
    assert "push queue full" in caplog.text


# --- revoked devices ---------------------------------------------------------------------------


def test_a_revoked_device_loses_its_subscription_and_gets_nothing(app, push, direct, login):
    alice, bob_laptop, conversation_id, bob_id = direct
    laptop = subscribed(bob_laptop, push)
    bob_phone = login("bob")
    phone = subscribed(bob_phone, push)
    laptop_id = bob_laptop.get("/api/v1/auth/me").get_json()["device"]["id"]
    assert bob_phone.delete(f"/api/v1/auth/devices/{laptop_id}").status_code == 204
    assert [row.device_session_id for row in subscription_rows(app)] != [laptop_id]
    assert len(subscription_rows(app)) == 1
    send(alice, conversation_id, "after the revocation")
    settle(app)
    assert push.received(laptop) == []
    assert len(push.received(phone)) == 1
    # Signing out (here, and everywhere else) removes the rest.
    assert bob_phone.post("/api/v1/auth/logout", json={}).status_code == 204
    assert subscription_rows(app) == []


def test_signing_out_other_devices_removes_their_subscriptions(app, push, direct, login):
    _, bob_laptop, _, _ = direct
    subscribed(bob_laptop, push)
    bob_phone = login("bob")
    subscribed(bob_phone, push)
    phone_id = bob_phone.get("/api/v1/auth/me").get_json()["device"]["id"]
    assert bob_phone.post("/api/v1/auth/devices/sign-out-others", json={}).status_code == 200
    assert [row.device_session_id for row in subscription_rows(app)] == [phone_id]


# --- the routes --------------------------------------------------------------------------------


def test_the_key_is_the_servers_vapid_public_key(app, push, direct):
    _, bob, _, _ = direct
    key = bob.get("/api/v1/push/key").get_json()["public_key"]
    point = unb64url(key)
    assert len(point) == 65 and point[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert app.test_client().get("/api/v1/push/key").status_code == 401


def test_one_subscription_per_device_session_replaced_and_deleted(app, push, direct, login):
    _, bob, _, bob_id = direct
    first = push.subscription()
    created = subscribe(bob, first)
    assert created.status_code == 201
    shown = created.get_json()["subscription"]
    assert set(shown) == {"device_id", "device_name", "current", "created_at", "last_success_at"}
    assert shown["current"] is True and shown["last_success_at"] is None
    second = subscribed(bob, push)
    [row] = subscription_rows(app)
    assert row.endpoint == second["endpoint"] and row.user_id == bob_id
    listed = bob.get("/api/v1/push/subscriptions").get_json()["subscriptions"]
    assert [item["device_id"] for item in listed] == [shown["device_id"]]
    assert bob.delete("/api/v1/push/subscriptions").status_code == 204
    assert subscription_rows(app) == []
    assert bob.delete("/api/v1/push/subscriptions").status_code == 204  # nothing left: fine


def test_an_endpoint_belongs_to_the_session_that_registered_it_last(app, push, direct, login):
    _, bob, _, _ = direct
    shared = subscribed(bob, push)
    alice_same_browser = login("alice")
    assert subscribe(alice_same_browser, shared).status_code == 201
    [row] = subscription_rows(app)
    assert row.user_id == alice_same_browser.get("/api/v1/auth/me").get_json()["user"]["id"]


def _with(subscription: dict, **changes) -> dict:
    keys = {**subscription["keys"], **changes.pop("keys", {})}
    return {**subscription, **changes, "keys": keys}


def _bad_point() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = bytearray(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    point[-1] ^= 1  # off the curve
    return b64url(bytes(point))


BAD = {
    "http": lambda s: _with(s, endpoint="http://push.example.com/x"),
    "loopback": lambda s: _with(s, endpoint="https://127.0.0.1/push/x"),
    "private": lambda s: _with(s, endpoint="https://10.1.2.3/push/x"),
    "link-local": lambda s: _with(s, endpoint="https://169.254.169.254/latest/meta-data"),
    "ipv6 loopback": lambda s: _with(s, endpoint="https://[::1]/push/x"),
    "ipv4-mapped": lambda s: _with(s, endpoint="https://[::ffff:192.168.0.1]/push/x"),
    "a name for loopback": lambda s: _with(s, endpoint="https://localhost/push/x"),
    "unresolvable": lambda s: _with(s, endpoint="https://no-such-host.invalid/push/x"),
    "credentials": lambda s: _with(s, endpoint="https://user:pw@push.example.com/x"),
    "not a url": lambda s: _with(s, endpoint="push.example.com/x"),
    "too long": lambda s: _with(s, endpoint="https://push.example.com/" + "a" * 1000),
    "the allowed host over another port": lambda s: _with(
        s, endpoint=s["endpoint"].replace(s["endpoint"].split("/")[2], "127.0.0.1:1")
    ),
    "short p256dh": lambda s: _with(s, keys={"p256dh": b64url(b"\x04" + b"\x01" * 32)}),
    "p256dh off the curve": lambda s: _with(s, keys={"p256dh": _bad_point()}),
    "p256dh not base64url": lambda s: _with(s, keys={"p256dh": "!!" + s["keys"]["p256dh"][2:]}),
    "short auth": lambda s: _with(s, keys={"auth": b64url(b"x" * 15)}),
    "auth not base64url": lambda s: _with(s, keys={"auth": "*" * 22}),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_subscription_is_refused_and_nothing_is_stored(app, push, direct, case):
    _, bob, _, _ = direct
    response = subscribe(bob, BAD[case](push.subscription()))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_subscription"
    assert subscription_rows(app) == []


def test_a_malformed_body_is_invalid_input(app, push, direct):
    _, bob, _, _ = direct
    response = subscribe(bob, {"endpoint": push.subscription()["endpoint"]})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert subscription_rows(app) == []


def test_public_endpoints_are_accepted_without_the_allow_list(app, monkeypatch):
    """A push service on a public https host passes (the name resolves to public addresses)."""
    monkeypatch.setitem(app.config, "PUSH_ALLOWED_HOSTS", ())
    monkeypatch.setattr(services, "_resolve", lambda host, port: ["142.250.72.10"])
    with app.app_context():
        services.check_endpoint("https://fcm.googleapis.com/fcm/send/abc")
        services.check_endpoint("https://8.8.8.8/push")
        monkeypatch.setattr(services, "_resolve", lambda host, port: ["142.250.72.10", "10.0.0.1"])
        with pytest.raises(ApiError) as refused:
            services.check_endpoint("https://rebinding.example/push")
        assert refused.value.code == "invalid_subscription"


def test_the_push_routes_need_a_session(client):
    assert client.get("/api/v1/push/subscriptions").status_code == 401
    assert client.post("/api/v1/push/subscriptions", json={}).status_code == 401
    assert client.delete("/api/v1/push/subscriptions").status_code == 401


# --- settings ----------------------------------------------------------------------------------


def _env(tmp_path, **extra) -> dict:
    return {"PARLEY_ENV": "testing", "SECRET_KEY": "x" * 20, "INSTANCE_PATH": str(tmp_path), **extra}


def test_the_vapid_key_is_generated_once_and_kept(tmp_path):
    first = Config.from_env(_env(tmp_path)).VAPID_PRIVATE_KEY
    assert (tmp_path / "vapid_private.pem").stat().st_mode & 0o077 == 0
    assert first == Config.from_env(_env(tmp_path)).VAPID_PRIVATE_KEY
    assert "BEGIN PRIVATE KEY" in first


def test_a_configured_vapid_key_is_used_as_pem_or_raw(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    from_raw = Config.from_env(_env(tmp_path, VAPID_PRIVATE_KEY=raw)).VAPID_PRIVATE_KEY
    from_pem = Config.from_env(_env(tmp_path, VAPID_PRIVATE_KEY=from_raw)).VAPID_PRIVATE_KEY
    assert from_raw == from_pem
    assert not (tmp_path / "vapid_private.pem").exists()
    for bad in (
        "not-a-key",
        b64url(b"x" * 31),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ):
        with pytest.raises(ConfigError, match="VAPID_PRIVATE_KEY"):
            Config.from_env(_env(tmp_path, VAPID_PRIVATE_KEY=bad))


def test_push_settings_are_checked(tmp_path):
    config = Config.from_env(_env(tmp_path, PUBLIC_BASE_URL="https://chat.example.com"))
    assert config.VAPID_SUBJECT == "https://chat.example.com"
    assert Config.from_env(_env(tmp_path)).VAPID_SUBJECT == "mailto:admin@localhost"
    allowed = Config.from_env(_env(tmp_path, PUSH_ALLOWED_HOSTS="push.lan, 10.0.0.5:8443"))
    assert allowed.PUSH_ALLOWED_HOSTS == ("push.lan", "10.0.0.5:8443")
    for name, value in (
        ("VAPID_SUBJECT", "admin@example.com"),
        ("PUSH_ALLOWED_HOSTS", "https://push.lan"),
        ("PUSH_TIMEOUT_SECONDS", "0"),
    ):
        with pytest.raises(ConfigError, match=name):
            Config.from_env(_env(tmp_path, **{name: value}))


# --- a live server: a hanging push service delays no send ----------------------------------------

LIVE_PUSH_TIMEOUT = 2


@pytest.fixture(scope="module")
def live(app, fake, database_url, instance_path, tmp_path_factory):
    env = server_env(
        database_url,
        instance_path,
        LOGIN_RATE_LIMIT="1000 per minute",
        PUSH_ALLOWED_HOSTS=fake.host,
        PUSH_TIMEOUT_SECONDS=str(LIVE_PUSH_TIMEOUT),
        PUSH_WORKERS="2",
    )
    server = LiveServer(env, tmp_path_factory.mktemp("push") / "server.log")
    try:
        yield server.start()
    finally:
        server.stop()


def test_a_hanging_push_service_does_not_delay_sends(app, live, fake, make_user, befriend):
    fake.reset()
    befriend(make_user("alice"), make_user("bob"))
    with ExitStack() as stack:
        alice = stack.enter_context(Device(live.url, "alice", PASSWORD))
        bob = stack.enter_context(Device(live.url, "bob", PASSWORD, connect=False))
        stack.callback(fake.release)
        assert bob.post("/api/v1/push/subscriptions", fake.subscription()).status_code == 201
        conversation_id = alice.post("/api/v1/conversations", {"user_id": bob.user_id}).json()[
            "conversation"
        ]["id"]
        fake.hang = True
        durations = []
        for number in range(4):
            started = time.monotonic()
            ack = alice.send(conversation_id, f"message {number}")
            durations.append(time.monotonic() - started)
            assert ack["ok"], ack
        # Every ack came back at once, while the push service held the pushes.
        assert max(durations) < LIVE_PUSH_TIMEOUT / 4, durations
        deadline = time.monotonic() + 5
        while fake.arrived == 0:  # the first push reached the service, which holds it
            assert time.monotonic() < deadline, "no push reached the push service"
            time.sleep(0.02)
        assert fake.answered() == []
        # The held pushes time out and count as failures; the subscription stays.
        deadline = time.monotonic() + 4 * LIVE_PUSH_TIMEOUT + 5
        while True:
            [row] = subscription_rows(app)
            if row.failures >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert row.failures >= 2
        fake.release()
        fake.hang = False
        assert alice.send(conversation_id, "after")["ok"]
        # The first push, then the newest of those that waited behind it (one at a time to a
        # subscription), then "after".
        delivered = fake.wait_for(3, timeout=4 * LIVE_PUSH_TIMEOUT + 5)
        assert any(pushed.payload and pushed.payload["body"] == "after" for pushed in delivered)


def test_subscription_count_is_one_per_device(app, push, direct):
    """The table never holds two subscriptions of one device session (unique key)."""
    _, bob, _, _ = direct
    for _ in range(3):
        subscribed(bob, push)
    with app.app_context():
        assert db.session.scalar(select(func.count(PushSubscription.id))) == 1


def test_two_processes_push_each_message_once_and_know_each_others_sockets(
    app, fake, make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    """With Redis, the process that stored a message pushes it, once; a device connected to the
    other process counts as connected."""
    fake.reset()
    befriend(make_user("alice"), make_user("bob"))
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        PUSH_ALLOWED_HOSTS=fake.host,
    )
    with ExitStack() as stack:
        cluster = Cluster(stack, env, tmp_path)
        alice = stack.enter_context(cluster.device("a", "alice"))
        bob_closed = stack.enter_context(cluster.device("a", "bob", connect=False))
        bob_open = stack.enter_context(cluster.device("b", "bob"))
        closed, open_ = fake.subscription(), fake.subscription()
        assert bob_closed.post("/api/v1/push/subscriptions", closed).status_code == 201
        assert bob_open.post("/api/v1/push/subscriptions", open_).status_code == 201
        conversation_id = alice.post("/api/v1/conversations", {"user_id": bob_open.user_id}).json()[
            "conversation"
        ]["id"]
        for number in range(3):
            assert alice.send(conversation_id, f"message {number}")["ok"]
        bob_open.wait_until(lambda: len(bob_open.events("message:new")) == 3, what="three messages")
        pushes = fake.wait_for(3)
        time.sleep(0.3)  # a second push of any message would arrive by now
        bodies = sorted(pushed.payload["body"] for pushed in fake.received(closed))
        assert bodies == [f"message {n}" for n in range(3)]
        assert fake.received(open_) == [] and len(fake.answered()) == len(pushes) == 3


def test_system_notices_are_pushed_to_offline_devices(app, push, direct, api_key):
    """The server API's notices: to a user's notice conversation (titled Notices), and in a
    group (titled by the group); the text as it is, nobody left out as "the sender"."""
    alice, bob, _, bob_id = direct
    subscribed(bob, push)
    server = app.test_client()
    answer = server.post(
        "/api/server/v1/notices", json={"text": "维护通知 — maintenance at 22:00", "user_ids": [bob_id]}
    )
    assert answer.status_code == 401  # (no key: nothing sent)
    answer = server.post(
        "/api/server/v1/notices",
        json={"text": "维护通知 — maintenance at 22:00", "user_ids": [bob_id]},
        headers=api_key("messages"),
    )
    assert answer.status_code == 201, answer.get_json()
    notice_conversation = answer.get_json()["notices"][0]["conversation_id"]
    settle(app)
    [delivered] = push.answered()
    assert delivered.payload == {
        "conversation_id": notice_conversation,
        "title": "Notices",
        "body": "维护通知 — maintenance at 22:00",
        "tag": f"conversation-{notice_conversation}",
        "url": f"/#/chat/{notice_conversation}",
    }


def test_a_group_notice_is_pushed_under_the_groups_name(app, push, team, api_key):
    clients, ids, conversation_id = team
    subscribed(clients["bob"], push)
    with app.app_context():
        group_id = db.session.scalar(select(Group.id).where(Group.conversation_id == conversation_id))
    answer = app.test_client().post(
        "/api/server/v1/notices", json={"text": "Release at noon", "group_id": group_id}, headers=api_key()
    )
    assert answer.status_code == 201, answer.get_json()
    settle(app)
    [delivered] = push.answered()
    assert (delivered.payload["title"], delivered.payload["body"]) == ("Team", "Release at noon")
