"""CPU time of one user's conversation list in-process (500 conversations), and with --profile
where it goes. The list's cost hardly depends on how many messages there are (each item's last
message is one index lookup), so a small database of the same shape as `bigdb`'s will do."""

from __future__ import annotations

import time

from sqlalchemy import select

from bench.stats import profiled


def measure(conversations: int, hub: int, rounds: int, profile: bool) -> dict:
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.services import hash_password
    from app.chat.conversations import conversation_list
    from app.extensions import db
    from app.models import User
    from bench.bigdb import Layout, build
    from bench.seed import PASSWORD

    app = create_app()
    with app.app_context():
        upgrade()
        build(db.engine, Layout(conversations, 10, hub), hash_password(PASSWORD), log=lambda _: None)
        hub_id = db.session.scalar(select(User.id).where(User.username == "hub"))

        def listing() -> int:
            count = len(conversation_list(hub_id)["conversations"])
            db.session.remove()  # as at the end of every request
            return count

        items = listing()
        per_list = []
        for _ in range(rounds):
            started = time.process_time()
            listing()
            per_list.append(round((time.process_time() - started) * 1000, 1))
        result = {"items": items, "list_cpu_ms": per_list, "best_ms": min(per_list)}
        if profile:
            result["profile"] = profiled(listing, sort="tottime", lines=25)
        db.engine.dispose()
    return result


def main(conversations: int, hub: int, rounds: int, profile: bool) -> None:
    result = measure(conversations, hub, rounds, profile)
    if profile:
        print(result.pop("profile"))
    print(result)
