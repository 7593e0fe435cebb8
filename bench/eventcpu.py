"""CPU time of one socket event in-process, from the encoded packet to the encoded ack: what a
`message:send` costs through socket.io (packet JSON, the event wrapper, the handler), and what a
`typing` event costs when it is throttled, which is the event machinery alone. Flask-SocketIO's
test client drives the real python-socketio server (it encodes and decodes every packet both
ways, as a client would); only the websocket frames are left out. CPU time, unlike wall time,
is little disturbed by other processes sharing the machine, so before/after comparisons hold.

Run with a fresh database in DATABASE_URL: `python -m bench eventcpu [--profile]`."""

from __future__ import annotations

import os
import time

from sqlalchemy import select

from bench.stats import profiled

BODY = {"type": "txt", "msg": "x" * 100}


def measure(count: int, rounds: int, profile: bool) -> dict:
    # The bench settings: the send rate limit lifted, so it is the event that is measured.
    os.environ.setdefault("MESSAGE_RATE_LIMIT", "1000000 per second")
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db, socketio
    from app.models import User
    from bench.seed import PASSWORD, seed

    app = create_app()
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        upgrade()
        first, _, conversation_id = seed(pairs=1, group_sizes=[], idle=0)["pairs"][0]
        assert db.session.scalar(select(User.id).where(User.username == first))
        db.session.remove()
    http = app.test_client()
    answer = http.post("/api/v1/auth/login", json={"username": first, "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    sock = socketio.test_client(app, flask_test_client=http)
    assert sock.is_connected()

    def send_many(prefix: str) -> None:
        for index in range(count):
            payload = {
                "conversation_id": conversation_id,
                "client_msg_id": f"{prefix}{index:08d}",
                "body": BODY,
            }
            ack = sock.emit("message:send", payload, callback=True)
            assert ack["ok"], ack
        sock.get_received()  # the sender's own devices get every message too

    def typing_many() -> None:
        for _ in range(count):
            ack = sock.emit("typing", {"conversation_id": conversation_id}, callback=True)
            assert ack["ok"], ack
        sock.get_received()

    def per_event(action) -> int:
        started = time.process_time()
        action()
        return round((time.process_time() - started) / count * 1e6)

    send_many("warm")
    typing_many()
    sends, typings = [], []
    for round_ in range(rounds):
        sends.append(per_event(lambda round_=round_: send_many(f"r{round_}-")))
        typings.append(per_event(typing_many))
    result = {
        "send_event_cpu_us": sends,
        "send_best_us": min(sends),
        "throttled_typing_cpu_us": typings,
        "typing_best_us": min(typings),
    }
    if profile:
        result["profile"] = "message:send\n" + profiled(lambda: send_many("prof"))
        result["profile"] += "\nthrottled typing\n" + profiled(typing_many)
    sock.disconnect()
    with app.app_context():
        db.engine.dispose()
    return result


def main(count: int, rounds: int, profile: bool) -> None:
    result = measure(count, rounds, profile)
    if profile:
        print(result.pop("profile"))
    print(result)
