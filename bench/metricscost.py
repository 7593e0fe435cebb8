"""What Prometheus metrics cost on the send path: `python -m bench metricscost`.

One run, the gunicorn set-up of every bench (bench/servers.py: one GeventWebSocketWorker pinned to
core 0, the load generator pinned to core 1), three targets one after the other:

- `bare`: the reference Flask-SocketIO relay, exactly as `python -m bench run` measures it;
- `off`: Parley with `METRICS_ENABLED=false` (the default);
- `on`: Parley with `METRICS_ENABLED=true`, `METRICS_DIR` in the run's temporary folder and
  `METRICS_TOKEN` set, while a scraper asks `/metrics` (with the token, keep-alive) every second
  from the server's start to its stop, as Prometheus would.

Both Parley targets share one fresh database (SQLite by default), migrated and seeded once through
the services. Every target gets the same devices (`--pairs` friend pairs, one device each) and the
same phases on the same connections: an idle phase (`rate:0`: connected, nothing sent; for `on`
that is the scrapes alone), one saturation phase (64 messages in flight, closed loop), then
`--repeat` phases at a fixed rate (`--rate` msg/s offered open loop; the generator skips a rate
above the saturation just measured, and the row reads "over capacity", since a backlog would only
grow). Figures per target:

- **CPU per message**: the worker process's CPU seconds in a phase's measured window ÷ the messages
  acknowledged in it (the median phase, with the range of the repeats); also with the idle phase's
  CPU per second taken out, and the idle CPU % itself (what the scrapes cost with nothing sent).
- **Ack latency**: send → ack in the generator, p50 and p99 (the median of the repeats).
- **Saturation**: messages acknowledged per second with 64 in flight, and its CPU per message.
- **Scrapes** (`on`): how many, how many failed, their latency, and the messages the last scrape
  counted (`parley_messages_sent_total`), which shows the metrics really counted.

`--metrics off,on` (the default, "both") picks the Parley targets and their order; `unscraped`
adds Parley with metrics on and nobody scraping, which parts the cost of counting from the cost
of being scraped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from bench import run, servers
from bench.scaleout import commit, pair_plan
from bench.stats import ratio, summary

SETTINGS = ("off", "on", "unscraped")
BOTH = ["off", "on"]
# 16-256 printable characters (config.py); the server listens on 127.0.0.1 only.
TOKEN = "bench-metrics-token-0123456789abcdef"  # noqa: S105
SATURATION_INFLIGHT = 64


@dataclass
class Sizes:
    pairs: int = 500  # 1,000 devices, as the load table's 1:1 scenario
    rate: int = 200  # msg/s offered in the fixed-rate phases, below every target's saturation
    repeat: int = 3  # fixed-rate phases per target (same connections); the median is reported
    dur: float = 10  # seconds per phase, the first `warm` not counted
    warm: float = 2
    scrape_every: float = 1.0

    @classmethod
    def quick(cls) -> Sizes:
        """Tiny sizes, to check the harness end to end in a minute."""
        return cls(pairs=10, rate=40, repeat=2, dur=3, warm=1)


def _settings(text: str) -> list[str]:
    if text == "both":
        return list(BOTH)
    return [part for part in text.split(",") if part]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        type=_settings,
        default=list(BOTH),
        help="Parley targets in order, of off, on, unscraped; both = off,on (the default)",
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-bare", action="store_true", help="leave out the bare transport")
    parser.add_argument("--pairs", type=int, help="friend pairs, one device each (default 500)")
    parser.add_argument("--rate", type=int, help="msg/s offered in the fixed-rate phases (default 200)")
    parser.add_argument("--repeat", type=int, help="fixed-rate phases per target, median reported (3)")
    parser.add_argument("--dur", type=float, help="seconds per phase, warm-up included (10)")
    parser.add_argument("--warm", type=float, help="seconds of each phase not counted (2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (logs, plans)")
    parser.add_argument("--out", type=Path, default=Path("bench-results.metrics.json"))
    parser.add_argument(
        "--median",
        type=Path,
        nargs="+",
        metavar="RESULTS",
        help="run nothing: print the table of the per-cell medians of these runs' --out files",
    )


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.metrics or set(args.metrics) - set(SETTINGS) or len(set(args.metrics)) != len(args.metrics):
        parser.error("--metrics: off, on, unscraped, in any order, each once; or both")
    if args.pairs is not None and not 1 <= args.pairs <= 5000:
        parser.error("--pairs: 1 to 5000")
    if args.rate is not None and args.rate < 1:
        parser.error("--rate: at least 1")
    if args.repeat is not None and not 1 <= args.repeat <= 9:
        parser.error("--repeat: 1 to 9")
    if args.dur is not None and args.dur <= 0:
        parser.error("--dur: above 0")
    warm = args.warm if args.warm is not None else (Sizes.quick() if args.quick else Sizes()).warm
    dur = args.dur if args.dur is not None else (Sizes.quick() if args.quick else Sizes()).dur
    if not 0 <= warm < dur:
        parser.error("--warm: at least 0 and below --dur")


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = Sizes.quick() if args.quick else Sizes()
    for name in ("pairs", "rate", "repeat", "dur", "warm"):
        if getattr(args, name) is not None:
            setattr(sizes, name, getattr(args, name))
    return sizes


# --- the scraper ----------------------------------------------------------------------------------

_SENT = re.compile(r"^parley_messages_sent_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def messages_counted(exposition: str) -> int:
    """The sum of `parley_messages_sent_total` over its labels in a scrape's text."""
    return int(sum(float(value) for value in _SENT.findall(exposition)))


class Scraper:
    """Prometheus's part: `GET /metrics` with the bearer token every `every` seconds on one
    keep-alive connection, from a thread of its own pinned to the generator's core (the scrape's
    work in the server is what is measured, not the asking)."""

    def __init__(self, url: str, token: str, every: float = 1.0):
        self.url, self.token, self.every = url + "/metrics", token, every
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self.last_body = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def _loop(self) -> None:
        pinned = servers.pinned(servers.CLIENT_CORE)
        if pinned and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {int(servers.CLIENT_CORE)})  # this thread only (Linux)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        started = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                response = session.get(self.url, timeout=10)
                if response.status_code == 200:
                    self.latencies_ms.append((time.perf_counter() - began) * 1000)
                    self.last_body = response.text
                else:
                    self.failures.append(f"HTTP {response.status_code}")
            except requests.RequestException as error:
                self.failures.append(type(error).__name__)
            tick += 1
            # On a fixed cadence; a scrape slower than `every` is followed at once by the next.
            self._stop.wait(max(0.0, started + tick * self.every - time.monotonic()))
        session.close()

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(15)
        return {
            "scrapes": len(self.latencies_ms) + len(self.failures),
            "failed": len(self.failures),
            "failures": sorted(set(self.failures)),
            "ms": summary(self.latencies_ms),
            "bytes": len(self.last_body.encode()),
            "messages_counted": messages_counted(self.last_body) if self.last_body else None,
        }


# --- measuring ------------------------------------------------------------------------------------


def log(message: str) -> None:
    run.log(f"metricscost: {message}")


def phases(sizes: Sizes) -> list[str]:
    return ["rate:0", f"sat:{SATURATION_INFLIGHT}", *[f"rate:{sizes.rate}"] * sizes.repeat]


def _cpu_us(cpu_s: list[float] | None, messages: int | None, less_s: float = 0.0) -> float | None:
    if not cpu_s or not messages:
        return None
    return round(1e6 * max(0.0, sum(cpu_s) - less_s) / messages, 1)


def _median(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median_low(known) if known else None


def summarize(name: str, result: dict, scrapes: dict | None = None) -> dict:
    """One target's row from the generator's result (its phases as `phases()` lists them)."""
    everything = result.get("phases", [])
    measured = [p for p in everything if "skipped" not in p]
    idle = next((p for p in measured if p["phase"] == "rate:0"), None)
    rated = [p for p in measured if p["phase"].startswith("rate:") and p is not idle]
    saturated = next((p for p in measured if p["phase"].startswith("sat:")), None)
    idle_per_s = None
    if idle and idle.get("server_cpu_s") and idle.get("window_s"):
        idle_per_s = sum(idle["server_cpu_s"]) / idle["window_s"]
    cpu = [_cpu_us(p.get("server_cpu_s"), p.get("acks")) for p in rated]
    net = [
        _cpu_us(p.get("server_cpu_s"), p.get("acks"), (idle_per_s or 0.0) * p.get("window_s", 0))
        if idle_per_s is not None
        else None
        for p in rated
    ]
    errors: dict[str, int] = {}
    for phase in measured:
        for code, count in (phase.get("errors") or {}).items():
            errors[code] = errors.get(code, 0) + count
    return {
        "name": name,
        "devices": result.get("devices"),
        "connected": result.get("connected"),
        "offered_per_s": rated[0].get("offered_per_s") if rated else None,
        "over_capacity": any("skipped" in p for p in everything),
        "acks_per_s": _median([p.get("acks_per_s") for p in rated]),
        "cpu_us_per_msg": _median(cpu),
        "cpu_us_per_msg_all": cpu,
        "cpu_us_per_msg_net": _median(net),
        "idle_cpu_pct": round(100 * idle_per_s, 1) if idle_per_s is not None else None,
        "ack_p50_ms": _median([(p.get("ack_ms") or {}).get("p50") for p in rated]),
        "ack_p99_ms": _median([(p.get("ack_ms") or {}).get("p99") for p in rated]),
        "ack_p99_ms_all": [(p.get("ack_ms") or {}).get("p99") for p in rated],
        "delivery_p50_ms": _median([(p.get("delivery_ms") or {}).get("p50") for p in rated]),
        "delivery_p99_ms": _median([(p.get("delivery_ms") or {}).get("p99") for p in rated]),
        "saturation_per_s": saturated.get("acks_per_s") if saturated else None,
        "saturation_cpu_us_per_msg": (
            _cpu_us(saturated.get("server_cpu_s"), saturated.get("acks")) if saturated else None
        ),
        "saturation_ack_ms": (saturated.get("ack_ms") or {}) if saturated else {},
        "errors": errors,
        "incomplete_after_drain": sum(p.get("incomplete_after_drain") or 0 for p in measured),
        "client_cpu_pct": max((p.get("client_cpu_pct") or 0 for p in measured), default=None),
        "scrapes": scrapes,
    }


def _loadgen(name: str, seed: dict, proto: str, server: servers.Server, sizes: Sizes, workdir: Path):
    plan = pair_plan(seed, proto, [server.url], sizes.pairs)
    target = run.Target(name, [server.url], server.worker_pids())
    scenario = run.Scenario("chat", plan, phases(sizes))
    limit = 120 + (sizes.repeat + 2) * (sizes.dur + 40) + sizes.pairs / 10
    return run.run_loadgen(scenario, target, run.Sizes(dur=sizes.dur, warm=sizes.warm), workdir, limit=limit)


def measure_bare(sizes: Sizes, workdir: Path) -> dict:
    log("bare: starting the reference relay")
    server = servers.bare_server(workdir / "bare.log")
    seed = run.bare_seed(run.Sizes(pairs=sizes.pairs, groups=(), idle=0))
    try:
        server.start()
        result = _loadgen("bare", seed, "bare", server, sizes, workdir)
    finally:
        server.stop()
    return summarize("bare", result)


def measure_parley(setting: str, env: dict, seed: dict, sizes: Sizes, workdir: Path) -> dict:
    name = "metrics on, unscraped" if setting == "unscraped" else f"metrics {setting}"
    env = {**env, "METRICS_ENABLED": "false" if setting == "off" else "true"}
    if setting != "off":
        env.update(METRICS_TOKEN=TOKEN, METRICS_DIR=str(workdir / f"metrics-{setting}"))
    log(f"{name}: starting Parley")
    server = servers.parley_server(env, workdir / f"parley-{setting}.log")
    scraper = None
    try:
        server.start()
        if setting == "on":
            scraper = Scraper(server.url, TOKEN, sizes.scrape_every).start()
        result = _loadgen(f"parley-{setting}", seed, "parley", server, sizes, workdir)
    finally:
        scrapes = scraper.stop() if scraper is not None else None
        server.stop()
    return summarize(name, result, scrapes)


# --- the table ------------------------------------------------------------------------------------


def _cell(value) -> str:
    return "—" if value is None else str(value)


def _pair(a, b) -> str:
    return f"{_cell(a)} / {_cell(b)}"


def _spread(value, values: list | None):
    known = [v for v in values or [] if v is not None]
    if value is None or len(known) < 2:
        return value
    return f"{value} ({min(known)}–{max(known)})"


def _scrapes(scrapes: dict | None) -> str | None:
    if not scrapes:
        return None
    latency = _pair(scrapes["ms"].get("p50"), scrapes["ms"].get("max"))
    return f"{scrapes['scrapes']} ({scrapes['failed']}), {latency}"


def markdown(rows: list[dict], rate: int) -> str:
    """One line per target; the ratios are to Parley with metrics off in the same run."""
    off = next((r for r in rows if r["name"] == "metrics off"), None)

    def versus(row: dict, key: str):
        return ratio(row.get(key), off.get(key)) if off is not None and row["name"] != "bare" else None

    lines = [
        f"| target | msgs/s acked (offered {rate}) | server CPU µs/msg | ÷ off | same, idle taken out"
        " | idle CPU % | ack p50 / p99 (ms) | saturation msgs/s | ÷ off | CPU µs/msg at saturation"
        " | ÷ off | scrapes (failed), p50 / max ms | messages counted |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        scrapes = row.get("scrapes")
        cells = [
            row["name"],
            "over capacity" if row.get("over_capacity") else row.get("acks_per_s"),
            _spread(row.get("cpu_us_per_msg"), row.get("cpu_us_per_msg_all")),
            versus(row, "cpu_us_per_msg"),
            row.get("cpu_us_per_msg_net"),
            row.get("idle_cpu_pct"),
            _pair(row.get("ack_p50_ms"), row.get("ack_p99_ms")),
            row.get("saturation_per_s"),
            versus(row, "saturation_per_s"),
            row.get("saturation_cpu_us_per_msg"),
            versus(row, "saturation_cpu_us_per_msg"),
            _scrapes(scrapes),
            scrapes.get("messages_counted") if scrapes else None,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


MEDIAN_KEYS = (
    "acks_per_s", "cpu_us_per_msg", "cpu_us_per_msg_net", "idle_cpu_pct", "ack_p50_ms", "ack_p99_ms",
    "saturation_per_s", "saturation_cpu_us_per_msg",
)  # fmt: skip


def median_rows(reports: list[dict]) -> list[dict]:
    """One row per target of several runs: each figure the median of the runs' (the lower one of
    an even count), `cpu_us_per_msg_all` the runs' medians (shown as the range), scrapes summed
    with the median of their p50s and the highest max."""
    names = list(dict.fromkeys(row["name"] for report in reports for row in report["rows"]))
    merged = []
    for name in names:
        rows = [row for report in reports for row in report["rows"] if row["name"] == name]
        row = {
            "name": name,
            "runs": len(rows),
            **{key: _median([r.get(key) for r in rows]) for key in MEDIAN_KEYS},
        }
        row["cpu_us_per_msg_all"] = [r.get("cpu_us_per_msg") for r in rows]
        row["over_capacity"] = any(r.get("over_capacity") for r in rows)
        scrapes = [r["scrapes"] for r in rows if r.get("scrapes")]
        row["scrapes"] = (
            {
                "scrapes": sum(s["scrapes"] for s in scrapes),
                "failed": sum(s["failed"] for s in scrapes),
                "ms": {
                    "p50": _median([s["ms"].get("p50") for s in scrapes]),
                    "max": max((s["ms"].get("max") or 0 for s in scrapes), default=None),
                },
                "messages_counted": _median([s.get("messages_counted") for s in scrapes]),
            }
            if scrapes
            else None
        )
        merged.append(row)
    return merged


def print_median(paths: list[Path]) -> None:
    reports = [json.loads(path.read_text()) for path in paths]
    rates = {report["sizes"]["rate"] for report in reports}
    if len(rates) != 1:
        raise SystemExit(f"the runs offered different rates ({sorted(rates)}): no common table")
    print(markdown(median_rows(reports), rates.pop()))


def main(args: argparse.Namespace) -> list[dict]:
    if args.median:
        print_median(args.median)
        return []
    sizes = sizes_from(args)
    report = {
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "db": args.db,
        "metrics": args.metrics,
        "sizes": asdict(sizes),
    }
    rows: list[dict] = []

    def save() -> None:
        args.out.write_text(json.dumps({**report, "rows": rows}, indent=1))

    with servers.workspace(args.keep) as workdir, servers.database(args.db, workdir) as url:
        log(f"workspace {workdir}, {args.db}")
        env = servers.parley_env(url, workdir / "instance")
        log(f"seeding {sizes.pairs} pairs")
        seed = servers.seed_pairs(env, workdir, sizes.pairs)
        if not args.no_bare:
            rows.append(measure_bare(sizes, workdir))
            save()
        for setting in args.metrics:
            rows.append(measure_parley(setting, env, seed, sizes, workdir))
            log(f"{setting}: {json.dumps(rows[-1])[:300]}")
            save()
    table = markdown(rows, sizes.rate)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    return rows
