"""The processes a benchmark runs: Parley under gunicorn exactly as `make run` serves it, the bare
socket.io transport it is compared with, a private Redis, and throwaway databases.

Servers are pinned to core 0 and the load generator to core 1 (when there are two cores), so the
generator never steals the server's CPU. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REFERENCE = Path(os.environ.get("BENCH_REFERENCE", ROOT.parent / "shared" / "bench-reference"))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVER_CORE, CLIENT_CORE = "0", "1"
WORKER_CLASS = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"

# Benchmark runs sign in thousands of devices from one address and send far above a person's pace,
# so the rate limits are lifted; argon2 is made cheap (as in the tests) so signing in 10,000 devices
# measures Parley rather than the password hash. Every other setting is the default.
BENCH_ENV = {
    "LOGIN_RATE_LIMIT": "1000000 per minute",
    "REGISTER_RATE_LIMIT": "1000000 per minute",
    "MESSAGE_RATE_LIMIT": "1000000 per second",
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "8192",
}


def pinned(core: str) -> list[str]:
    """`taskset -c core` when the machine has two cores or more (and taskset exists)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", core]
    return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parley_env(database_url: str, instance: Path, redis_url: str | None = None) -> dict[str, str]:
    env = {
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(instance),
        **BENCH_ENV,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def clean_environ(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without Parley settings it may carry, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "INSTANCE_PATH"}}
    return {**base, **extra}


def migrate(env: dict[str, str]) -> None:
    """`flask db upgrade`, as `make run` does before serving."""
    subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"],
        cwd=ROOT,
        env=clean_environ(env),
        check=True,
        capture_output=True,
        timeout=120,
    )


def seed_pairs(env: dict[str, str], workdir: Path, pairs: int, timeout: float = 900) -> dict:
    """Migrate, then `bench seed` `pairs` pairs of friends (no groups, no idle users) into the
    database of `env`; the seed's description (users, devices, conversations)."""
    migrate(env)
    seed_path = workdir / "seed.json"
    subprocess.run(
        [sys.executable, "-m", "bench", "seed", "--out", str(seed_path), "--pairs", str(pairs)]
        + ["--groups", "", "--idle", "0"],
        cwd=ROOT,
        env=clean_environ(env),
        check=True,
        timeout=timeout,
    )
    return json.loads(seed_path.read_text())


class Server:
    """One gunicorn master with one GeventWebSocketWorker, pinned to the server core."""

    def __init__(self, app: str, env: dict[str, str], log_path: Path, *, cwd: Path = ROOT, health: str):
        self.app, self.env, self.log_path, self.cwd, self.health = app, env, log_path, cwd, health
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.cold_start_s: float | None = None
        self.extra_args: list[str] = []  # more gunicorn options, e.g. a config file

    def command(self) -> list[str]:
        return [
            *pinned(SERVER_CORE),
            str(BIN / "gunicorn"),
            "-k",
            WORKER_CLASS,
            "-w",
            "1",
            "--worker-connections",
            "10000",
            "--graceful-timeout",
            "5",
            "--no-control-socket",  # gunicorn's shared default path would clash with other servers
            "--bind",
            f"127.0.0.1:{self.port}",
            *self.extra_args,
            self.app,
        ]

    def start(self, timeout: float = 60) -> Server:
        """Exec gunicorn and wait for its first answer; the wait is the cold start."""
        started = time.perf_counter()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd, env=clean_environ(self.env), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + self.health, timeout=2).ok:
                    self.cold_start_s = round(time.perf_counter() - started, 2)
                    return self
            except requests.RequestException:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s")

    def worker_pids(self) -> list[int]:
        """The worker processes (gunicorn's children): they hold the connections."""
        if self.process is None:
            return []
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: list[int], timeout: float = 30) -> float:
    """Wait until the processes use under 10% of a core over half a second (a backlog of work
    from one scenario must not spill into the next); returns the seconds waited."""
    started = time.monotonic()
    while pids and time.monotonic() - started < timeout:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(0.5)
        if all(cpu_seconds(pid) - used < 0.05 for pid, used in zip(pids, before, strict=True)):
            break
    return round(time.monotonic() - started, 1)


def parley_server(env: dict[str, str], log_path: Path) -> Server:
    return Server("wsgi:app", env, log_path, health="/healthz")


def bare_server(log_path: Path) -> Server:
    """The reference bare Flask-SocketIO relay: no auth, no database."""
    return Server(
        "fsio_app:app",
        {},
        log_path,
        cwd=REFERENCE,
        health="/socket.io/?EIO=4&transport=polling",
    )


@contextmanager
def redis_server(log_dir: Path):
    """A private redis-server (no persistence) on a free port, pinned with the servers, so the
    benchmark's message queue traffic never mixes with anything else using the shared Redis."""
    port = free_port()
    process = subprocess.Popen(
        [*pinned(SERVER_CORE), "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no", "--dir", str(log_dir)],
        stdout=(log_dir / "redis.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def keep_database(kind: str, workdir: Path) -> str:
    """A fresh, empty database URL: a SQLite file in `workdir`, or a new PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'parley.db'}"
    name = f"parley_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by `keep_database` (a SQLite file goes with its folder)."""
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, workdir: Path):
    """A fresh database for one run, dropped afterwards."""
    url = keep_database(kind, workdir)
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def workspace(keep: bool = False):
    path = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
