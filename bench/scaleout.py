"""Scale-out: what each added process costs, and what a crash or a Redis restart loses.

`python -m bench scaleout` runs, in one go, on one seeded PostgreSQL database and a private Redis:

1. **CPU per message**: N Parley processes (N = 1, 2, 4 by default), every one pinned to core 0 with
   Redis, the load generator on core 1; devices spread round-robin over the processes (each device
   connects straight to its process), the two sides of every 1:1 pair on different processes where
   N > 1. The generator offers one fixed rate (the same for every N and routing, open loop); the CPU
   seconds of every worker are summed over the measured window and divided by the messages
   acknowledged in it. Redis's own CPU is reported apart.
2. **Group 500**: the members of one group of 500 spread the same way; deliveries per second at
   saturation (a few messages in flight, closed loop), and CPU per delivery.
3. Each for `SOCKET_ROUTING=broadcast` (every process receives every emit: "before") and
   `targeted` (a process receives the emits of rooms it has sockets in: "after"), beside the bare
   transport with the same number of processes on the same Redis queue (`bare+redis`).
4. **Failures**, two processes behind nginx (sticky by cookie, as deployed): one process killed with
   SIGKILL under load (its devices reconnect through nginx to the survivor and resend what had no
   ack), and Redis killed and restarted under load (messages refused meanwhile are resent). Every
   message is then checked against the database (bench/kill.py's `verify`) and every delivery live
   and after /sync.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import kill as killing
from bench import run, servers
from bench.stats import ratio

ROUTINGS = ("broadcast", "targeted")
FAILURES = ("kill", "redis")
BARE = "bare+redis"
# Four processes with the default pool (10 + 20 overflow each) could take 120 connections, more
# than PostgreSQL's default max_connections (100) on a machine whose tests share the server: every
# process of every N gets the same smaller pool.
POOL = {"DATABASE_POOL_SIZE": "5", "DATABASE_MAX_OVERFLOW": "10"}


@dataclass
class Sizes:
    pairs: int = 250
    group: int = 500
    rate: int = 300  # msg/s offered at every N and routing (1:1)
    dur: float = 10
    warm: float = 2
    kill_pairs: int = 50
    kill_group: int = 20
    kill_rate: int = 150
    kill_burst: int = 200
    before: float = 6
    after: float = 5
    redis_down: float = 1.0
    repeat: int = 3  # measured phases per figure (same connections); the median is reported

    @classmethod
    def quick(cls) -> Sizes:
        """Tiny sizes, to check the harness end to end in a few minutes."""
        return cls(
            pairs=10, group=20, rate=40, dur=3, warm=1, kill_pairs=5, kill_group=6, kill_rate=30,
            kill_burst=20, before=2, after=2, redis_down=0.5, repeat=2,
        )  # fmt: skip


def _csv(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def _counts(text: str) -> list[int]:
    return [int(part) for part in _csv(text)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=_counts, default=[1, 2, 4], help="e.g. 1,2,4")
    parser.add_argument("--routing", type=_csv, default=list(ROUTINGS), help="broadcast,targeted")
    parser.add_argument("--failures", type=_csv, default=list(FAILURES), help="kill,redis (empty: none)")
    parser.add_argument("--no-bare", action="store_true", help="leave out the bare transport")
    parser.add_argument("--rate", type=int, help="1:1 msg/s offered at every N (default 300)")
    parser.add_argument("--dur", type=float, help="seconds per measured phase, warm-up included")
    parser.add_argument("--repeat", type=int, help="measured phases per figure, the median reported (3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (logs, plans, records)")
    parser.add_argument("--out", type=Path, default=Path("bench-results.scaleout.json"))


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if set(args.routing) - set(ROUTINGS) or not args.routing:
        parser.error("--routing: broadcast, targeted")
    if set(args.failures) - set(FAILURES):
        parser.error("--failures: kill, redis")
    if not args.processes or any(n < 1 or n > 16 for n in args.processes):
        parser.error("--processes: 1 to 16 each")
    if args.rate is not None and args.rate < 1:
        parser.error("--rate: at least 1")
    if args.repeat is not None and not 1 <= args.repeat <= 9:
        parser.error("--repeat: 1 to 9")


# --- the private Redis (restarted on the same port in the Redis scenario) -------------------------


class Redis:
    def __init__(self, log_dir: Path):
        self.port = servers.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None

    def start(self) -> Redis:
        import redis

        command = [*servers.pinned(servers.SERVER_CORE), "redis-server", "--port", str(self.port)]
        command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        with (self.log_dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash would (nothing is persisted either way)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


# --- plans ------------------------------------------------------------------------------------------


def pair_plan(seed: dict, proto: str, urls: list[str], pairs: int) -> dict:
    """Both sides of each pair, in order, over the processes round-robin: with N > 1 the two sides
    of a pair are on different processes, and every process holds the same number of devices."""
    devices = [name for a, b, _ in seed["pairs"][:pairs] for name in (a, b)]
    return {
        "proto": proto,
        "urls": urls,
        "password": seed["password"],
        "devices": [{"username": name, "url_index": i % len(urls)} for i, name in enumerate(devices)],
        "rooms": [
            {"conversation_id": conv, "devices": [2 * k, 2 * k + 1]}
            for k, (_, _, conv) in enumerate(seed["pairs"][:pairs])
        ],
    }


def group_plan(seed: dict, proto: str, urls: list[str], size: int) -> dict:
    group = seed["groups"][str(size)]
    members = group["members"]
    return {
        "proto": proto,
        "urls": urls,
        "password": seed["password"],
        "devices": [{"username": name, "url_index": i % len(urls)} for i, name in enumerate(members)],
        "rooms": [{"conversation_id": group["conversation_id"], "devices": list(range(len(members)))}],
    }


def failure_plan(seed: dict, url: str, routes: list[str], sizes: Sizes, workdir: Path, name: str) -> dict:
    """Pairs and one small group behind nginx, devices alternating between the processes (each
    pair across two); the `kill` phase of loadgen.js with a file the harness writes when done."""
    plan = pair_plan(seed, "parley", [url], sizes.kill_pairs)
    members = seed["groups"][str(sizes.kill_group)]["members"] if sizes.kill_group else []
    start = len(plan["devices"])
    plan["devices"] += [{"username": member, "url_index": 0} for member in members]
    if members:
        conversation = seed["groups"][str(sizes.kill_group)]["conversation_id"]
        plan["rooms"].append(
            {"conversation_id": conversation, "devices": list(range(start, start + len(members)))}
        )
    for i, device in enumerate(plan["devices"]):
        device["route"] = routes[i % len(routes)]
    plan["kill"] = {
        "prefix": f"{name}{uuid.uuid4().hex[:8]}",
        "rate": sizes.kill_rate,
        "before_s": sizes.before,
        "burst": sizes.kill_burst,
        "lead_ms": 100,
        "after_s": sizes.after,
        "wait_s": 60,
        "records": str(workdir / f"records-{name}.json"),
        "resume_file": str(workdir / f"resume-{name}"),
        "resend_refused": True,
    }
    return plan


# --- measuring ----------------------------------------------------------------------------------------


def log(message: str) -> None:
    run.log(f"scaleout: {message}")


def _loadgen(name: str, plan: dict, phases: list[str], pids: list[int], sizes: Sizes, workdir: Path) -> dict:
    target = run.Target(name.replace("/", "-"), plan["urls"], pids)
    scenario = run.Scenario(phases[0].replace(":", ""), plan, phases)
    return run.run_loadgen(scenario, target, run.Sizes(dur=sizes.dur, warm=sizes.warm), workdir, limit=300)


def per_unit(cpu: list[float] | None, count: int | None, servers_only: bool = True) -> float | None:
    """µs of CPU per message (or delivery): workers summed (the last pid is Redis, apart)."""
    if not cpu or not count:
        return None
    return round(1e6 * sum(cpu[:-1] if servers_only else cpu[-1:]) / count, 1)


def median_phase(phases: list[dict], key) -> dict:
    """The phase whose `key(phase)` is the median (the lower one of an even count); phases
    without a value are left out."""
    valued = sorted((p for p in phases if key(p) is not None), key=key)
    return valued[(len(valued) - 1) // 2] if valued else phases[0]


def measure(
    name: str, seed: dict, proto: str, urls: list[str], pids: list[int], redis_pid: int, sizes, workdir
):
    """The 1:1 phases at the fixed rate and the group's saturation phases, on processes already
    up; `sizes.repeat` phases of each on the same connections, the median one reported."""
    row: dict = {"name": name}
    pids = [*pids, redis_pid]
    plan = pair_plan(seed, proto, urls, sizes.pairs)
    # An idle phase first (`rate:0`, the same connections, nothing sent): what N processes cost
    # doing nothing (pings, presence refresh, beats) grows with N whatever the routing, so it is
    # taken out of each measured phase, in proportion to its window.
    phases = ["rate:0", *[f"rate:{sizes.rate}"] * sizes.repeat]
    result = _loadgen(f"{name}-pairs", plan, phases, pids, sizes, workdir)
    idle, *measured = result["phases"]
    idle_per_s = [cpu / idle["window_s"] for cpu in idle["server_cpu_s"]] if idle["server_cpu_s"] else None
    for phase in measured:
        phase["cpu_us_per_msg_raw"] = per_unit(phase["server_cpu_s"], phase["acks"])
        net = None
        if idle_per_s and phase["server_cpu_s"]:
            net = [
                max(0.0, c - r * phase["window_s"])
                for c, r in zip(phase["server_cpu_s"], idle_per_s, strict=True)
            ]
        phase["net_cpu_s"] = net
        phase["cpu_us_per_msg"] = per_unit(net, phase["acks"])
    result["phases"] = measured
    phase = median_phase(result["phases"], lambda p: p["cpu_us_per_msg"])
    row["pairs"] = {
        "devices": result["devices"],
        "connected": result["connected"],
        "offered_per_s": sizes.rate,
        "acks_per_s": phase["acks_per_s"],
        "acks": phase["acks"],
        "deliveries": phase["deliveries"],
        "cpu_s": phase["server_cpu_s"],
        "idle_cpu_pct": [round(100 * r, 1) for r in idle_per_s] if idle_per_s else None,
        "cpu_us_per_msg": phase["cpu_us_per_msg"],
        "cpu_us_per_msg_raw": phase["cpu_us_per_msg_raw"],
        "cpu_us_per_msg_all": [p["cpu_us_per_msg"] for p in result["phases"]],
        "redis_cpu_us_per_msg": per_unit(phase["server_cpu_s"], phase["acks"], servers_only=False),
        "delivery_ms": phase["delivery_ms"],
        "ack_ms": phase["ack_ms"],
        "incomplete_after_drain": phase["incomplete_after_drain"],
        "errors": phase["errors"],
        "client_cpu_pct": phase["client_cpu_pct"],
    }
    servers.wait_idle(pids)
    inflight = run.group_inflight(sizes.group)
    plan = group_plan(seed, proto, urls, sizes.group)
    result = _loadgen(f"{name}-group", plan, [f"sat:{inflight}"] * sizes.repeat, pids, sizes, workdir)
    phase = median_phase(result["phases"], lambda p: p["deliveries_per_s"])
    row["group"] = {
        "members": result["devices"],
        "connected": result["connected"],
        "msgs_per_s": phase["acks_per_s"],
        "deliveries_per_s": phase["deliveries_per_s"],
        "deliveries_per_s_all": [p["deliveries_per_s"] for p in result["phases"]],
        "cpu_s": phase["server_cpu_s"],
        "cpu_us_per_delivery": per_unit(phase["server_cpu_s"], phase["deliveries"]),
        "all_delivered_ms": phase["all_delivered_ms"],
        "errors": phase["errors"],
        "client_cpu_pct": phase["client_cpu_pct"],
    }
    servers.wait_idle(pids)
    return row


def routing_available() -> bool:
    """The socket routing setting exists at this commit (else every run would be broadcast)."""
    return (servers.ROOT / "app" / "socket_manager.py").exists()


def parley_config(
    routing: str, n: int, env: dict, seed: dict, redis: Redis, sizes: Sizes, workdir: Path
) -> dict:
    name = f"{routing}/{n}"
    log(f"{name}: starting {n} processes")
    with ExitStack() as stack:
        procs = []
        for i in range(n):
            proc = servers.parley_server(
                {**env, "SOCKET_ROUTING": routing}, workdir / f"{routing}-{n}-{i}.log"
            )
            stack.callback(proc.stop)
            procs.append(proc.start())
        pids = [pid for proc in procs for pid in proc.worker_pids()]
        row = measure(name, seed, "parley", [p.url for p in procs], pids, redis.process.pid, sizes, workdir)
    row.update(routing=routing, processes=n)
    log(f"{name}: {json.dumps(row)[:300]}")
    return row


def bare_config(n: int, redis: Redis, sizes: Sizes, workdir: Path) -> dict:
    log(f"{BARE}/{n}: starting {n} processes")
    seed = run.bare_seed(run.Sizes(pairs=sizes.pairs, groups=(sizes.group,), idle=0))
    with ExitStack() as stack:
        procs = []
        for i in range(n):
            proc = servers.bare_server(workdir / f"bare-{n}-{i}.log")
            proc.env = {"MQ": redis.url}
            stack.callback(proc.stop)
            procs.append(proc.start())
        pids = [pid for proc in procs for pid in proc.worker_pids()]
        row = measure(
            f"{BARE}/{n}", seed, "bare", [p.url for p in procs], pids, redis.process.pid, sizes, workdir
        )
    row.update(routing=BARE, processes=n)
    return row


def failure(
    kind: str, routing: str, env: dict, db_url: str, seed: dict, redis: Redis, sizes: Sizes, workdir: Path
):
    """Two processes behind nginx; `kill`: SIGKILL one of them mid-load; `redis`: SIGKILL Redis and
    start it again on its port after `redis_down` s. Acknowledged / lost / duplicated, checked."""
    from tests.cluster import Nginx

    name = f"{kind}-{routing}"
    env = {**env, "SOCKET_ROUTING": routing, "TRUSTED_PROXIES": "1"}
    with ExitStack() as stack:
        procs = []
        for node in "ab":
            proc = servers.parley_server(env, workdir / f"{name}-{node}.log")
            stack.callback(proc.stop)
            procs.append(proc.start())
        nginx = Nginx(workdir / f"nginx-{name}", {"a": procs[0].port, "b": procs[1].port})
        stack.callback(nginx.stop)
        nginx.start()
        plan = failure_plan(seed, nginx.url, ["a", "b"], sizes, workdir, name)
        conversations = [room["conversation_id"] for room in plan["rooms"]]
        at_kill: set[tuple[str, str]] = set()
        pids = [pid for proc in procs for pid in proc.worker_pids()]
        target = run.Target(name, [nginx.url], pids)

        def strike() -> dict:
            started = time.perf_counter()
            if kind == "kill":
                killing.kill9(procs[0])
                for row in killing.stored_rows(db_url, conversations, plan["kill"]["prefix"]):
                    at_kill.add((row["sender"], row["client_msg_id"]))
                target.pids = procs[1].worker_pids()
            else:
                redis.kill()
                time.sleep(sizes.redis_down)
                redis.start()
            Path(plan["kill"]["resume_file"]).touch()
            return {"strike_s": round(time.perf_counter() - started, 2)}

        log(f"{name}: {len(plan['devices'])} devices over 2 processes behind nginx, {sizes.kill_rate} msg/s")
        scenario = run.Scenario("kill", plan, ["kill"])
        result = run.run_loadgen(
            scenario, target, run.Sizes(dur=sizes.dur, warm=sizes.warm), workdir, strike, limit=240
        )
        records = json.loads(Path(plan["kill"]["records"]).read_text())
        report = killing.verify(records, killing.stored_rows(db_url, conversations), at_kill)
    expect_down = len(plan["devices"]) // 2 if kind == "kill" else 0
    report["ok"] = (
        report["ok"]
        and result.get("disconnected_devices", 0) >= expect_down
        and result.get("reconnected", 0) >= result.get("disconnected_devices", 0)
        and result.get("lost_deliveries") == 0
        and result.get("duplicate_deliveries") == 0
    )
    keys = ("devices", "restart", "disconnected_devices", "reconnected", "t100_back_s", "load_s")
    keys += ("lost_deliveries", "missed_live_deliveries", "duplicate_deliveries", "refused_first")
    keys += ("refused_resent", "refused_codes", "resyncs")
    out = {"scenario": kind, "routing": routing, **{k: result.get(k) for k in keys}, **report}
    log(f"{name}: {json.dumps(out)[:400]}")
    return out


# --- the table ----------------------------------------------------------------------------------------


def _get(data: dict | None, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _cell(value) -> str:
    return "—" if value is None else str(value)


def _spread(value, values: list | None) -> str | None:
    """The median, with the range of the repeats when there were several."""
    known = [v for v in values or [] if v is not None]
    if value is None or len(known) < 2:
        return value
    return f"{value} ({min(known)}–{max(known)})"


def markdown(rows: list[dict], failures: list[dict], group: int = 500) -> str:
    """One line per routing and N: CPU per message summed over the processes, its ratio to N = 1
    of the same routing, latency, and group 500's deliveries/s and CPU per delivery."""
    one = {r["routing"]: _get(r, "pairs", "cpu_us_per_msg") for r in rows if r["processes"] == 1}
    group_one = {r["routing"]: _get(r, "group", "deliveries_per_s") for r in rows if r["processes"] == 1}
    lines = [
        "| routing | N | 1:1 msgs/s acked | server CPU µs/msg (sum, idle taken out) | ÷ N = 1"
        " | same, idle left in | idle CPU % (per process) | Redis CPU µs/msg"
        f" | delivery p50 / p99 (ms) | group {group} deliveries/s | ÷ N = 1"
        f" | group {group} CPU µs/delivery |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = _get(r, "pairs", "cpu_us_per_msg")
        deliveries = _get(r, "group", "deliveries_per_s")
        p50, p99 = (_cell(_get(r, "pairs", "delivery_ms", key)) for key in ("p50", "p99"))
        cells = [
            r["routing"],
            r["processes"],
            _get(r, "pairs", "acks_per_s"),
            _spread(cpu, _get(r, "pairs", "cpu_us_per_msg_all")),
            ratio(cpu, one.get(r["routing"])),
            _get(r, "pairs", "cpu_us_per_msg_raw"),
            " / ".join(str(v) for v in _get(r, "pairs", "idle_cpu_pct")[:-1] or [])
            if _get(r, "pairs", "idle_cpu_pct")
            else None,
            _get(r, "pairs", "redis_cpu_us_per_msg"),
            f"{p50} / {p99}",
            deliveries,
            ratio(deliveries, group_one.get(r["routing"])),
            _get(r, "group", "cpu_us_per_delivery"),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if failures:
        lines += [
            "",
            "| scenario | routing | sent | acknowledged | lost (acked, not stored) | stored twice"
            " | refused, stored on resend | deliveries missed live | lost after /sync | delivered twice"
            " | devices dropped / all back (s) | ok |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in failures:
            cells = [
                f["scenario"],
                f["routing"],
                f.get("sent"),
                f.get("acked"),
                f.get("missing_acked_count"),
                f.get("duplicate_count"),
                f.get("refused_first"),
                f.get("missed_live_deliveries"),
                f.get("lost_deliveries"),
                f.get("duplicate_deliveries"),
                f"{_cell(f.get('disconnected_devices'))} / {_cell(f.get('t100_back_s'))}",
                f.get("ok"),
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def commit() -> str:
    """The commit measured, with "+changes" when the working tree differs from it."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    head = subprocess.run(
        [git, "rev-parse", "--short", "HEAD"], cwd=servers.ROOT, capture_output=True, text=True
    )
    dirty = subprocess.run([git, "diff", "--quiet", "HEAD"], cwd=servers.ROOT, capture_output=True)
    return head.stdout.strip() + ("+changes" if dirty.returncode else "")


def main(args: argparse.Namespace) -> bool:
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.rate:
        sizes.rate = args.rate
    if args.dur:
        sizes.dur = args.dur
    if args.repeat:
        sizes.repeat = args.repeat
    routings = list(args.routing)
    if "targeted" in routings and not routing_available():
        log("SOCKET_ROUTING=targeted is not in this commit (no app/socket_manager.py): broadcast only")
        routings = [r for r in routings if r != "targeted"]
    report = {
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sizes": asdict(sizes),
    }
    rows, failures = [], []
    with servers.workspace(args.keep) as workdir, servers.database("postgresql", workdir) as db_url:
        log(f"workspace {workdir}")
        redis = Redis(workdir).start()
        try:
            env = {**servers.parley_env(db_url, workdir / "instance", redis.url), **POOL}
            servers.migrate(env)
            log("seeding")
            seed_path = workdir / "seed.json"
            groups = ",".join(str(size) for size in sorted({sizes.group, sizes.kill_group} - {0}))
            subprocess.run(
                [sys.executable, "-m", "bench", "seed", "--out", str(seed_path)]
                + ["--pairs", str(max(sizes.pairs, sizes.kill_pairs)), "--groups", groups, "--idle", "0"],
                cwd=servers.ROOT,
                env=servers.clean_environ({k: v for k, v in env.items() if k != "REDIS_URL"}),
                check=True,
                timeout=900,
            )
            seed = json.loads(seed_path.read_text())

            def save() -> None:
                args.out.write_text(json.dumps({**report, "rows": rows, "failures": failures}, indent=1))

            for n in args.processes:
                if not args.no_bare:
                    rows.append(bare_config(n, redis, sizes, workdir))
                for routing in routings:
                    rows.append(parley_config(routing, n, env, seed, redis, sizes, workdir))
                save()
            for kind in args.failures:
                for routing in routings:
                    failures.append(failure(kind, routing, env, db_url, seed, redis, sizes, workdir))
                    save()
        finally:
            redis.stop()
    order = {name: i for i, name in enumerate((BARE, *ROUTINGS))}
    rows.sort(key=lambda r: (order[r["routing"]], r["processes"]))
    table = markdown(rows, failures, sizes.group)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    return all(f["ok"] for f in failures)
