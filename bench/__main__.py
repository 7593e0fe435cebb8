"""`python -m bench COMMAND`: run the load scenarios, or time the read paths on a big database.

run        the load scenarios against the bare transport and Parley; prints the table
history    build a big database and time history pages, catch-up and the conversation list
sendcpu    CPU time of one send_message in-process, and with --profile where it goes
eventcpu   CPU time of one socket event in-process (message:send, a throttled typing), --profile
listcpu    CPU time of a conversation list of 500 in-process, and with --profile where it goes
pagetime   a history page in-process: SQL wall time apart from the rest of the request
search     message search p50/p99 on a big database of varied Chinese and English texts
heap       where the memory of idle connections goes (tracemalloc), per file and line
profile    where a saturated server's CPU goes (py-spy), folded into the parts of the message path
uploadburst  sign-in latency idle and while heavy animated GIFs are uploaded at once
kill       kill -9 of the server mid-load: nothing acknowledged lost or stored twice after resends
scaleout   CPU per message summed over N = 1, 2, 4 processes, both socket routings; group 500; failures
metricscost  CPU per message and ack latency: bare transport, Parley with metrics off, on and scraped
table      one table from the results of several runs
seed, bigdb, history-client   steps the two above run in their own processes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _csv(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="load scenarios, bare transport vs Parley")
    run.add_argument(
        "--targets", type=_csv, default=["bare", "sqlite", "postgresql", "bare+redis", "postgresql+redis"]
    )
    run.add_argument("--scenarios", type=_csv, default=["chat1k", "groups", "chat5k", "idle10k", "storm"])
    run.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness")
    run.add_argument(
        "--dur", type=float, help="seconds per measured phase (the first --warm are not counted)"
    )
    run.add_argument("--out", type=Path, default=Path("bench-results.json"))
    run.add_argument("--keep", action="store_true", help="keep the workspace (logs, plans)")
    run.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for Parley's servers",
    )

    history = commands.add_parser("history", help="history, catch-up and list timings on a big database")
    history.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    history.add_argument("--conversations", type=int, default=10_000)
    history.add_argument("--messages", type=int, default=10_000_000)
    history.add_argument("--hub", type=int, default=500, help="conversations of the user whose list is timed")
    history.add_argument("--phase", choices=["all", "build", "measure"], default="all")
    history.add_argument("--workdir", type=Path, help="where `build` leaves the database for `measure`")
    history.add_argument("--count", type=int, default=300)
    history.add_argument("--seconds", type=float, default=20)

    sendcpu = commands.add_parser(
        "sendcpu", help="CPU per send_message in-process (DATABASE_URL: a fresh DB)"
    )
    sendcpu.add_argument("--count", type=int, default=300)
    sendcpu.add_argument("--rounds", type=int, default=3)
    sendcpu.add_argument("--profile", action="store_true")
    sendcpu.add_argument("--together", type=int, default=1, help="sends at a time, through the group commit")

    eventcpu = commands.add_parser(
        "eventcpu", help="CPU per socket event in-process (DATABASE_URL: a fresh DB)"
    )
    eventcpu.add_argument("--count", type=int, default=300)
    eventcpu.add_argument("--rounds", type=int, default=3)
    eventcpu.add_argument("--profile", action="store_true")

    listcpu = commands.add_parser(
        "listcpu", help="CPU per conversation list in-process (DATABASE_URL: a fresh DB)"
    )
    listcpu.add_argument("--conversations", type=int, default=10_000)
    listcpu.add_argument("--hub", type=int, default=500)
    listcpu.add_argument("--rounds", type=int, default=5)
    listcpu.add_argument("--profile", action="store_true")

    pagetime = commands.add_parser(
        "pagetime", help="history page in-process, SQL timed apart (DATABASE_URL: a fresh DB)"
    )
    pagetime.add_argument("--conversations", type=int, default=1000)
    pagetime.add_argument("--per-conversation", type=int, default=1000)
    pagetime.add_argument("--count", type=int, default=300)

    searching = commands.add_parser("search", help="message search timings on a big database")
    searching.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    searching.add_argument("--conversations", type=int, default=10_000)
    searching.add_argument("--messages", type=int, default=10_000_000)
    searching.add_argument("--hub", type=int, default=500, help="conversations of the user who searches")
    searching.add_argument("--count", type=int, default=200, help="timed searches per query")
    searching.add_argument("--out", type=Path)

    heap = commands.add_parser("heap", help="traced allocations of N idle connections")
    heap.add_argument("--devices", type=int, default=2000)
    heap.add_argument("--top", type=int, default=15)

    profile = commands.add_parser("profile", help="py-spy samples of a saturated server, folded")
    profile.add_argument("--seconds", type=float, default=15)
    profile.add_argument("--out", type=Path, default=Path("bench-profile.txt"))

    burst = commands.add_parser("uploadburst", help="sign-in latency during a burst of heavy GIF uploads")
    burst.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    burst.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    burst.add_argument("--uploads", type=int, default=10)
    burst.add_argument("--logins", type=int, default=10, help="idle sign-ins timed")
    burst.add_argument("--out", type=Path)

    kill = commands.add_parser("kill", help="kill -9 mid-load, restart, resend; check the database")
    kill.add_argument("--dbs", type=_csv, default=["sqlite", "postgresql"])
    kill.add_argument("--rate", type=int, default=150, help="messages per second, all devices together")
    kill.add_argument("--burst", type=int, default=200, help="messages sent at once right before the kill")
    kill.add_argument("--before", type=float, default=10, help="seconds of load before the kill")
    kill.add_argument("--after", type=float, default=8, help="seconds of load once every device is back")
    kill.add_argument("--pairs", type=int, default=50)
    kill.add_argument("--group", type=int, default=20, help="members of the one group (0: none)")
    kill.add_argument("--keep", action="store_true", help="keep the workspace (logs, plan, records)")
    kill.add_argument("--out", type=Path, help="also write the reports here, as one JSON list")

    scaleout = commands.add_parser("scaleout", help="CPU per message at N processes, both routings; failures")
    from bench import scaleout as scaling

    scaling.add_arguments(scaleout)

    metricscost = commands.add_parser(
        "metricscost", help="CPU per message and ack latency: bare, metrics off, metrics on and scraped"
    )
    from bench import metricscost as metricscosting

    metricscosting.add_arguments(metricscost)

    table = commands.add_parser("table", help="one table from the results of several `run`s")
    table.add_argument("results", type=Path, nargs="+")

    seed = commands.add_parser("seed", help="(internal) seed accounts, friends and groups")
    seed.add_argument("--out", type=Path, required=True)
    seed.add_argument("--pairs", type=int, default=500)
    seed.add_argument("--groups", type=lambda s: [int(x) for x in _csv(s)], default=[100, 500])
    seed.add_argument("--idle", type=int, default=0)

    bigdb = commands.add_parser("bigdb", help="(internal) fill a migrated database with many messages")
    bigdb.add_argument("--out", type=Path, required=True)
    bigdb.add_argument("--conversations", type=int, default=10_000)
    bigdb.add_argument("--messages", type=int, default=1_000_000)
    bigdb.add_argument("--hub", type=int, default=500)

    client = commands.add_parser("history-client", help="(internal) the timing client of `history`")
    client.add_argument("--url", required=True)
    client.add_argument("--info", type=Path, required=True)
    client.add_argument("--count", type=int, default=300)
    client.add_argument("--seconds", type=float, default=20)

    args = parser.parse_args()
    if args.command == "run":
        from bench import run as runner

        sizes = runner.Sizes.quick() if args.quick else runner.Sizes()
        if args.dur:
            sizes.dur = args.dur
        unknown = set(args.targets) - set(runner.TARGETS) | set(args.scenarios) - set(runner.SCENARIOS)
        if unknown:
            parser.error(f"unknown targets or scenarios: {', '.join(sorted(unknown))}")
        server_env = dict(item.split("=", 1) for item in args.server_env)
        runner.main(args.targets, args.scenarios, sizes, args.out, args.keep, server_env)
    elif args.command == "history":
        from bench import history as timings

        if args.phase != "all" and args.workdir is None:
            parser.error("--phase build/measure needs --workdir")
        result = timings.run(
            args.db,
            args.conversations,
            args.messages,
            args.hub,
            phase=args.phase,
            workdir=args.workdir,
            count=args.count,
            seconds=args.seconds,
        )
        print(json.dumps({k: v for k, v in result.items() if k != "hub_conversations"}))
    elif args.command == "table":
        from bench import run as runner

        targets = [runner.Target(**item) for path in args.results for item in json.loads(path.read_text())]
        print(runner.markdown(targets, runner.Sizes()))
    elif args.command == "eventcpu":
        from bench import eventcpu

        eventcpu.main(args.count, args.rounds, args.profile)
    elif args.command == "sendcpu":
        from bench import sendcpu as cpu

        cpu.main(args.count, args.rounds, args.profile, args.together)
    elif args.command == "listcpu":
        from bench import listcpu

        listcpu.main(args.conversations, args.hub, args.rounds, args.profile)
    elif args.command == "pagetime":
        from bench import pagetime

        pagetime.main(args.conversations, args.per_conversation, args.count)
    elif args.command == "search":
        from bench import search as searching

        searching.main(args.db, args.conversations, args.messages, args.hub, args.count, args.out)
    elif args.command == "heap":
        from bench import heap as heaping

        heaping.main(args.devices, args.top)
    elif args.command == "profile":
        from bench import profile as profiling

        profiling.main(args.seconds, args.out)
    elif args.command == "uploadburst":
        from bench import uploadburst

        uploadburst.main(args.tree.resolve(), args.db, args.uploads, args.logins, args.out)
    elif args.command == "kill":
        from bench import kill as killing

        if set(args.dbs) - {"sqlite", "postgresql"}:
            parser.error("--dbs: sqlite, postgresql")
        settings = {name: getattr(args, name) for name in ("rate", "burst", "before", "after", "pairs")}
        if not killing.main(args.dbs, args.out, group=args.group, keep=args.keep, **settings):
            raise SystemExit(1)  # something acknowledged was lost or stored twice
    elif args.command == "scaleout":
        scaling.check_arguments(parser, args)
        if not scaling.main(args):
            raise SystemExit(1)  # a failure scenario lost or duplicated something
    elif args.command == "metricscost":
        metricscosting.check_arguments(parser, args)
        metricscosting.main(args)
    elif args.command == "seed":
        from bench import seed as seeding

        seeding.main(args.out, args.pairs, args.groups, args.idle)
    elif args.command == "bigdb":
        from bench import bigdb as big

        big.main(args.conversations, args.messages, args.hub, args.out)
    else:
        from bench import history as timings

        timings.main(args.url, args.info, args.count, args.seconds)


if __name__ == "__main__":
    main()
