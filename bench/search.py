"""Message search timings on a big database: `python -m bench search --db sqlite|postgresql`.

The database is `bigdb`'s layout (direct conversations, a hub user in `hub` of them) with varied
mixed Chinese and English texts instead of one repeated line: common words (in about one message
in six), a city pair ("杭州", one in a hundred), and a rare six-character phrase ("季度预算评审",
one in ten thousand). Searches run in-process (`search_messages`, the service behind
`GET /api/v1/search/messages`, SQL and payloads, no HTTP) as the hub, over everything it may see
and inside one conversation; each query `count` times after two warm-ups, p50/p99 in ms.
1–2 characters take the bounded scan of the newest SCAN_LIMIT visible messages; 3+ the index,
newest first in message-id windows (app/search/messages.py, `_indexed`). Note the layout: `bigdb`
stores each conversation's messages as one run of ids and the hub's conversations first, so the
hub's messages are the oldest ids and each chat's are contiguous; the windows start at the
newest id the searcher may see, so they begin inside the hub's messages.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from bench.stats import summary

COMMON = ["我们", "明天", "下午", "开会", "项目", "进度", "客户", "讨论", "方案", "文档", "今天", "晚上"]
COMMON += ["会议纪要", "上海", "出差", "同事", "报告", "看看", "一下", "已经", "发给"]
ENGLISH = ["meeting", "budget", "review", "deploy", "release", "team", "notes", "client", "schedule"]
ENGLISH += ["lunch", "please", "check", "update", "tomorrow", "draft", "weekly", "report"]
RARE = "季度预算评审"
CITY = "杭州"

# (label, query): Chinese of 1, 2, 3 and 6 characters, English words (common, rarer, absent).
QUERIES = [
    ("zh 1 char", "会"),
    ("zh 1 char, rare", "杭"),
    ("zh 2 chars", CITY),
    ("zh 2 chars, common", "会议"),
    ("zh 3 chars", "会议纪"),
    ("zh 3 chars, rare", "杭州西"),
    ("zh 6 chars, rare", RARE),
    ("en word", "meeting"),
    ("en prefix", "budg"),
    ("en word, absent", "xylophone"),
]


def bodies(seed: int = 16):
    """The n-th message's JSON body (called in order, so the texts are the same every run)."""
    rng = random.Random(seed)

    def body(n: int) -> str:
        words = rng.sample(COMMON, rng.randint(3, 6)) + rng.sample(ENGLISH, rng.randint(1, 4))
        rng.shuffle(words)
        if rng.random() < 0.01:
            words.insert(rng.randrange(len(words) + 1), f"{CITY}{rng.choice(['西湖', '东站', '见'])}")
        if n % 10_000 == 5_000:
            words.insert(rng.randrange(len(words) + 1), RARE)
        text = "".join(word if ord(word[0]) > 127 else f" {word} " for word in words).strip()
        return json.dumps({"type": "txt", "msg": text}, ensure_ascii=False)

    return body


def _timed(run, count: int) -> list[float]:
    run()
    run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(kind: str, conversations: int, messages: int, hub: int, count: int) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import select, text

    from app import create_app
    from app.auth.services import hash_password
    from app.extensions import db
    from app.models import User
    from app.search import index
    from app.search.messages import SCAN_LIMIT, search_messages
    from bench import servers
    from bench.bigdb import Layout, build
    from bench.seed import PASSWORD
    from config import Config

    with servers.workspace() as workdir, servers.database(kind, workdir) as url:
        env = {"DATABASE_URL": url, "INSTANCE_PATH": str(workdir), "SECRET_KEY": "bench-search-0123456789"}
        app = create_app(Config.from_env({**servers.clean_environ({}), **env}))
        with app.app_context():
            upgrade()
            layout = Layout(conversations, max(1, messages // conversations), min(hub, conversations))
            postgres = db.engine.dialect.name == "postgresql"
            if postgres:  # built once after the load, as bigdb does with the other indexes
                with db.engine.begin() as conn:
                    conn.exec_driver_sql(index.pg_drop_sql())
            started = time.perf_counter()
            info = build(db.engine, layout, hash_password(PASSWORD), log=lambda _: None, body=bodies())
            if postgres:
                with db.engine.begin() as conn:
                    conn.exec_driver_sql(index.pg_create_sql())
                    conn.exec_driver_sql("ANALYZE messages")
            built = time.perf_counter() - started
            hub_id = db.session.scalar(select(User.id).where(User.username == "hub"))
            one = info["hub_conversations"][0]
            results = []
            for label, query in QUERIES:
                for scope, conversation_id in (("all", None), ("one chat", one)):
                    found = search_messages(hub_id, query, conversation_id=conversation_id)

                    def run(query=query, conversation_id=conversation_id):
                        search_messages(hub_id, query, conversation_id=conversation_id)
                        db.session.rollback()

                    times = summary(_timed(run, count))
                    results.append(
                        {
                            "query": label,
                            "q": query,
                            "scope": scope,
                            "hits": len(found["hits"]),
                            "partial": found["partial"],
                            "p50": times["p50"],
                            "p99": times["p99"],
                        }
                    )
            size = None
            if postgres:
                size = db.session.scalar(text(f"SELECT pg_relation_size('{index.PG_INDEX}')"))
            db.session.remove()
            db.engine.dispose()
    return {
        "database": kind,
        "messages": info["messages"],
        "conversations": conversations,
        "hub_conversations": hub,
        "scan_limit": SCAN_LIMIT,
        "build_s": round(built, 1),
        "pg_index_bytes": size,
        "results": results,
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['database']}, {result['messages']:,} messages (hub in {result['hub_conversations']} chats)",
        "| query | q | scope | hits (≤20) | partial | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["results"]:
        cells = [row["query"], row["q"], row["scope"], row["hits"], row["partial"], row["p50"], row["p99"]]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main(kind: str, conversations: int, messages: int, hub: int, count: int, out: Path | None) -> None:
    result = measure(kind, conversations, messages, hub, count)
    if out is not None:
        out.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))
