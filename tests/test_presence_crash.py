"""A process killed with its sockets open: its users are announced offline, once, by whichever
live process notices their sockets expired, and their last-seen time is written."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from datetime import datetime

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD, LiveServer, server_env
from tests.socket_client import Device

TTL_SECONDS = 3
QUIET_SECONDS = 0.5


def kill_9(server: LiveServer) -> None:
    """SIGKILL gunicorn's worker and master at once: nothing gets to run a disconnect."""
    master = server.process.pid
    with open(f"/proc/{master}/task/{master}/children") as children:
        workers = [int(pid) for pid in children.read().split()]
    assert workers, "gunicorn has no worker"
    for pid in [*workers, master]:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(10)


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_users_of_a_killed_process_are_announced_offline_once(
    app, make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        PRESENCE_TTL_SECONDS=str(TTL_SECONDS),
    )
    with ExitStack() as stack:
        doomed, first, second = (LiveServer(env, tmp_path / f"{name}.log") for name in ("doomed", "1", "2"))
        for process in (doomed, first, second):
            stack.callback(process.stop)
            process.start()
        # alice has a device on each surviving process: both processes sweep, each device
        # would hear every announcement made.
        alice_phone = stack.enter_context(Device(first.url, "alice", PASSWORD))
        alice_laptop = stack.enter_context(Device(second.url, "alice", PASSWORD))
        bob = Device(doomed.url, "bob", PASSWORD)
        stack.callback(bob.close)
        for device in (alice_phone, alice_laptop):
            device.wait_for("presence", lambda event: event["user_id"] == bob_id and event["online"])
        connected_at = time.time()

        kill_9(doomed)

        def bob_offline(device: Device) -> list[dict]:
            return [
                event
                for event in device.events("presence")
                if event["user_id"] == bob_id and not event["online"]
            ]

        for device in (alice_phone, alice_laptop):
            device.wait_until(
                lambda device=device: bool(bob_offline(device)), timeout=TTL_SECONDS * 4, what="offline"
            )
        noticed_after = time.time() - connected_at
        time.sleep(TTL_SECONDS / 3 * 2 + QUIET_SECONDS)  # two more sweeps by each process

        [phone_heard], [laptop_heard] = bob_offline(alice_phone), bob_offline(alice_laptop)
        assert phone_heard == laptop_heard
        last_seen = parse(phone_heard["last_seen_at"])
        assert connected_at - 2 <= last_seen.timestamp() <= time.time()
        assert noticed_after <= TTL_SECONDS * 3
        with app.app_context():
            assert db.session.get(User, bob_id).last_seen_at == last_seen
        [listed] = alice_phone.get_json("/api/v1/presence", user_ids=str(bob_id))["presence"]
        assert listed == {"user_id": bob_id, "online": False, "last_seen_at": phone_heard["last_seen_at"]}


def test_a_user_with_a_socket_on_a_live_process_stays_online_when_another_process_dies(
    make_user, befriend, database_url, instance_path, redis_url, tmp_path
):
    alice_id, bob_id = make_user("alice"), make_user("bob")
    befriend(alice_id, bob_id)
    env = server_env(
        database_url,
        instance_path,
        REDIS_URL=redis_url,
        LOGIN_RATE_LIMIT="1000 per minute",
        PRESENCE_TTL_SECONDS=str(TTL_SECONDS),
    )
    with ExitStack() as stack:
        doomed, survivor = (LiveServer(env, tmp_path / f"{name}.log") for name in ("doomed", "survivor"))
        for process in (doomed, survivor):
            stack.callback(process.stop)
            process.start()
        alice = stack.enter_context(Device(survivor.url, "alice", PASSWORD))
        bob_laptop = stack.enter_context(Device(survivor.url, "bob", PASSWORD))
        bob_phone = Device(doomed.url, "bob", PASSWORD)
        stack.callback(bob_phone.close)
        alice.wait_for("presence", lambda event: event["user_id"] == bob_id)

        kill_9(doomed)
        time.sleep(TTL_SECONDS * 2)

        assert [event["online"] for event in alice.events("presence") if event["user_id"] == bob_id] == [True]
        [listed] = alice.get_json("/api/v1/presence", user_ids=str(bob_id))["presence"]
        assert listed["online"] is True
        bob_laptop.disconnect()
        offline = alice.wait_for("presence", lambda event: event["user_id"] == bob_id and not event["online"])
        assert offline["last_seen_at"] is not None
