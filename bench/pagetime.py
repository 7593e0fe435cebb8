"""Where the time of one history page goes, in-process: `python -m bench pagetime` fills the
database in DATABASE_URL (freshly created) with `bigdb`'s layout, signs the hub in through the
API and fetches pages of 50 messages through Flask's test client, timing the SQL statements
(wall time around each driver call) apart from the rest of the request."""

from __future__ import annotations

import random
import time

from sqlalchemy import event

from bench.stats import summary


def measure(conversations: int, per_conversation: int, count: int) -> dict:
    from flask_migrate import upgrade

    from app import create_app
    from app.auth.services import hash_password
    from app.extensions import db
    from bench.bigdb import Layout, build
    from bench.seed import PASSWORD

    app = create_app()
    with app.app_context():
        upgrade()
        layout = Layout(conversations, per_conversation, 500)
        info = build(db.engine, layout, hash_password(PASSWORD), log=lambda _: None)
        db.session.remove()
        engine = db.engine
    sql = {"seconds": 0.0, "statements": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench.started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn, cursor, statement, parameters, context, executemany):
        sql["seconds"] += time.perf_counter() - conn.info.pop("bench.started")
        sql["statements"] += 1

    client = app.test_client()
    signed_in = client.post(
        "/api/v1/auth/login",
        json={"username": "hub", "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.9.9.9"},
    )
    assert signed_in.status_code == 200, signed_in.get_json()
    rng = random.Random(7)

    def page() -> None:
        before = rng.randint(min(51, per_conversation), per_conversation + 1)
        conversation = rng.choice(info["hub_conversations"])
        answer = client.get(f"/api/v1/conversations/{conversation}/messages?before_seq={before}&limit=50")
        assert answer.status_code == 200 and answer.get_json()["messages"]

    for _ in range(5):
        page()
    totals, sql_ms = [], []
    statements = set()
    for _ in range(count):
        sql["seconds"], sql["statements"] = 0.0, 0
        started = time.perf_counter()
        page()
        totals.append((time.perf_counter() - started) * 1000)
        sql_ms.append(sql["seconds"] * 1000)
        statements.add(sql["statements"])
    with app.app_context():
        db.engine.dispose()
    return {
        "database": engine.dialect.name,
        "messages": info["messages"],
        "page_ms": summary(totals),
        "sql_ms": summary(sql_ms),
        # Every distinct count seen, sign-in included: one number unless some pages differ.
        "statements_per_page": statements.pop() if len(statements) == 1 else sorted(statements),
    }


def main(conversations: int, per_conversation: int, count: int) -> None:
    print(measure(conversations, per_conversation, count))
