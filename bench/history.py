"""Timings of the read paths on a big database, from a client on its own core: a page of history,
catching up after 1,000 missed messages (`/sync`, every page), and the conversation list of a
user in 500 conversations. Each loop is bounded by a count and a time."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench import servers
from bench.stats import summary


def _timed(run, count: int, seconds: float) -> list[float]:
    """Milliseconds of each `run()`, after two warm-up calls, until `count` or `seconds` is reached."""
    run()
    run()
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    while len(samples) < count and time.monotonic() < deadline:
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(url: str, info: dict, count: int = 300, seconds: float = 20) -> dict:
    session = requests.Session()
    response = session.post(
        f"{url}/api/v1/auth/login", json={"username": info["hub"], "password": info["password"]}, timeout=30
    )
    response.raise_for_status()
    rng = random.Random(7)
    conversations = info["hub_conversations"]
    last_seq = info["per_conversation"]

    def get(path: str) -> dict:
        answer = session.get(url + path, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def page() -> None:
        before = rng.randint(min(51, last_seq), last_seq + 1)
        body = get(f"/api/v1/conversations/{rng.choice(conversations)}/messages?before_seq={before}&limit=50")
        assert body["messages"], "empty history page"

    caught_up = []

    def catch_up() -> None:
        cursor, received = info["catch_up_cursor"], 0
        for _ in range(100):
            body = get(f"/api/v1/sync?cursor={cursor}")
            received += len(body["messages"])
            cursor = body["cursor"]
            if not body["has_more"]:
                break
        caught_up.append(received)

    listed = []

    def conversation_list() -> None:
        listed.append(len(get("/api/v1/conversations")["conversations"]))

    result = {
        "history_page_ms": summary(_timed(page, count, seconds)),
        "catch_up_ms": summary(_timed(catch_up, max(20, count // 5), seconds)),
        "conversation_list_ms": summary(_timed(conversation_list, max(20, count // 5), seconds)),
    }
    result["catch_up_messages"] = caught_up[-1] if caught_up else None
    result["list_conversations"] = listed[-1] if listed else None
    return result


def main(url: str, info_path: Path, count: int, seconds: float) -> None:
    print(json.dumps(measure(url, json.loads(info_path.read_text()), count, seconds)))


def _fill(env: dict, out: Path, conversations: int, messages: int, hub: int) -> dict:
    subprocess.run(
        [sys.executable, "-m", "bench", "bigdb", "--out", str(out)]
        + ["--conversations", str(conversations), "--messages", str(messages), "--hub", str(hub)],
        cwd=servers.ROOT,
        env=servers.clean_environ(env),
        check=True,
        timeout=3600,
    )
    return json.loads(out.read_text())


def _measure_server(env: dict, info: dict, workdir: Path, count: int, seconds: float) -> dict:
    """Start Parley on the built database (the wait is the cold start) and time it from core 1."""
    server = servers.parley_server(env, workdir / "history-server.log").start()
    try:
        info_path = workdir / "bigdb-info.json"
        info_path.write_text(json.dumps(info))
        answer = subprocess.run(
            [*servers.pinned(servers.CLIENT_CORE), sys.executable, "-m", "bench", "history-client"]
            + [
                "--url",
                server.url,
                "--info",
                str(info_path),
                "--count",
                str(count),
                "--seconds",
                str(seconds),
            ],
            cwd=servers.ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    result = json.loads(answer.stdout.strip().splitlines()[-1])
    result["cold_start_s"] = server.cold_start_s
    return result


def run(
    kind: str,
    conversations: int,
    messages: int,
    hub: int,
    *,
    phase: str = "all",
    workdir: Path | None = None,
    count: int = 300,
    seconds: float = 20,
) -> dict:
    """Build a big database and time the read paths on it. `phase` "build" leaves the database in
    `workdir` (a PostgreSQL one is not dropped); "measure" times it and then drops it."""
    if phase == "all":
        with servers.workspace() as scratch, servers.database(kind, scratch) as url:
            env = servers.parley_env(url, scratch / "instance")
            servers.migrate(env)
            info = _fill(env, scratch / "bigdb.json", conversations, messages, hub)
            return {"database": kind, **info, **_measure_server(env, info, scratch, count, seconds)}
    state_path = workdir / f"bigdb-{kind}.json"
    if phase == "build":
        workdir.mkdir(parents=True, exist_ok=True)
        url = servers.keep_database(kind, workdir)
        env = servers.parley_env(url, workdir / f"instance-{kind}")
        servers.migrate(env)
        info = _fill(env, workdir / f"fill-{kind}.json", conversations, messages, hub)
        state_path.write_text(json.dumps({"url": url, "env": env, "info": info}))
        return {"database": kind, **info}
    state = json.loads(state_path.read_text())
    try:
        return {
            "database": kind,
            **state["info"],
            **_measure_server(state["env"], state["info"], workdir, count, seconds),
        }
    finally:
        servers.drop_database(state["url"])
