"""Where a Parley server's CPU goes while it is saturated with 1:1 messages.

`python -m bench profile` starts Parley (SQLite, one process), drives it with the load generator's
saturation phase, and samples the worker with py-spy meanwhile. The samples are folded into the
share of CPU spent under each part of the message path (transport, request context, validation,
the sender's part, the group-commit writer: its batch, the commit, emitting), which is what
docs/PERFORMANCE.md records.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench import run, servers

# (label, a frame that marks it, or a tuple of such frames): a sample counts under every label
# one of whose frames is on its stack. Parley's events, connect and disconnect included, are
# registered with python-socketio directly; `_handle_event` of Flask-SocketIO would mark any
# handler still registered through it.
PARTS = [
    (
        "socket event, all of it",
        ("_handle_event_internal (socketio/server.py", "_handle_event (flask_socketio/__init__.py"),
    ),
    ("  Flask request context push/pop", "RequestContext."),
    ("  Parley's handler (events.wrapped)", "wrapped (app/chat/events.py"),
    ("    payload validation (pydantic)", "validate (app/validation.py"),
    ("    send rate limit", "check_send_rate (app/chat/send.py"),
    ("    the sender's part (pipeline.send: right to speak, hand over, wait)", "send (app/chat/pipeline.py"),
    ("      right to speak (send_context)", "send_context (app/chat/access.py"),
    ("      stored alone (send_message: refusals, resends, media)", "send_message (app/chat/send.py"),
    ("  ack sent back", "Server._send_packet (socketio/server.py"),
    ("the group-commit writer (its own greenlet)", "_run (app/chat/pipeline.py"),
    ("  append a batch (seqs, read marks, positions, rows)", "_append_batch (app/chat/pipeline.py"),
    ("  commit", "commit (sqlalchemy/orm/session.py"),
    ("  after-commit delivery (emit) and robot", "run_actions (app/realtime.py"),
    ("SQLAlchemy, anywhere", "sqlalchemy/"),
    ("  of which the sqlite3 / psycopg driver", "do_execute (sqlalchemy/engine/default.py"),
    ("JSON encode/decode", ("json/", "app/jsonpack.py")),
    ("websocket frames (gevent-websocket)", "geventwebsocket/websocket.py"),
]


# Frames read "function (/abs/path/site-packages/pkg/mod.py:12)"; keep "pkg/mod.py" (or the path
# inside the repository, or inside the standard library).
_SHORT_PATH = re.compile(
    r"\((?:[^();]*/site-packages/|[^();]*/lib/python3\.\d+/|" + re.escape(str(servers.ROOT)) + "/)"
)


def fold(raw: str) -> tuple[int, list[tuple[str, float]]]:
    """Samples in py-spy's raw (collapsed) format -> (total, [(part, percent)])."""
    total = 0
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, _, number = line.rpartition(" ")
        stack = _SHORT_PATH.sub("(", stack)
        samples = int(number)
        total += samples
        for label, markers in PARTS:
            if any(marker in stack for marker in (markers if isinstance(markers, tuple) else (markers,))):
                counts[label] += samples
    return total, [(label, round(100 * counts[label] / total, 1) if total else 0.0) for label, _ in PARTS]


def main(seconds: float, out: Path) -> None:
    py_spy = shutil.which("py-spy") or str(servers.BIN / "py-spy")
    sizes = run.Sizes(pairs=500, groups=(), dur=seconds + 6, warm=3)
    with servers.workspace() as workdir, servers.database("sqlite", workdir) as url:
        env = servers.parley_env(url, workdir / "instance")
        seed = servers.seed_pairs(env, workdir, sizes.pairs, timeout=600)
        server = servers.parley_server(env, workdir / "server.log").start()
        try:
            target = run.Target("sqlite", [server.url], server.worker_pids())
            scenario = run.scenarios(seed, sizes, "parley", target.urls, ["chat1k"])[0]
            scenario.phases = ["sat:64"]
            raw_path = workdir / "samples.txt"

            sampler: list[subprocess.Popen] = []

            def sample(phase: str) -> None:
                # Sampling starts with the phase, after the warm-up (devices sign in before it).
                if not phase.startswith("sat:"):
                    return
                time.sleep(sizes.warm)
                sampler.append(
                    subprocess.Popen(
                        [py_spy, "record", "-p", str(target.pids[0]), "-d", str(int(seconds)), "-r", "100"]
                        + ["-f", "raw", "-o", str(raw_path)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )

            result = run.run_loadgen(scenario, target, sizes, workdir, on_event=sample)
            sampler[0].wait(60)
            raw = raw_path.read_text()
        finally:
            server.stop()
    out.write_text(raw)
    total, parts = fold(raw)
    phase = result["phases"][0]
    print(f"saturation while sampled: {phase['acks_per_s']} msg/s, server CPU {phase['server_cpu_pct']} %")
    print(f"{total} samples (raw stacks in {out})")
    for label, percent in parts:
        print(f"{percent:5.1f} %  {label}")
