"""What a `message.before_send` webhook costs other users: `python -m bench.before_send
[--users 4] [--messages 50] [--slow-seconds 1.5]`.

One Parley server (gunicorn, as `make run` serves it) on a throwaway SQLite database, a local fake
integrator (tests/fake_integrator.py) and `--users` "quick" users, each sending `--messages` texts
one after another over its own socket to a friend, while a "slow" user keeps sending too. Three
scenarios, the same load:
- `no_hook`: no webhook at all;
- `slow_hook`: a before-send hook that answers the slow user after `--slow-seconds` (within its
  timeout) and everyone else at once — the quick users' ack latency shows whether the slow check
  holds them up;
- `fast_hook`: the same hook answering everyone at once — against `no_hook`, what a fast allow
  check adds to each message (a signed local HTTP round trip).
Prints each scenario's quick users' ack latency (p50, p99, ms) and the slow user's acks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.servers import migrate, parley_env, parley_server


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def setup(env: dict[str, str], users: int) -> dict:
    """Accounts, friendships and conversations through the services (an in-process app)."""
    from app import create_app
    from app.auth.services import create_user
    from app.chat.conversations import open_direct
    from app.extensions import db
    from app.social import services as social
    from config import Config

    app = create_app(Config.from_env({**env, "PARLEY_ENV": "testing"}))
    with app.app_context():
        peer = create_user("peer", "bench-password-1").id
        names = ["slow", *(f"quick{i}" for i in range(users))]
        ids = {name: create_user(name, "bench-password-1").id for name in names}
        db.session.commit()
        conversations = {}
        for name, user_id in ids.items():
            request, _ = social.send_friend_request(user_id, peer, "")
            social.respond_to_request(peer, request["id"], accept=True)
            conversations[name] = open_direct(user_id, peer)[0]["id"]
    return {"app": app, "conversations": conversations}


def set_hook(app, fake, enabled: bool) -> None:
    from sqlalchemy import select

    from app.extensions import db
    from app.models.integrations import Webhook
    from app.webhooks import manage

    with app.app_context():
        hook = db.session.scalar(select(Webhook))
        if hook is None:
            manage.create_hook(
                None, "bench", fake.url, ["message.before_send"], secret=fake.secret, timeout_ms=5000
            )
        else:
            manage.update_hook(None, hook.id, enabled=enabled)


def run_scenario(url: str, conversations: dict, messages: int) -> dict:
    from tests.socket_client import Device

    devices = {name: Device(url, name, "bench-password-1") for name in conversations}
    latencies: list[float] = []
    slow_acks: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def quick(name: str) -> None:
        for i in range(messages):
            started = time.perf_counter()
            ack = devices[name].send(conversations[name], f"{name} {i}")
            assert ack["ok"], ack
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)

    def slow() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            devices["slow"].send(conversations["slow"], "slow one", timeout=30)
            slow_acks.append((time.perf_counter() - started) * 1000)

    slow_thread = threading.Thread(target=slow)
    slow_thread.start()
    time.sleep(0.2)
    threads = [threading.Thread(target=quick, args=(name,)) for name in conversations if name != "slow"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    slow_thread.join()
    for device in devices.values():
        device.close()
    return {
        "quick_acks": len(latencies),
        "quick_p50_ms": percentile(latencies, 0.5),
        "quick_p99_ms": percentile(latencies, 0.99),
        "quick_mean_ms": round(statistics.mean(latencies), 2),
        "slow_acks": len(slow_acks),
        "slow_p50_ms": percentile(slow_acks, 0.5),
    }


def per_call(app, fake, calls: int) -> dict:
    """In-process, with the fast hook: `before_send.check` per message against a bare POST of the
    same size to the same receiver (the receiver's and the network's share), wall and CPU ms."""
    import requests

    from app.chat.access import send_context
    from app.extensions import db
    from app.models import ConversationMember, User
    from app.webhooks import before_send, registry

    with app.app_context():
        registry.clear()
        user_id = db.session.query(User.id).filter_by(username="quick0").scalar()
        conversation_id = (
            db.session.query(ConversationMember.conversation_id).filter_by(user_id=user_id).scalar()
        )
        context = send_context(user_id, conversation_id)
        db.session.rollback()
        body = {"type": "txt", "msg": "a message of ordinary length, forty-odd characters"}
        session = requests.Session()

        def timed(function) -> tuple[float, float]:
            function()  # warm: connections open, hook list loaded
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                function()
            return (
                round((time.perf_counter() - wall) / calls * 1000, 3),
                round((time.process_time() - cpu) / calls * 1000, 3),
            )

        check_wall, check_cpu = timed(lambda: before_send.check(context, user_id, conversation_id, body))
        raw = (
            b'{"id":"x","event":"message.before_send","data":{"body":{"type":"txt","msg":"'
            + b"x" * 60
            + b'"}}}'
        )
        post_wall, post_cpu = timed(
            lambda: session.post(fake.url, data=raw, headers={"X-Parley-Event": "message.before_send"})
        )
    return {
        "check_wall_ms": check_wall,
        "check_cpu_ms": check_cpu,
        "bare_post_wall_ms": post_wall,
        "bare_post_cpu_ms": post_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--slow-seconds", type=float, default=1.5)
    args = parser.parse_args()

    from tests.fake_integrator import FakeIntegrator

    slow_seconds = args.slow_seconds
    mode = {"slow": False}

    def decide(payload):
        if mode["slow"] and payload["data"]["sender"]["username"] == "slow":
            time.sleep(slow_seconds)
        return {"action": "allow"}

    fake = FakeIntegrator(decision=decide).start()
    workdir = Path(tempfile.mkdtemp(prefix="parley-before-send-"))
    env = parley_env(f"sqlite:///{workdir / 'bench.db'}", workdir)
    env["WEBHOOK_CACHE_SECONDS"] = "1"
    migrate(env)
    made = setup(env, args.users)
    conversations = made["conversations"]
    server = parley_server(env, workdir / "server.log").start()
    results = {}
    try:
        for scenario in ("no_hook", "slow_hook", "fast_hook"):
            if scenario != "no_hook":
                set_hook(made["app"], fake, True)
            mode["slow"] = scenario == "slow_hook"
            time.sleep(1.5)  # the server's hook list (WEBHOOK_CACHE_SECONDS=1) catches up
            results[scenario] = run_scenario(server.url, conversations, args.messages)
        results["per_call"] = per_call(made["app"], fake, 300)
    finally:
        server.stop()
        fake.stop()
    print(
        json.dumps(
            {"users": args.users, "messages": args.messages, "slow_seconds": slow_seconds, **results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
