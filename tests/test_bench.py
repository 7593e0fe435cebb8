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
        f"run ({site}/gevent/hub.py:1);{handler};send_message ({ROOT}/app/chat/services.py:340);"
        f"commit ({site}/sqlalchemy/orm/session.py:2177) 3\n"
        f"receive ({site}/geventwebsocket/websocket.py:301) 1\n"
    )
    total, parts = fold(raw)
    shares = dict(parts)
    assert total == 4
    assert shares["socket event, all of it"] == 75.0
    assert shares["    send_message"] == 75.0 and shares["      commit"] == 75.0
    assert shares["websocket frames (gevent-websocket)"] == 25.0
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
