"""The benchmark harness's own pieces: statistics, plans, the seeding and the big-database
generator (on a tiny size, read back through the API). No timings are asserted here."""

from __future__ import annotations

import pytest

from app.extensions import db
from bench import run
from bench.bigdb import Layout, build
from bench.seed import PASSWORD, seed
from bench.stats import percentile, ratio, summary


def test_percentile_is_nearest_rank():
    values = [5, 1, 4, 2, 3]
    assert percentile(values, 50) == 3
    assert percentile(values, 100) == 5
    assert percentile(values, 0) == 1
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summary_and_ratio():
    assert summary([1.004, 2, 3, 4]) == {"n": 4, "p50": 2, "p90": 4, "p99": 4, "max": 4}
    assert summary([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    assert ratio(50, 200) == 0.25
    assert ratio(None, 200) is None
    assert ratio(5, 0) is None


def test_plans_pair_devices_and_spread_them_over_servers():
    sizes = run.Sizes.quick()
    plans = run.scenarios(run.bare_seed(sizes), sizes, "bare", ["http://a", "http://b"], ["chat1k", "groups"])
    assert [s.name for s in plans] == ["chat1k", "group5", "group10"]
    chat = plans[0].plan
    assert len(chat["devices"]) == 2 * sizes.pairs
    assert {d["url_index"] for d in chat["devices"][:2]} == {0, 1}  # every message crosses servers
    for room in chat["rooms"]:
        assert len(room["devices"]) == 2
    assert plans[2].plan["rooms"][0]["devices"] == list(range(10))
    assert plans[0].phases[0] == "sat:64"


def test_table_reports_parley_as_ratio_to_the_bare_transport():
    sizes = run.Sizes.quick()
    bare = run.Target("bare", [], [], {"chat1k": {"rss_per_conn_KB": 40.0, "phases": []}})
    parley = run.Target("sqlite", [], [], {"chat1k": {"rss_per_conn_KB": 60.0, "phases": []}})
    table = run.markdown([bare, parley], sizes)
    assert "| metric | bare | sqlite | sqlite ÷ bare |" in table
    assert "| RSS per connection, 1k devices (KB) | 40.0 | 60.0 | 1.5 |" in table


def test_seeded_pairs_can_chat_and_groups_have_their_members(app, login):
    with app.app_context():
        plan = seed(pairs=2, group_sizes=[3], idle=2)
    assert len(plan["pairs"]) == 2 and plan["idle"] == ["i00000", "i00001"]
    first, second, conversation_id = plan["pairs"][0]
    device = login(first, PASSWORD)
    sent = device.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": "bench-0001", "body": {"type": "txt", "msg": "hi"}},
    )
    assert sent.status_code == 201, sent.get_json()
    group = plan["groups"]["3"]
    member = login(group["members"][2], PASSWORD)
    listed = member.get("/api/v1/conversations").get_json()["conversations"]
    # The group, and the direct conversation that befriending the owner opened.
    assert sorted(c["kind"] for c in listed) == ["direct", "group"]
    assert next(c for c in listed if c["kind"] == "group")["id"] == group["conversation_id"]
    assert next(c for c in listed if c["kind"] == "group")["group"]["member_count"] == 3
    assert login(plan["idle"][0], PASSWORD).get("/api/v1/conversations").get_json()["conversations"] == []


def test_big_database_generator_builds_what_the_api_reads(app, login):
    layout = Layout(conversations=5, per_conversation=8, hub_conversations=3)
    with app.app_context():
        info = build(db.engine, layout, _hash(app), log=lambda _: None)
    assert info["messages"] == 40 and info["users"] == 1 + 3 + 2 * 2
    hub = login("hub", PASSWORD)
    conversations = hub.get("/api/v1/conversations").get_json()
    assert sorted(c["id"] for c in conversations["conversations"]) == info["hub_conversations"]
    assert conversations["cursor"] == "40"
    first = conversations["conversations"][0]
    assert first["last_seq"] == 8 and first["unread"] == 2 and first["last_message"]["seq"] == 8
    page = hub.get(f"/api/v1/conversations/{info['hub_conversations'][0]}/messages?limit=5").get_json()
    assert [m["seq"] for m in page["messages"]] == [4, 5, 6, 7, 8] and page["has_more"]
    caught = hub.get(f"/api/v1/sync?cursor={layout.catch_up_cursor(6)}").get_json()
    # The hub's last two messages in each of its three conversations, in stream order.
    assert [(m["conversation_id"], m["seq"]) for m in caught["messages"]] == [
        (conversation_id, seq) for seq in (7, 8) for conversation_id in info["hub_conversations"]
    ]
    assert caught["cursor"] == "40" and not caught["has_more"]
    other = login("u0000005", PASSWORD).get("/api/v1/conversations").get_json()["conversations"]
    assert len(other) == 1 and other[0]["peer"]["username"] == "u0000006"


def _hash(app) -> str:
    from app.auth.services import hash_password

    with app.app_context():
        return hash_password(PASSWORD)


def test_profile_folds_stacks_into_the_parts_of_the_message_path():
    from bench.profile import fold
    from bench.servers import ROOT

    site = "/venv/lib/python3.11/site-packages"
    handler = f"_handle_event ({site}/flask_socketio/__init__.py:858)"
    raw = (
        f"run ({site}/gevent/hub.py:1);{handler};send ({ROOT}/app/chat/pipeline.py:90);"
        f"send_context ({ROOT}/app/chat/access.py:164) 2\n"
        f"run ({site}/gevent/hub.py:1);_run ({ROOT}/app/chat/pipeline.py:150);"
        f"commit ({site}/sqlalchemy/orm/session.py:2177) 3\n"
        f"receive ({site}/geventwebsocket/websocket.py:301) 1\n"
    )
    total, parts = fold(raw)
    shares = dict(parts)
    assert total == 6
    assert shares["socket event, all of it"] == round(100 * 2 / 6, 1)
    assert shares["      right to speak (send_context)"] == round(100 * 2 / 6, 1)
    assert shares["the group-commit writer (its own greenlet)"] == 50.0 and shares["  commit"] == 50.0
    assert shares["websocket frames (gevent-websocket)"] == round(100 / 6, 1)
    assert shares["  Flask request context push/pop"] == 0.0


def test_profiled_returns_the_profile_table_of_one_call():
    from bench.stats import profiled

    calls = []
    table = profiled(lambda: calls.append(sum(range(100))), lines=5)
    assert calls == [4950]
    assert "function calls" in table and "cumulative" in table


def test_the_upload_burst_gif_is_an_animation_with_a_palette_per_frame():
    import io

    from PIL import Image

    from bench.uploadburst import heavy_gif

    with Image.open(io.BytesIO(heavy_gif(frames=3, edge=64))) as image:
        assert (image.n_frames, image.size) == (3, (64, 64))
        backgrounds = set()
        for frame in range(3):
            image.seek(frame)
            backgrounds.add(image.convert("RGB").getpixel((0, 0)))
        assert len(backgrounds) == 3  # each frame has its own palette, so is decoded in full


def _sent(cmid: str, sender: str = "p00000", *, acked: bool = True, message_id=None, seq=None, **extra):
    return {
        "id": cmid,
        "sender": sender,
        "acked": acked,
        "message_id": message_id,
        "seq": seq,
        "lost_at_kill": False,
        "resent": 0,
        "error": None,
        **extra,
    }


def _row(message_id: int, seq: int, cmid: str | None, sender: str = "p00000", conversation_id: int = 7):
    return {
        "id": message_id,
        "conversation_id": conversation_id,
        "seq": seq,
        "sender": sender,
        "client_msg_id": cmid,
    }


def test_kill_check_passes_when_every_acked_message_is_stored_once():
    from bench.kill import verify

    records = [
        _sent("k-1", message_id=11, seq=1),
        _sent("k-2", message_id=12, seq=2, lost_at_kill=True, resent=1, duplicate=True),
        _sent("k-3", message_id=13, seq=3, lost_at_kill=True, resent=1, duplicate=False),
        _sent("k-1", "p00001", message_id=14, seq=4),  # the same id from another sender is another message
    ]
    rows = [_row(11, 1, "k-1"), _row(12, 2, "k-2"), _row(13, 3, "k-3"), _row(14, 4, "k-1", "p00001")]
    report = verify(records, rows, stored_at_kill={("p00000", "k-2")})
    assert report["ok"]
    assert (report["sent"], report["acked"], report["stored"], report["lost_at_kill"]) == (4, 4, 4, 2)
    assert report["lost_at_kill_stored_before_restart"] == 1
    assert report["lost_at_kill_stored_on_resend"] == 1
    assert report["lost_at_kill_not_stored"] == 0
    assert report["resends_answered_duplicate"] == 1
    assert report["seq_gaps"] == {} and report["duplicates"] == [] and report["missing_acked"] == []


def test_kill_check_finds_a_lost_ack_a_duplicate_a_wrong_ack_and_seq_gaps():
    from bench.kill import verify

    records = [
        _sent("k-1", message_id=11, seq=1),
        _sent("k-2", message_id=12, seq=2),  # acked, never stored
        _sent("k-3", message_id=13, seq=3),  # stored twice
        _sent("k-4", message_id=99, seq=4),  # the ack names another row
        _sent("k-5", acked=False, lost_at_kill=True, resent=1),  # never answered
    ]
    rows = [
        _row(11, 1, "k-1"),
        _row(13, 3, "k-3"),
        _row(15, 5, "k-3"),
        _row(14, 4, "k-4"),
        _row(16, 5, None),  # seq 5 twice, and 2 missing
        _row(20, 2, None, conversation_id=8),  # seq 1 missing in another conversation
    ]
    report = verify(records, rows)
    assert not report["ok"]
    assert report["missing_acked"] == ["k-2"] and report["missing_acked_count"] == 1
    assert report["duplicates"] == ["p00000/k-3"] and report["duplicate_count"] == 1
    assert report["ack_mismatch"] == ["k-4"]
    assert report["unanswered"] == 1 and report["lost_at_kill_not_stored"] == 1
    assert report["seq_gaps"] == {7: {"missing": [2], "repeated": [5]}, 8: {"missing": [1], "repeated": []}}


@pytest.mark.parametrize(
    "broken",
    [
        lambda records, rows: rows.pop(),  # an acked message lost
        lambda records, rows: rows.append(_row(13, 3, "k-2")),  # stored twice
        lambda records, rows: records[0].update(seq=2),  # an ack naming another seq
        lambda records, rows: rows[0].update(seq=3),  # a gap at seq 1
        lambda records, rows: records.append(_sent("k-3", acked=False)),  # never answered
        lambda records, rows: records[0].update(ack_conflict=True),  # two different acks
        lambda records, rows: records.append(_sent("k-3", acked=False, error="rate_limited")),  # refused
    ],
)
def test_kill_check_fails_on_each_kind_of_breach_alone(broken):
    from bench.kill import verify

    records = [_sent("k-1", message_id=11, seq=1), _sent("k-2", message_id=12, seq=2)]
    rows = [_row(11, 1, "k-1"), _row(12, 2, "k-2")]
    assert verify(records, rows)["ok"]
    broken(records, rows)
    assert not verify(records, rows)["ok"]


def test_kill_plan_puts_each_device_in_its_conversation_and_reads_back_what_was_stored(app, login):
    from pathlib import Path

    from bench.kill import plan_for, stored_rows

    with app.app_context():
        seed_plan = seed(pairs=2, group_sizes=[3], idle=0)
    plan = plan_for(seed_plan, "http://127.0.0.1:1", 100, 20, 5, 3, Path("r.json"))
    assert [d["username"] for d in plan["devices"]] == ["p00000", "p00001", "p00002", "p00003"] + [
        "g00000",
        "g00001",
        "g00002",
    ]
    assert [r["devices"] for r in plan["rooms"]] == [[0, 1], [2, 3], [4, 5, 6]]
    assert plan["rooms"][2]["conversation_id"] == seed_plan["groups"]["3"]["conversation_id"]
    prefix = plan["kill"]["prefix"]
    assert plan["kill"]["rate"] == 100 and plan["kill"]["burst"] == 20 and len(prefix) >= 8

    first, _, conversation_id = seed_plan["pairs"][0]
    device = login(first, PASSWORD)
    for n in (1, 2):
        sent = device.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"client_msg_id": f"{prefix}-{n}", "body": {"type": "txt", "msg": "hi"}},
        )
        assert sent.status_code == 201, sent.get_json()
    other = device.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"client_msg_id": "another-run-1", "body": {"type": "txt", "msg": "hi"}},
    )
    assert other.status_code == 201
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    mine = stored_rows(url, [conversation_id], prefix)
    assert sorted((r["sender"], r["client_msg_id"], r["seq"]) for r in mine) == [
        (first, f"{prefix}-1", 1),
        (first, f"{prefix}-2", 2),
    ]
    everything = stored_rows(url, [conversation_id])
    assert [r["seq"] for r in sorted(everything, key=lambda r: r["seq"])] == [1, 2, 3]


def test_the_storm_is_also_timed_from_when_the_restarted_server_was_up():
    from bench.run import _storm_after_up

    result = {"restart": {"up_at_epoch_s": 1003.5}, "down_at_epoch_s": 1000.0, "t99_back_s": 4.75}
    _storm_after_up(result)
    assert result["t99_after_up_s"] == 1.25
    unfinished = {"restart": {"up_at_epoch_s": 1003.5}, "down_at_epoch_s": 1000.0, "t99_back_s": None}
    _storm_after_up(unfinished)
    assert "t99_after_up_s" not in unfinished


def _scaleout_seed(pairs: int, group: int) -> dict:
    return {
        "password": "x",
        "pairs": [[f"a{k}", f"b{k}", 100 + k] for k in range(pairs)],
        "groups": {str(group): {"conversation_id": 9, "members": [f"g{k}" for k in range(group)]}},
    }


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_scaleout_spreads_devices_evenly_and_puts_each_pair_across_two_processes(processes):
    from collections import Counter

    from bench.scaleout import group_plan, pair_plan

    seed_plan, urls = _scaleout_seed(8, 12), [f"http://127.0.0.1:{port}" for port in range(processes)]
    plan = pair_plan(seed_plan, "parley", urls, 8)
    assert Counter(d["url_index"] for d in plan["devices"]) == dict.fromkeys(
        range(processes), 16 // processes
    )
    assert [r["conversation_id"] for r in plan["rooms"]] == list(range(100, 108))
    for room in plan["rooms"]:
        sides = {plan["devices"][i]["url_index"] for i in room["devices"]}
        assert len(sides) == min(2, processes)
    group = group_plan(seed_plan, "parley", urls, 12)
    assert Counter(d["url_index"] for d in group["devices"]) == dict.fromkeys(
        range(processes), 12 // processes
    )
    assert group["rooms"] == [{"conversation_id": 9, "devices": list(range(12))}]


def test_scaleout_failure_plan_routes_through_nginx_and_waits_for_the_harness(tmp_path):
    from bench.scaleout import Sizes, failure_plan

    sizes = Sizes(kill_pairs=2, kill_group=4)
    plan = failure_plan(_scaleout_seed(5, 4), "http://127.0.0.1:9", ["a", "b"], sizes, tmp_path, "kill-x")
    assert plan["urls"] == ["http://127.0.0.1:9"]
    assert [d["username"] for d in plan["devices"]] == ["a0", "b0", "a1", "b1", "g0", "g1", "g2", "g3"]
    assert [d["route"] for d in plan["devices"]] == ["a", "b"] * 4  # every pair spans both processes
    assert [r["devices"] for r in plan["rooms"]] == [[0, 1], [2, 3], [4, 5, 6, 7]]
    assert plan["kill"]["resume_file"].startswith(str(tmp_path)) and plan["kill"]["resend_refused"]
    assert plan["kill"]["prefix"].startswith("kill-x")


def test_scaleout_table_sums_cpu_per_message_and_compares_with_one_process():
    from bench.scaleout import markdown, per_unit

    assert per_unit([0.5, 0.3, 0.1], 2000) == 400.0  # the two workers; the last pid is Redis
    assert per_unit([0.5, 0.3, 0.1], 2000, servers_only=False) == 50.0
    assert per_unit(None, 10) is None and per_unit([1.0, 0.1], 0) is None

    def row(processes, cpu, deliveries):
        pairs = {
            "acks_per_s": 300,
            "cpu_us_per_msg": cpu,
            "cpu_us_per_msg_raw": cpu + 100,
            "idle_cpu_pct": [2.5] * processes + [0.1],
            "delivery_ms": {"p50": 2.0, "p99": 9.5},
        }
        return {
            "routing": "targeted",
            "processes": processes,
            "pairs": pairs,
            "group": {"deliveries_per_s": deliveries},
        }

    table = markdown([row(1, 400.0, 20000), row(4, 460.0, 18000)], [], group=500)
    assert "group 500 deliveries/s" in table
    row_4 = "| targeted | 4 | 300 | 460.0 | 1.15 | 560.0 | 2.5 / 2.5 / 2.5 / 2.5 | — | 2.0 / 9.5 |"
    row_4 += " 18000 | 0.9 | — |"
    assert row_4 in table


def test_scaleout_refuses_unknown_routings_and_process_counts():
    import argparse

    from bench.scaleout import add_arguments, check_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--processes", "1,2,4", "--routing", "targeted", "--failures", ""])
    check_arguments(parser, args)
    assert (args.processes, args.routing, args.failures) == ([1, 2, 4], ["targeted"], [])
    for bad in (["--routing", "sticky"], ["--processes", "0,2"], ["--failures", "flood"]):
        with pytest.raises(SystemExit):
            check_arguments(parser, parser.parse_args(bad))


def _loadgen_phase(phase: str, cpu_s: float, acks: int, window_s: float = 8.0, **extra) -> dict:
    return {
        "phase": phase,
        "window_s": window_s,
        "server_cpu_s": [cpu_s],
        "acks": acks,
        "acks_per_s": round(acks / window_s),
        "ack_ms": {"p50": 1.0 + cpu_s, "p99": 10.0 + cpu_s},
        "delivery_ms": {"p50": 2.0, "p99": 20.0},
        "errors": {},
        "incomplete_after_drain": 0,
        "client_cpu_pct": 40,
        **extra,
    }


def test_metricscost_rows_give_cpu_per_message_and_ack_latency_beside_metrics_off():
    from bench.metricscost import markdown, summarize

    def result(cpu: float) -> dict:
        return {
            "devices": 4,
            "connected": 4,
            "phases": [
                _loadgen_phase("rate:0", 0.08, 0),  # idle: 1 % of a core
                _loadgen_phase("sat:64", 8.0, 8000 if cpu == 1 else 6400),
                _loadgen_phase("rate:500", 4 * cpu, 4000, offered_per_s=500),
                _loadgen_phase("rate:500", 2 * cpu, 4000, offered_per_s=500),
                _loadgen_phase("rate:500", 3 * cpu, 4000, offered_per_s=500),
            ],
        }

    off = summarize("metrics off", result(1.0))
    assert off["cpu_us_per_msg"] == 750.0 and off["cpu_us_per_msg_all"] == [1000.0, 500.0, 750.0]
    assert off["cpu_us_per_msg_net"] == 730.0  # 0.01 s of CPU per second idle taken out
    assert (off["idle_cpu_pct"], off["ack_p50_ms"], off["ack_p99_ms"]) == (1.0, 4.0, 13.0)
    assert (off["saturation_per_s"], off["saturation_cpu_us_per_msg"]) == (1000, 1000.0)
    scrapes = {"scrapes": 30, "failed": 0, "ms": {"p50": 3.5, "max": 9.0}, "messages_counted": 20000}
    on = summarize("metrics on", result(1.2), scrapes)
    bare = summarize("bare", result(0.4))
    table = markdown([bare, off, on], 500)
    lines = table.splitlines()
    assert lines[0].startswith("| target | msgs/s acked (offered 500) | server CPU µs/msg | ÷ off |")
    assert lines[2].startswith("| bare | 500 | 300.0 (200.0–400.0) | — | 280.0 | 1.0 | 2.2 / 11.2 |")
    assert lines[3] == (
        "| metrics off | 500 | 750.0 (500.0–1000.0) | 1.0 | 730.0 | 1.0 | 4.0 / 13.0 | 1000 | 1.0"
        " | 1000.0 | 1.0 | — | — |"
    )
    assert lines[4] == (
        "| metrics on | 500 | 900.0 (600.0–1200.0) | 1.2 | 880.0 | 1.0 | 4.6 / 13.6 | 800 | 0.8"
        " | 1250.0 | 1.25 | 30 (0), 3.5 / 9.0 | 20000 |"
    )
    # A fixed rate above the saturation just measured is skipped by the generator: no figure.
    slow = result(1.0)
    slow["phases"][2:] = [{"phase": "rate:500", "skipped": "over capacity: saturation is 400 msg/s"}] * 3
    row = summarize("metrics on", slow)
    assert row["over_capacity"] and row["cpu_us_per_msg"] is None and row["saturation_per_s"] == 1000
    assert markdown([row], 500).splitlines()[2].startswith("| metrics on | over capacity | — | — | — |")


def test_metricscost_reads_the_messages_counted_from_a_scrape():
    from bench.metricscost import messages_counted

    text = (
        "# HELP parley_messages_sent_total Messages stored.\n"
        "# TYPE parley_messages_sent_total counter\n"
        'parley_messages_sent_total{conversation_kind="direct",type="txt"} 1200.0\n'
        'parley_messages_sent_total{conversation_kind="group",type="img"} 34.0\n'
        "parley_message_deliveries_total 1300.0\n"
    )
    assert messages_counted(text) == 1234
    assert messages_counted("") == 0


@pytest.mark.parametrize(
    "bad",
    [
        ["--metrics", "sideways"],
        ["--metrics", "on,on"],
        ["--metrics", ""],
        ["--pairs", "0"],
        ["--rate", "0"],
        ["--repeat", "10"],
        ["--dur", "2", "--warm", "2"],
    ],
)
def test_metricscost_refuses_bad_arguments(bad):
    import argparse

    from bench.metricscost import add_arguments, check_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--metrics", "both"]).metrics == ["off", "on"]
    assert parser.parse_args(["--metrics", "on,off"]).metrics == ["on", "off"]
    assert parser.parse_args([]).metrics == ["off", "on"]
    check_arguments(parser, parser.parse_args(["--metrics", "off,unscraped,on"]))
    check_arguments(parser, parser.parse_args(["--metrics", "on,off", "--dur", "2", "--warm", "1"]))
    with pytest.raises(SystemExit) as refused:
        check_arguments(parser, parser.parse_args(bad))
    assert refused.value.code == 2


def test_metricscost_measures_the_bare_transport_and_parley_with_metrics_off_and_on(tmp_path):
    """`python -m bench metricscost` end to end at a tiny size: gunicorn, the load generator and
    the scraper; one row per target with numbers. The bare relay lives beside the checkout
    (../shared/bench-reference); without it the run leaves it out and the two Parley rows remain."""
    import json
    import subprocess
    import sys

    from bench.servers import REFERENCE, ROOT
    from tests.conftest import TEST_DB

    bare = (REFERENCE / "fsio_app.py").exists()
    out = tmp_path / "metrics.json"
    command = [sys.executable, "-m", "bench", "metricscost", "--db", TEST_DB, "--pairs", "2"]
    command += ["--rate", "20", "--repeat", "1", "--dur", "2.5", "--warm", "0.5", "--out", str(out)]
    done = subprocess.run(
        command + ([] if bare else ["--no-bare"]), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = (["bare"] if bare else []) + ["metrics off", "metrics on"]
    header, *lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert header.startswith("| target | msgs/s acked (offered 20) | server CPU µs/msg |")
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines] == names
    for line in lines:
        cells = line.split(" | ")
        assert float(cells[1]) >= 0  # msgs/s acked: a number, whatever the machine's load
        assert float(cells[2].split(" ")[0]) >= 0  # server CPU µs per message
        p50, p99 = (float(value) for value in cells[6].split(" / "))  # ack latency
        assert 0 < p50 <= p99
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert list(rows) == names
    assert rows["metrics off"]["scrapes"] is None
    scrapes = rows["metrics on"]["scrapes"]
    assert scrapes["scrapes"] >= 1 and scrapes["failed"] == 0
    assert scrapes["messages_counted"] > 0  # the server counted the messages it stored
    assert all(row["connected"] == 4 and row["cpu_us_per_msg"] is not None for row in rows.values())


def test_metricscost_median_of_several_runs_takes_each_figure_apart(tmp_path):
    import json

    from bench.metricscost import median_rows, print_median

    def report(cpu: float, p99: float, saturation: int, scrape_max: float) -> dict:
        scrapes = {
            "scrapes": 80,
            "failed": 0,
            "ms": {"p50": cpu / 100, "max": scrape_max},
            "messages_counted": 9,
        }
        off = {"name": "metrics off", "cpu_us_per_msg": 1000.0, "ack_p99_ms": 50.0, "saturation_per_s": 600}
        on = {"name": "metrics on", "cpu_us_per_msg": cpu, "ack_p99_ms": p99, "saturation_per_s": saturation}
        return {"sizes": {"rate": 200}, "rows": [off, {**on, "scrapes": scrapes}]}

    reports = [report(1100.0, 60.0, 500, 3.0), report(1300.0, 40.0, 400, 9.0), report(1200.0, 90.0, 450, 1.0)]
    off, on = median_rows(reports)
    assert (off["name"], off["runs"], off["cpu_us_per_msg"], off["saturation_per_s"]) == (
        "metrics off",
        3,
        1000,
        600,
    )
    assert (on["cpu_us_per_msg"], on["ack_p99_ms"], on["saturation_per_s"]) == (1200.0, 60.0, 450)
    assert on["cpu_us_per_msg_all"] == [1100.0, 1300.0, 1200.0] and off["scrapes"] is None
    assert on["scrapes"] == {
        "scrapes": 240,
        "failed": 0,
        "ms": {"p50": 12.0, "max": 9.0},
        "messages_counted": 9,
    }
    paths = []
    for i, data in enumerate(reports):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(data))
    print_median(paths)  # the table of the medians, ratios to metrics off
    reports[0]["sizes"]["rate"] = 500
    paths[0].write_text(json.dumps(reports[0]))
    with pytest.raises(SystemExit, match="different rates"):
        print_median(paths)
