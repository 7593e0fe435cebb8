"""The scenarios, run against each target in turn, and the table they produce.

A target is a server set-up: the bare transport (one process, or two with a Redis queue) or Parley
on SQLite, on PostgreSQL, or on PostgreSQL with two processes and Redis. Each Parley target gets a
fresh, migrated database seeded through the services; the same load generator drives every target,
the bare transport first, so Parley's figures are read as ratios to it from the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.seed import usernames
from bench.stats import ratio

LOADGEN = Path(__file__).resolve().parent / "loadgen.js"
TARGETS = ("bare", "bare+redis", "sqlite", "postgresql", "postgresql+redis")
SCENARIOS = ("chat1k", "groups", "chat5k", "idle10k", "storm")
# Two processes with Redis are measured where they matter: messaging across processes.
ONE_PROCESS_ONLY = {"chat5k", "idle10k", "storm"}


@dataclass
class Sizes:
    pairs: int = 500
    groups: tuple[int, ...] = (100, 500)
    chat5k_idle: int = 4000
    idle: int = 10000
    rates: tuple[int, ...] = (250, 500, 1000)
    dur: float = 10
    warm: float = 2

    @classmethod
    def quick(cls) -> Sizes:
        """Tiny sizes to check the harness end to end in a minute."""
        return cls(pairs=10, groups=(5, 10), chat5k_idle=20, idle=40, rates=(50,), dur=3, warm=1)


@dataclass
class Scenario:
    name: str
    plan: dict
    phases: list[str]
    cc: int = 50


@dataclass
class Target:
    name: str
    urls: list[str]
    pids: list[int]
    results: dict = field(default_factory=dict)
    cold_start_s: float | None = None


def scenarios(seed: dict, sizes: Sizes, proto: str, urls: list[str], wanted: list[str]) -> list[Scenario]:
    """Load-generator plans for the wanted scenarios; devices alternate between the servers."""

    def plan(devices: list[str], rooms: list[dict]) -> dict:
        return {
            "proto": proto,
            "urls": urls,
            "password": seed["password"],
            "devices": [{"username": name, "url_index": i % len(urls)} for i, name in enumerate(devices)],
            "rooms": rooms,
        }

    pair_devices = [name for a, b, _ in seed["pairs"] for name in (a, b)]
    pair_rooms = [
        {"conversation_id": conv, "devices": [2 * k, 2 * k + 1]}
        for k, (_, _, conv) in enumerate(seed["pairs"])
    ]
    made = {
        "chat1k": Scenario(
            "chat1k",
            plan(pair_devices, pair_rooms),
            ["sat:64", "rate:auto", *(f"rate:{r}" for r in sizes.rates)],
        ),
        "chat5k": Scenario(
            "chat5k",
            plan(pair_devices + seed["idle"][: sizes.chat5k_idle], pair_rooms),
            ["sat:64", "rate:auto", f"rate:{sizes.rates[len(sizes.rates) // 2]}"],
        ),
        "idle10k": Scenario("idle10k", plan(seed["idle"][: sizes.idle], []), []),
        "storm": Scenario("storm", plan(pair_devices, pair_rooms), ["storm"]),
    }
    for size in sizes.groups:
        group = seed["groups"][str(size)]
        members = group["members"]
        room = [{"conversation_id": group["conversation_id"], "devices": list(range(len(members)))}]
        # Enough in flight to saturate, then half the saturation rate for the time to reach all.
        made[f"group{size}"] = Scenario(
            f"group{size}", plan(members, room), [f"sat:{group_inflight(size)}", "rate:auto"]
        )
    names = [
        n for name in wanted for n in ([f"group{s}" for s in sizes.groups] if name == "groups" else [name])
    ]
    return [made[name] for name in names]


def group_inflight(size: int) -> int:
    return max(2, 1600 // size)


def bare_seed(sizes: Sizes) -> dict:
    """The shape of a seed plan for the bare transport, which has no accounts."""
    return {
        "password": "",
        "pairs": [[f"a{k}", f"b{k}", 0] for k in range(sizes.pairs)],
        "groups": {
            str(size): {"conversation_id": 0, "members": usernames("g", size)} for size in sizes.groups
        },
        "idle": usernames("i", sizes.idle),
    }


def run_loadgen(
    scenario: Scenario,
    target: Target,
    sizes: Sizes,
    workdir: Path,
    on_ready=None,
    limit: float = 400,
    on_event=None,
    gap: float = 0,
) -> dict:
    """Run the load generator on one scenario; `on_event(name)` hears each phase as it starts
    ("sat:64", ...) and, with `gap`, "connecting" and "held" (the generator then keeps still for
    `gap` seconds)."""
    plan_path = workdir / f"plan-{target.name}-{scenario.name}.json".replace("+", "-")
    plan_path.write_text(json.dumps(scenario.plan))
    command = [
        *servers.pinned(servers.CLIENT_CORE),
        "node",
        str(LOADGEN),
        "--plan",
        str(plan_path),
        "--phases",
        ",".join(scenario.phases),
        "--dur",
        str(sizes.dur),
        "--warm",
        str(sizes.warm),
        "--cc",
        str(scenario.cc),
        "--pids",
        ",".join(map(str, target.pids)),
        "--limit",
        str(int(limit)),
        "--label",
        f"{target.name}/{scenario.name}",
        "--gap",
        str(gap),
    ]
    env = {**os.environ, "NODE_PATH": str(servers.ROOT / "node_modules")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    result = None
    try:
        for line in process.stdout:
            data = json.loads(line)
            if data.get("event") in ("phase", "connecting", "held"):
                if on_event is not None:
                    on_event(data.get("phase") or data["event"])
                continue
            if data.get("event") == "ready":
                if on_ready is not None:
                    data = on_ready()
                    result = {"restart": data}
                continue
            result = {**(result or {}), **data}
        process.wait(limit + 10)
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode != 0 or result is None:
        raise RuntimeError(f"load generator failed ({process.returncode}): {process.stderr.read()[-2000:]}")
    return result


def _storm_after_up(result: dict) -> None:
    """The storm's 99 % back counted from when the restarted server answered, not from the first
    disconnect: the part the connect path decides (the rest is the restart and the clients'
    back-off)."""
    up = (result.get("restart") or {}).get("up_at_epoch_s")
    down, back = result.get("down_at_epoch_s"), result.get("t99_back_s")
    if up is not None and down is not None and back is not None:
        result["t99_after_up_s"] = round(back - (up - down), 2)


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, file=sys.stderr, flush=True)


def run_target(
    name: str, sizes: Sizes, wanted: list[str], workdir: Path, server_env: dict[str, str] | None = None
) -> Target:
    """Bring one target up, run the wanted scenarios against it, and take it down. `server_env`
    adds settings to Parley's servers (to compare a setting's effect, e.g. GC_FREEZE_SECONDS=0)."""
    two = name.endswith("+redis")
    with ExitStack() as stack:
        redis_url = stack.enter_context(servers.redis_server(workdir)) if two else None
        if name.startswith("bare"):
            procs = [servers.bare_server(workdir / f"{name}-{i}.log") for i in range(2 if two else 1)]
            for proc in procs:
                if redis_url:
                    proc.env = {"MQ": redis_url}
            seed = bare_seed(sizes)
            proto = "bare"
        else:
            kind = name.split("+")[0]
            url = stack.enter_context(servers.database(kind, workdir))
            env = {**servers.parley_env(url, workdir / f"instance-{kind}", redis_url), **(server_env or {})}
            servers.migrate(env)
            log(f"{name}: seeding")
            seed_path = workdir / f"seed-{kind}.json"
            seed_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
            subprocess.run(
                [sys.executable, "-m", "bench", "seed", "--out", str(seed_path), "--pairs", str(sizes.pairs)]
                + ["--groups", ",".join(map(str, sizes.groups)), "--idle", str(sizes.idle)],
                cwd=servers.ROOT,
                env=servers.clean_environ(seed_env),
                check=True,
                timeout=900,
            )
            seed = json.loads(seed_path.read_text())
            procs = [servers.parley_server(env, workdir / f"{name}-{i}.log") for i in range(2 if two else 1)]
            proto = "parley"
        for proc in procs:
            proc.start()
            stack.callback(proc.stop)
        target = Target(name, [p.url for p in procs], [pid for p in procs for pid in p.worker_pids()])
        target.cold_start_s = procs[0].cold_start_s
        for scenario in scenarios(seed, sizes, proto, target.urls, wanted):
            if two and scenario.name in ONE_PROCESS_ONLY or scenario.name == "storm" and proto == "bare":
                continue
            log(f"{name}: {scenario.name}")

            def restart(server=procs[0], target=target):
                started = time.perf_counter()
                server.stop()
                server.start()
                target.pids = server.worker_pids()
                return {
                    "restart_s": round(time.perf_counter() - started, 2),
                    "cold_start_s": server.cold_start_s,
                    "up_at_epoch_s": time.time(),
                }

            try:
                result = run_loadgen(
                    scenario, target, sizes, workdir, restart if scenario.name == "storm" else None
                )
            except (RuntimeError, json.JSONDecodeError) as error:
                result = {"error": str(error)}
            _storm_after_up(result)
            result["settle_s"] = servers.wait_idle(target.pids)
            target.results[scenario.name] = result
            log(f"{name}: {scenario.name}: {json.dumps(result)[:400]}")
    return target


# --- the table -------------------------------------------------------------------------------------


def _phase(result: dict | None, name: str) -> dict:
    for phase in (result or {}).get("phases", []):
        if phase["phase"] == name:
            return phase
    return {}


OVER = "over capacity"


def _dig(data: dict, *keys):
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def rows(targets: list[Target], sizes: Sizes) -> list[tuple[str, list]]:
    """(metric, value per target) for every figure the run produced."""

    def metric(label: str, scenario: str, *path, phase: str | None = None):
        values = []
        for target in targets:
            result = target.results.get(scenario)
            source = _phase(result, phase) if phase else result
            values.append(OVER if "skipped" in (source or {}) else _dig(source or {}, *path))
        return (label, values)

    table = [
        metric("RSS per connection, 1k devices (KB)", "chat1k", "rss_per_conn_KB"),
        metric("RSS per connection, 5k devices (KB)", "chat5k", "rss_per_conn_KB"),
        metric("RSS per connection, 10k devices (KB)", "idle10k", "rss_per_conn_KB"),
        metric("sign-ins/s (REST login), 5k devices", "chat5k", "logins_per_s"),
        metric("socket connects/s, 5k devices", "chat5k", "connects_per_s"),
    ]
    for scenario, devices in (("chat1k", "1k"), ("chat5k", "5k")):
        table += [
            metric(
                f"1:1, {devices} devices: saturation, msgs/s acked", scenario, "acks_per_s", phase="sat:64"
            ),
            metric(
                f"1:1, {devices} devices: saturation, server CPU %",
                scenario,
                "server_cpu_pct",
                phase="sat:64",
            ),
            metric(
                f"1:1, {devices} devices: half saturation, msgs/s",
                scenario,
                "offered_per_s",
                phase="rate:auto",
            ),
        ]
        table += [
            metric(
                f"1:1, {devices} devices: half saturation, delivery {key} (ms)",
                scenario,
                "delivery_ms",
                key,
                phase="rate:auto",
            )
            for key in ("p50", "p99", "max")
        ]
    for rate in sizes.rates:
        for key in ("p50", "p99", "max"):
            table.append(
                metric(
                    f"1:1 at {rate} msg/s, delivery {key} (ms)",
                    "chat1k",
                    "delivery_ms",
                    key,
                    phase=f"rate:{rate}",
                )
            )
        table.append(
            metric(f"1:1 at {rate} msg/s, ack p99 (ms)", "chat1k", "ack_ms", "p99", phase=f"rate:{rate}")
        )
    mid = sizes.rates[len(sizes.rates) // 2]
    table.append(
        metric(
            f"1:1 at {mid} msg/s, 5k devices, delivery p99 (ms)",
            "chat5k",
            "delivery_ms",
            "p99",
            phase=f"rate:{mid}",
        )
    )
    for size in sizes.groups:
        sat, name = f"sat:{group_inflight(size)}", f"group{size}"
        table += [
            metric(f"group {size}: saturation, msgs/s", name, "acks_per_s", phase=sat),
            metric(f"group {size}: saturation, deliveries/s", name, "deliveries_per_s", phase=sat),
            metric(f"group {size}: half saturation, msgs/s", name, "offered_per_s", phase="rate:auto"),
            metric(
                f"group {size}: half saturation, all reached p50 (ms)",
                name,
                "all_delivered_ms",
                "p50",
                phase="rate:auto",
            ),
            metric(
                f"group {size}: half saturation, all reached p99 (ms)",
                name,
                "all_delivered_ms",
                "p99",
                phase="rate:auto",
            ),
        ]
    storm = [t.results.get("storm") or {} for t in targets]
    table.append(("reconnect storm, 99% back (s)", [_dig(r, "t99_back_s") for r in storm]))
    table.append(
        ("reconnect storm, 99% back after the server is up (s)", [_dig(r, "t99_after_up_s") for r in storm])
    )
    table.append(("reconnect storm, deliveries lost", [_dig(r, "storm_lost_deliveries") for r in storm]))
    table.append(("cold start (s)", [t.cold_start_s for t in targets]))
    cpu = []
    for target in targets:
        phases = [p for r in target.results.values() for p in (r or {}).get("phases", [])]
        cpu.append(max((p.get("client_cpu_pct") or 0 for p in phases), default=None))
    table.append(("load generator CPU %, highest phase", cpu))
    return table


def markdown(targets: list[Target], sizes: Sizes) -> str:
    """The table: one column per target, and each Parley column's ratio to the bare transport
    with the same number of processes."""
    names = [t.name for t in targets]
    header = list(names)
    baseline = {}
    for i, name in enumerate(names):
        if not name.startswith("bare"):
            bare = "bare+redis" if name.endswith("+redis") else "bare"
            if bare in names:
                baseline[i] = names.index(bare)
                header.append(f"{name} ÷ {bare}")
    lines = ["| metric | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for label, values in rows(targets, sizes):
        cells = ["—" if v is None else str(v) for v in values]
        for i, b in baseline.items():
            a, z = values[i], values[b]
            cells.append(
                str(ratio(a, z)) if isinstance(a, int | float) and isinstance(z, int | float) else "—"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(
    targets: list[str], wanted: list[str], sizes: Sizes, out: Path, keep: bool, server_env: dict[str, str]
) -> None:
    done = []
    with servers.workspace(keep) as workdir:
        log(f"workspace {workdir}")
        for name in targets:
            done.append(run_target(name, sizes, wanted, workdir, server_env))
            out.write_text(json.dumps([t.__dict__ for t in done], indent=1))
    table = markdown(done, sizes)
    out.with_suffix(".md").write_text(table + "\n")
    print(table)
