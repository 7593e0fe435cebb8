"""Kill -9 mid-load: nothing acknowledged is lost or stored twice.

Devices send at a steady rate; the server (gunicorn master and worker) is killed with SIGKILL mid-load
and restarted on the same port and database; the devices reconnect and resend every message they
sent without an ack, with the same `client_msg_id`. Then the database is read: every acknowledged
message is stored exactly once, with the id and seq its ack named; one row per (sender,
client_msg_id); seqs are gap-free in every conversation. The rows stored when the server died are read
too, before the restart, so the messages in flight at the kill split into those the server had
committed (the resend must answer `duplicate: true`) and those it had not (stored on resend).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import run, servers


def verify(records: list[dict], rows: list[dict], stored_at_kill: set[tuple[str, str]] = frozenset()) -> dict:
    """Check what the clients sent against the rows stored.

    `records`: one per message sent: `id` (its client_msg_id), `sender` (username), `acked`, and from
    the ack `message_id` and `seq`; `lost_at_kill` when the connection dropped before its ack.
    `rows`: every message row of the conversations concerned (`id`, `conversation_id`, `seq`,
    `sender`, `client_msg_id`). `stored_at_kill`: the (sender, client_msg_id) stored when the server
    died. `ok` is true when nothing acknowledged is missing, no message is stored twice, every ack
    names the row stored, seqs are gap-free and every message was acknowledged in the end (none
    refused, none unanswered).
    """
    stored = defaultdict(list)
    for row in rows:
        if row["client_msg_id"] is not None:
            stored[(row["sender"], row["client_msg_id"])].append(row)
    duplicates = sorted(f"{s}/{c}" for (s, c), found in stored.items() if len(found) > 1)
    missing, mismatched = [], []
    for record in records:
        if not record["acked"]:
            continue
        found = stored.get((record["sender"], record["id"]))
        if not found:
            missing.append(record["id"])
        elif (found[0]["id"], found[0]["seq"]) != (record["message_id"], record["seq"]):
            mismatched.append(record["id"])
    seqs = defaultdict(list)
    for row in rows:
        seqs[row["conversation_id"]].append(row["seq"])
    gaps = {}
    for conversation_id, numbers in sorted(seqs.items()):
        repeated = sorted(n for n, times in Counter(numbers).items() if times > 1)
        absent = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        if repeated or absent:
            gaps[conversation_id] = {"missing": absent[:20], "repeated": repeated[:20]}
    sent = {(r["sender"], r["id"]) for r in records}
    lost_at_kill = [(r["sender"], r["id"]) for r in records if r.get("lost_at_kill")]
    report = {
        "sent": len(records),
        "acked": sum(1 for r in records if r["acked"]),
        "unanswered": sum(1 for r in records if not r["acked"] and not r.get("error")),
        "refused": dict(Counter(r["error"] for r in records if r.get("error"))),
        "stored": sum(1 for key in sent if key in stored),
        "lost_at_kill": len(lost_at_kill),
        "lost_at_kill_stored_before_restart": sum(1 for key in lost_at_kill if key in stored_at_kill),
        "lost_at_kill_stored_on_resend": sum(
            1 for key in lost_at_kill if key in stored and key not in stored_at_kill
        ),
        "lost_at_kill_not_stored": sum(1 for key in lost_at_kill if key not in stored),
        "resends_answered_duplicate": sum(1 for r in records if r.get("resent") and r.get("duplicate")),
        "missing_acked": missing[:20],
        "missing_acked_count": len(missing),
        "duplicates": duplicates[:20],
        "duplicate_count": len(duplicates),
        "ack_mismatch": mismatched[:20],
        "ack_conflicts": sum(1 for r in records if r.get("ack_conflict")),
        "seq_gaps": gaps,
    }
    report["ok"] = not (
        missing
        or duplicates
        or mismatched
        or gaps
        or report["unanswered"]
        or report["refused"]
        or report["ack_conflicts"]
    )
    return report


def stored_rows(url: str, conversation_ids: list[int], prefix: str | None = None) -> list[dict]:
    """Every message row of the conversations (or only those whose client_msg_id has `prefix`)."""
    engine = create_engine(url)
    query = (
        "SELECT m.id, m.conversation_id, m.seq, u.username AS sender, m.client_msg_id FROM messages m"
        " LEFT JOIN users u ON u.id = m.sender_id WHERE m.conversation_id IN ("
        + ",".join(str(int(c)) for c in conversation_ids)
        + ")"
    )
    params = {}
    if prefix is not None:
        query += " AND m.client_msg_id LIKE :prefix"
        params["prefix"] = prefix + "-%"
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(text(query), params)]
    finally:
        engine.dispose()


def kill9(server: servers.Server) -> None:
    """SIGKILL the gunicorn master and its worker; both are stopped first, so the master cannot
    fork a new worker in between."""
    pids = [server.process.pid, *server.worker_pids()]
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    server.process.wait(10)


def plan_for(seed: dict, url: str, rate: int, burst: int, before: float, after: float, records: Path) -> dict:
    """Devices of every pair and of the group, each in its conversation; see killResend in loadgen.js."""
    devices, rooms = [], []
    for a, b, conversation_id in seed["pairs"]:
        rooms.append({"conversation_id": conversation_id, "devices": [len(devices), len(devices) + 1]})
        devices += [a, b]
    for group in seed["groups"].values():
        start = len(devices)
        devices += group["members"]
        rooms.append(
            {"conversation_id": group["conversation_id"], "devices": list(range(start, len(devices)))}
        )
    return {
        "proto": "parley",
        "urls": [url],
        "password": seed["password"],
        "devices": [{"username": name, "url_index": 0} for name in devices],
        "rooms": rooms,
        "kill": {
            "prefix": "kill" + uuid.uuid4().hex[:8],
            "rate": rate,
            "before_s": before,
            "burst": burst,
            "lead_ms": 100,
            "after_s": after,
            "wait_s": 60,
            "records": str(records),
        },
    }


def run_one(
    kind: str, rate: int, burst: int, before: float, after: float, pairs: int, group: int, keep: bool
) -> dict:
    with servers.workspace(keep) as workdir, servers.database(kind, workdir) as url:
        env = servers.parley_env(url, workdir / "instance")
        servers.migrate(env)
        run.log(f"kill/{kind}: seeding")
        seed_path = workdir / "seed.json"
        subprocess.run(
            [sys.executable, "-m", "bench", "seed", "--out", str(seed_path), "--pairs", str(pairs)]
            + ["--groups", str(group) if group else "", "--idle", "0"],
            cwd=servers.ROOT,
            env=servers.clean_environ(env),
            check=True,
            timeout=300,
        )
        seed = json.loads(seed_path.read_text())
        server = servers.parley_server(env, workdir / "parley.log").start()
        try:
            plan = plan_for(seed, server.url, rate, burst, before, after, workdir / "records.json")
            conversations = [room["conversation_id"] for room in plan["rooms"]]
            target = run.Target(kind, [server.url], server.worker_pids())
            at_kill: set[tuple[str, str]] = set()

            def kill_and_restart() -> dict:
                started = time.perf_counter()
                kill9(server)
                for row in stored_rows(url, conversations, plan["kill"]["prefix"]):
                    at_kill.add((row["sender"], row["client_msg_id"]))
                server.start()
                target.pids = server.worker_pids()
                return {
                    "down_s": round(time.perf_counter() - started, 2),
                    "cold_start_s": server.cold_start_s,
                }

            run.log(
                f"kill/{kind}: {len(plan['devices'])} devices, {rate} msg/s, a burst of {burst}"
                f" and the kill after {before} s (workspace {workdir})"
            )
            scenario = run.Scenario("kill", plan, ["kill"])
            result = run.run_loadgen(scenario, target, run.Sizes(), workdir, kill_and_restart, limit=240)
            records = json.loads(Path(plan["kill"]["records"]).read_text())
            report = verify(records, stored_rows(url, conversations), at_kill)
        finally:
            server.stop()
    # The kill must have happened (every device lost its connection and came back), and every
    # acknowledged message reached each member once.
    report["ok"] = (
        report["ok"]
        and result.get("disconnected") is True
        and result.get("reconnected") == result.get("devices")
        and result.get("lost_deliveries") == 0
        and result.get("duplicate_deliveries") == 0
    )
    load = {
        k: result.get(k)
        for k in ("devices", "restart", "reconnected", "t100_back_s", "load_s")
        + ("lost_deliveries", "duplicate_deliveries")
    }
    return {"db": kind, "rate": rate, "burst": burst, **load, **report}


def main(kinds: list[str], out: Path | None = None, **settings) -> bool:
    """One kill -9 run per database (`settings`: those of `run_one`); prints one JSON line each and
    writes them all to `out`. True when every run passed."""
    reports = []
    for kind in kinds:
        reports.append(run_one(kind, **settings))
        print(json.dumps(reports[-1]), flush=True)
    if out is not None:
        out.write_text(json.dumps(reports, indent=1))
    return all(report["ok"] for report in reports)
