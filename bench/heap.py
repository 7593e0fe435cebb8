"""Where the memory of idle connections goes: `python -m bench heap` starts Parley (SQLite, one
process) with allocation tracing (`bench/heapconf.py`), signs N devices in, snapshots the heap,
connects them all, waits, snapshots again, and prints what the connections added, per source
file and per line, divided by N. Traced Python allocations only: RSS also holds allocator slack
and what C libraries allocate themselves."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from bench import run, servers


def main(devices: int, top: int) -> None:
    sizes = run.Sizes(pairs=0, groups=(), idle=devices, dur=1, warm=0)
    with servers.workspace() as workdir, servers.database("sqlite", workdir) as url:
        env = servers.parley_env(url, workdir / "instance")
        servers.migrate(env)
        seed_path = workdir / "seed.json"
        subprocess.run(
            [sys.executable, "-m", "bench", "seed", "--out", str(seed_path), "--pairs", "0"]
            + ["--groups", "", "--idle", str(devices)],
            cwd=servers.ROOT,
            env=servers.clean_environ(env),
            check=True,
            timeout=600,
        )
        seed = json.loads(seed_path.read_text())
        snaps = workdir / "heap"
        snaps.mkdir()
        server = servers.parley_server({**env, "HEAP_DIR": str(snaps)}, workdir / "server.log")
        server.extra_args = ["-c", str(Path(__file__).with_name("heapconf.py"))]
        server.start()
        try:
            target = run.Target("sqlite", [server.url], server.worker_pids())
            scenario = run.scenarios(seed, sizes, "parley", target.urls, ["idle10k"])[0]

            def snapshot(event: str) -> None:
                name = {"connecting": "before", "held": "after"}.get(event)
                if name is None:
                    return
                (snaps / f"take-{name}").touch()
                deadline = time.monotonic() + 25
                while not (snaps / f"{name}.snap").exists() and time.monotonic() < deadline:
                    time.sleep(0.2)

            result = run.run_loadgen(scenario, target, sizes, workdir, on_event=snapshot, gap=30)
            before = tracemalloc.Snapshot.load(str(snaps / "before.snap"))
            after = tracemalloc.Snapshot.load(str(snaps / "after.snap"))
        finally:
            server.stop()
    connected = result["connected"]
    print(f"{connected} devices connected; RSS per connection {result['rss_per_conn_KB']} KB")
    for key in ("filename", "lineno"):
        diff = after.compare_to(before, key)
        traced = sum(stat.size_diff for stat in diff)
        print(
            f"\ntraced Python allocations added: {traced / connected / 1024:.1f} KB per connection, by {key}"
        )
        for stat in diff[:top]:
            frame = stat.traceback[0]
            where = _short(frame.filename) + (f":{frame.lineno}" if key == "lineno" else "")
            print(f"{stat.size_diff / connected:9.0f} B  {stat.count_diff / connected:6.1f} blocks  {where}")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", str(servers.ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path
