"""CPU time of `send_message` in-process, without the network: the per-message cost Parley adds
on top of the transport, and (with --profile) where it goes. With `--together N`, N sends at a
time go through the group commit (app/chat/pipeline.py) from N greenlets, as socket events do
under load; the figure is still per message. CPU time, unlike wall time, is
little disturbed by other processes sharing the machine, so before/after comparisons hold."""

from __future__ import annotations

import time

from sqlalchemy import select

from bench.stats import profiled

BODY = {"type": "txt", "msg": "x" * 100}


def measure(count: int, rounds: int, profile: bool, together: int = 1) -> dict:
    import gevent
    from flask_migrate import upgrade

    from app import create_app
    from app.chat import pipeline
    from app.chat.send import send_message
    from app.extensions import db
    from app.models import User
    from bench.seed import seed

    app = create_app()
    with app.app_context():
        upgrade()
        first, _, conversation_id = seed(pairs=1, group_sizes=[], idle=0)["pairs"][0]
        user_id = db.session.scalar(select(User.id).where(User.username == first))

        def send_one(client_msg_id: str) -> None:
            with app.app_context():  # each socket event has its own
                pipeline.send(user_id, conversation_id, client_msg_id, BODY)

        def send_many(prefix: str) -> None:
            if together > 1:
                for start in range(0, count, together):
                    ids = [f"{prefix}{index:08d}" for index in range(start, min(start + together, count))]
                    gevent.joinall([gevent.spawn(send_one, client_msg_id) for client_msg_id in ids])
                return
            for index in range(count):
                send_message(user_id, conversation_id, f"{prefix}{index:08d}", BODY)
                db.session.remove()  # as at the end of every socket event

        send_many("warm")
        per_message = []
        for round_ in range(rounds):
            started = time.process_time()
            send_many(f"r{round_}-")
            per_message.append(round((time.process_time() - started) / count * 1e6))
        result = {"send_message_cpu_us": per_message, "best_us": min(per_message)}
        if profile:
            result["profile"] = profiled(lambda: send_many("prof"))
        db.engine.dispose()
    return result


def main(count: int, rounds: int, profile: bool, together: int = 1) -> None:
    result = measure(count, rounds, profile, together)
    if profile:
        print(result.pop("profile"))
    print(result)
