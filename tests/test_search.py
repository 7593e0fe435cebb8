"""Message and contact search: Chinese and English substrings, what each user may see, an index
that follows sends, edits, recalls and forwards at once, filters, stable pages, bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import Message, MessageHide, StreamCounter
from app.search import messages as search_module

SEARCH = "/api/v1/search/messages"
CONTACTS = "/api/v1/search/contacts"


@pytest.fixture(autouse=True, params=["index", "scan"])
def path(request, monkeypatch):
    """Every test runs both ways a 3+ character query may be answered: from the trigram index
    (what someone who sees many messages gets) and by reading the user's own messages (someone who
    sees few; the default for the small worlds here)."""
    if request.param == "index":
        monkeypatch.setattr(search_module, "VISIBLE_SCAN_MAX", 0)
    return request.param


@dataclass
class World:
    alice: object
    bob: object
    carol: object
    ids: dict
    direct: int  # alice and bob
    group_id: int
    group: int  # the group's conversation: alice (owner), bob, and carol later


@pytest.fixture
def world(make_user, login, befriend):
    ids = {name: make_user(name) for name in ("alice", "bob", "carol")}
    befriend(ids["alice"], ids["bob"])
    befriend(ids["alice"], ids["carol"])
    alice, bob, carol = login("alice"), login("bob"), login("carol")
    direct = alice.post("/api/v1/conversations", json={"user_id": ids["bob"]}).get_json()["conversation"][
        "id"
    ]
    created = alice.post("/api/v1/groups", json={"name": "Project Phoenix", "member_ids": [ids["bob"]]})
    group = created.get_json()["group"]
    return World(alice, bob, carol, ids, direct, group["id"], group["conversation_id"])


_counter = iter(range(1, 1_000_000))


def send(client, conversation_id: int, msg: str | None = None, body: dict | None = None) -> dict:
    payload = {"client_msg_id": f"search-{next(_counter):08d}", "body": body or {"type": "txt", "msg": msg}}
    response = client.post(f"/api/v1/conversations/{conversation_id}/messages", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]


def search(client, q: str, status: int = 200, **params) -> dict:
    response = client.get(SEARCH, query_string={"q": q, **params})
    assert response.status_code == status, response.get_json()
    return response.get_json()


def texts(result: dict) -> list[str]:
    return [hit["message"]["body"].get("msg") or hit["snippet"]["text"] for hit in result["hits"]]


def state(app) -> tuple:
    with app.app_context():
        messages = db.session.scalar(select(func.count(Message.id)))
        hides = db.session.scalar(select(func.count()).select_from(MessageHide))
        return messages, hides, db.session.scalar(select(StreamCounter.pos))


# --- what matches ----------------------------------------------------------------------------


def test_chinese_substrings_of_any_length(world):
    send(world.alice, world.direct, "明天下午三点开会，请带上会议纪要和上周的材料")
    send(world.bob, world.direct, "我下周去杭州出差，顺便看看西湖")
    send(world.bob, world.direct, "会议室已经订好了")
    found = search(world.alice, "会议纪要")
    assert texts(found) == ["明天下午三点开会，请带上会议纪要和上周的材料"]
    snippet = found["hits"][0]["snippet"]
    start, end = snippet["highlights"][0]
    assert snippet["text"][start:end] == "会议纪要" and found["partial"] is False
    assert texts(search(world.bob, "杭州")) == ["我下周去杭州出差，顺便看看西湖"]
    # One character: newest first, from the scan of recent messages.
    assert texts(search(world.alice, "会")) == [
        "会议室已经订好了",
        "明天下午三点开会，请带上会议纪要和上周的材料",
    ]
    assert search(world.alice, "北京")["hits"] == []


def test_english_any_case_prefixes_and_words_inside(world):
    send(world.alice, world.direct, "Meeting notes for Tuesday")
    send(world.bob, world.direct, "let's MEET at noon")
    send(world.bob, world.direct, "nothing to see")
    send(world.alice, world.direct, "混合 mixed 会议纪要 and Meetings 中文")
    assert len(search(world.alice, "meet")["hits"]) == 3
    assert texts(search(world.alice, "MEETING")) == [
        "混合 mixed 会议纪要 and Meetings 中文",
        "Meeting notes for Tuesday",
    ]
    assert texts(search(world.alice, "notes for")) == ["Meeting notes for Tuesday"]
    assert texts(search(world.alice, "ixe")) == ["混合 mixed 会议纪要 and Meetings 中文"]
    assert texts(search(world.alice, "纪要 and meet")) == ["混合 mixed 会议纪要 and Meetings 中文"]
    hit = search(world.alice, "tuesday")["hits"][0]
    assert hit["conversation"] == {"id": world.direct, "kind": "direct", "name": "bob", "avatar_url": None}
    assert hit["message"]["sender"]["id"] == world.ids["alice"] and hit["message"]["seq"] == 1


def test_locations_files_and_chat_histories_are_searched_by_their_names(world):
    send(
        world.alice,
        world.direct,
        body={"type": "loc", "title": "杭州东站 East Station", "lat": 30.29, "lng": 120.21},
    )
    assert texts(search(world.bob, "东站")) == ["杭州东站 East Station"]
    assert search(world.bob, "30.29")["hits"] == []  # coordinates are not text


def test_snippets_are_short_and_mark_every_match(world):
    long = "x" * 300 + " needle here " + "y" * 20 + " NEEDLE again " + "z" * 300
    send(world.alice, world.direct, long)
    snippet = search(world.alice, "needle")["hits"][0]["snippet"]
    assert len(snippet["text"]) <= 120
    assert [snippet["text"][a:b] for a, b in snippet["highlights"]] == ["needle", "NEEDLE"]


# --- who sees what ---------------------------------------------------------------------------


def test_only_what_each_member_may_see(app, world):
    send(world.alice, world.group, "secret before carol joined")
    invited = world.alice.post(
        f"/api/v1/groups/{world.group_id}/members", json={"user_ids": [world.ids["carol"]]}
    )
    assert invited.status_code == 200, invited.get_json()
    send(world.alice, world.group, "secret while everyone is in")
    assert world.bob.delete(f"/api/v1/groups/{world.group_id}/members/{world.ids['bob']}").status_code == 204
    send(world.alice, world.group, "secret after bob left")
    send(world.alice, world.direct, "secret between alice and bob")
    hidden = send(world.alice, world.group, "secret alice deleted for herself")
    hide = world.alice.post(
        f"/api/v1/conversations/{world.group}/messages/hide", json={"seqs": [hidden["seq"]]}
    )
    assert hide.status_code == 200
    recalled = send(world.alice, world.group, "secret recalled")
    assert (
        world.alice.post(
            f"/api/v1/conversations/{world.group}/messages/{recalled['seq']}/recall", json={}
        ).status_code
        == 200
    )

    assert texts(search(world.carol, "secret")) == [
        "secret alice deleted for herself",
        "secret after bob left",
        "secret while everyone is in",
    ]
    assert texts(search(world.bob, "secret")) == [
        "secret between alice and bob",
        "secret while everyone is in",
        "secret before carol joined",
    ]
    assert texts(search(world.alice, "secret")) == [
        "secret between alice and bob",
        "secret after bob left",
        "secret while everyone is in",
        "secret before carol joined",
    ]
    # The same rules on the short-query path, and system messages ("alice created the group") never.
    assert len(search(world.carol, "se")["hits"]) == 3
    assert search(world.alice, "created the group")["hits"] == []
    assert search(world.alice, "gr")["hits"] == []


def test_an_edit_and_a_recall_change_the_hits_at_once(world):
    sent = send(world.alice, world.direct, "draft alpha plan")
    assert len(search(world.bob, "alpha")["hits"]) == 1
    edit = world.alice.patch(
        f"/api/v1/conversations/{world.direct}/messages/{sent['seq']}",
        json={"msg": "final omega plan", "version": 0},
    )
    assert edit.status_code == 200, edit.get_json()
    assert search(world.bob, "alpha")["hits"] == []
    assert search(world.bob, "lp")["hits"] == []
    assert texts(search(world.bob, "omega")) == ["final omega plan"]
    recall = world.alice.post(f"/api/v1/conversations/{world.direct}/messages/{sent['seq']}/recall", json={})
    assert recall.status_code == 200
    assert search(world.bob, "omega")["hits"] == [] and search(world.bob, "om")["hits"] == []


def test_forwarded_copies_are_found_in_their_targets(world):
    sent = send(world.bob, world.direct, "forward me 转发内容")
    targets = [{"conversation_id": world.group, "client_msg_id": "fwd-search-1"}]
    payload = {"conversation_id": world.direct, "seqs": [sent["seq"]], "mode": "separate", "targets": targets}
    assert world.alice.post("/api/v1/messages/forward", json=payload).status_code == 200
    merged = {
        **payload,
        "mode": "merged",
        "title": "周报 history",
        "targets": [{**targets[0], "client_msg_id": "fwd-search-2"}],
    }
    assert world.alice.post("/api/v1/messages/forward", json=merged).status_code == 200
    hits = search(world.alice, "转发内容", conversation_id=world.group)["hits"]
    assert [hit["message"]["type"] for hit in hits] == ["merged", "txt"]
    assert hits[0]["snippet"]["text"] == "周报 history forward me 转发内容"
    assert [hit["message"]["type"] for hit in search(world.alice, "周报")["hits"]] == ["merged"]


# --- filters and pages -----------------------------------------------------------------------


def test_filters(app, world):
    first = send(world.alice, world.direct, "report one")
    send(world.bob, world.direct, "report two")
    send(world.alice, world.group, "report three")
    send(world.alice, world.group, body={"type": "loc", "title": "report office", "lat": 1.0, "lng": 2.0})
    assert texts(search(world.alice, "report", conversation_id=world.direct)) == ["report two", "report one"]
    assert texts(search(world.alice, "rep", sender_id=world.ids["bob"])) == ["report two"]
    assert texts(search(world.alice, "report", type="loc")) == ["report office"]
    assert len(search(world.alice, "report", type="txt")["hits"]) == 3
    with app.app_context():
        db.session.execute(
            text("UPDATE messages SET created_at = :old WHERE id = :id"),
            {"old": datetime(2026, 1, 5, 12), "id": first["id"]},
        )
        db.session.commit()
    assert texts(search(world.alice, "report", before="2026-02-01")) == ["report one"]
    assert len(search(world.alice, "report", after="2026-02-01T00:00:00Z")["hits"]) == 3
    assert texts(search(world.alice, "re", before="2026-01-06T00:00:00+08:00")) == ["report one"]


@pytest.mark.parametrize("query", ["page", "pa"])
def test_pages_are_stable_while_messages_arrive(world, query):
    sent = [send(world.alice, world.direct, f"page {n}")["id"] for n in range(25)]
    seen, cursor = [], None
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = search(world.bob, query, **params)
        seen += [hit["message"]["id"] for hit in page["hits"]]
        send(world.bob, world.direct, "page newer")  # arrives between pages: never in a later one
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(sent, reverse=True)


@pytest.fixture
def windows(monkeypatch):
    """Tiny id windows, so a few messages span several; returns the windows each search read, as
    (low, high, plan) per statement."""
    for name, value in (("FIRST_WINDOW", 2), ("GROWTH", 2), ("MAX_WINDOWS", 4)):
        monkeypatch.setattr(search_module, name, value)
    monkeypatch.setattr(search_module, "SCAN_FIRST", 2)
    monkeypatch.setattr(search_module, "SCAN_BUDGET", 12)
    monkeypatch.setattr(search_module, "VISIBLE_SCAN_MAX", 0)  # the index's windows, whatever `path`
    read = []
    statement = search_module._indexed_statement

    def recording(dialect, query, filters, params, limit, low, high, plan="index"):
        read.append((low, high, plan))
        return statement(dialect, query, filters, params, limit, low, high, plan)

    monkeypatch.setattr(search_module, "_indexed_statement", recording)
    return read


def test_a_common_word_spread_over_many_windows_pages_without_gaps(app, world, windows, befriend):
    befriend(world.ids["bob"], world.ids["carol"])
    expected = []
    for n in range(30):
        message = send(
            world.alice, world.direct if n % 2 else world.group, f"common {n}" if n % 3 else f"x {n}"
        )
        if n % 3:
            expected.append(message["id"])
    # Newer matches alice may not see: the windows start below them and skip them.
    elsewhere = world.bob.post("/api/v1/conversations", json={"user_id": world.ids["carol"]})
    for n in range(5):
        send(world.bob, elsewhere.get_json()["conversation"]["id"], f"common elsewhere {n}")
    seen, cursor, pages = [], None, 0
    while True:
        windows.clear()
        page = search(world.alice, "common", limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [hit["message"]["id"] for hit in page["hits"]]
        pages += 1
        assert windows and all(low <= high for low, high, _ in windows)
        assert all(windows[i + 1][1] == windows[i][0] - 1 for i in range(len(windows) - 1)), windows
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(expected, reverse=True)
    assert pages == 7  # 20 hits by 3, the last page without `next`
    # Page after page in one search: the first page alone took several windows.
    windows.clear()
    search(world.alice, "common", limit=3)
    assert len(windows) > 1
    if dialect(app) == "postgresql":  # the primary key first, then the trigram index for the rest
        assert [plan for _, _, plan in windows][0] == "scan"


def test_a_rare_word_in_the_oldest_message_is_found(app, world, windows):
    oldest = send(world.alice, world.direct, "the only 季度预算评审 ever")
    for n in range(40):
        send(world.alice if n % 2 else world.bob, world.direct, f"filler {n}")
    windows.clear()
    result = search(world.bob, "季度预算评审")
    assert [hit["message"]["id"] for hit in result["hits"]] == [oldest["id"]] and result["next"] is None
    # Few statements even so: a few windows of nothing, then everything left in one.
    assert 2 <= len(windows) <= search_module.MAX_WINDOWS and windows[-1][0] == 1
    if dialect(app) == "postgresql":
        assert windows[-1][2] == "index"


def test_a_cursor_in_the_middle_continues_below_it(world, windows):
    sent = [
        send(world.alice, world.direct, f"middle {n}" if n % 2 else f"odd one {n}")["id"] for n in range(24)
    ]
    hits = [message_id for n, message_id in enumerate(sent) if n % 2]
    newest_first = sorted(hits, reverse=True)
    for cursor in (hits[6], sent[10], hits[0] + 1, newest_first[0]):  # a hit, a message that is not one
        below = [message_id for message_id in newest_first if message_id < cursor]
        assert [
            hit["message"]["id"] for hit in search(world.bob, "middle", cursor=str(cursor), limit=50)["hits"]
        ] == below
        page = search(world.bob, "middle", cursor=str(cursor), limit=2)
        assert [hit["message"]["id"] for hit in page["hits"]] == below[:2]
        assert page["next"] == (str(below[1]) if len(below) > 2 else None)


def dialect(app) -> str:
    with app.app_context():
        return db.engine.dialect.name


def test_short_queries_scan_a_bounded_number_of_messages(world, monkeypatch):
    monkeypatch.setattr(search_module, "SCAN_LIMIT", 4)
    send(world.alice, world.direct, "杭州 old")
    for n in range(6):
        send(world.alice, world.direct, f"filler {n}")
    first = search(world.bob, "杭州")
    assert first["hits"] == [] and first["partial"] is True and first["next"]
    second = search(world.bob, "杭州", cursor=first["next"])
    assert texts(second) == ["杭州 old"] and second["partial"] is False and second["next"] is None
    # Three characters use the index: no bound.
    assert texts(search(world.bob, "杭州 o")) == ["杭州 old"]


def test_wildcards_are_literal(world):
    send(world.alice, world.direct, "discount 100%")
    send(world.alice, world.direct, "100 percent, 1000 items")
    send(world.alice, world.direct, "snake_case")
    send(world.alice, world.direct, "snakeXcase back\\slash")
    assert texts(search(world.alice, "100%")) == ["discount 100%"]
    assert texts(search(world.alice, "%")) == ["discount 100%"]
    assert texts(search(world.alice, "e_c")) == ["snake_case"]
    assert texts(search(world.alice, "_")) == ["snake_case"]
    assert texts(search(world.alice, "\\")) == ["snakeXcase back\\slash"]


@pytest.mark.parametrize(
    "query", ['"', '""', "AND", "a AND b", "*", "NEAR(", "x OR y", "col:val", "^start", '"a" NOT']
)
def test_search_syntax_is_plain_text(world, query):
    send(world.alice, world.direct, f"literally {query} here")
    assert texts(search(world.alice, query)) == [f"literally {query} here"]


def test_bad_input_is_refused_and_changes_nothing(app, world, make_user, login):
    send(world.alice, world.direct, "something")
    before = state(app)
    cases = [
        ({"q": ""}, 400, "invalid_query"),
        ({"q": "   "}, 400, "invalid_query"),
        ({"q": "x" * 101}, 400, "invalid_query"),
        ({"q": "ok", "type": "img"}, 400, "invalid_input"),
        ({"q": "ok", "type": "bogus"}, 400, "invalid_input"),
        ({"q": "ok", "before": "yesterday"}, 400, "invalid_input"),
        ({"q": "ok", "after": "2026-13-01"}, 400, "invalid_input"),
        ({"q": "ok", "after": "9999-12-31T23:59:59-23:00"}, 400, "invalid_input"),
        ({"q": "ok", "cursor": "abc"}, 400, "invalid_cursor"),
        ({"q": "ok", "cursor": "0"}, 400, "invalid_cursor"),
        ({"q": "ok", "limit": "0"}, 400, "invalid_input"),
        ({"q": "ok", "limit": "51"}, 400, "invalid_input"),
        ({"q": "ok", "conversation_id": "x"}, 400, "invalid_input"),
        ({"q": "ok", "conversation_id": str(world.direct)}, 404, "not_found"),  # carol is not in it
        ({"q": "ok", "conversation_id": "999999"}, 404, "not_found"),
    ]
    for params, status, code in cases:
        response = world.carol.get(SEARCH, query_string=params)
        assert (response.status_code, response.get_json()["error"]["code"]) == (status, code), params
    assert world.carol.get(CONTACTS, query_string={"q": ""}).get_json()["error"]["code"] == "invalid_query"
    assert app.test_client().get(SEARCH, query_string={"q": "something"}).status_code == 401
    assert state(app) == before
    assert len(search(world.carol, "x" * 100)["hits"]) == 0


def test_searches_are_rate_limited_per_user(app, world, monkeypatch):
    monkeypatch.setitem(app.config, "SEARCH_RATE_LIMIT", "2 per minute")
    search(world.alice, "one")
    world.alice.get(CONTACTS, query_string={"q": "bo"})
    response = world.alice.get(SEARCH, query_string={"q": "three"})
    assert response.status_code == 429 and response.get_json()["error"]["code"] == "rate_limited"
    assert response.headers["Retry-After"]
    search(world.bob, "others still may")


@pytest.mark.parametrize("query", ["needle", "ne"])
def test_statements_do_not_grow_with_the_hits(app, world, count_queries, query):
    def statements() -> int:
        with app.app_context(), count_queries() as recorded:
            result = search_module.search_messages(world.ids["bob"], query, conversation_id=world.group)
            assert result["hits"]
        return len(recorded)

    send(world.alice, world.group, "needle 0")
    few = statements()
    for n in range(15):
        send(world.alice if n % 2 else world.bob, world.group if n % 3 else world.direct, f"needle {n}")
    # The membership check, the newest visible id, the windows (at most MAX_WINDOWS, or scan,
    # scan, index on PostgreSQL), the hits.
    assert statements() == few <= 3 + search_module.MAX_WINDOWS


# --- the index itself ------------------------------------------------------------------------


def test_the_migration_indexes_messages_stored_before_it(app, world):
    first = send(world.alice, world.direct, "stored before the index 旧消息")
    with app.app_context():
        # Nothing may hold the tables a downgrade rebuilds (SQLite).
        db.session.remove()
        db.engine.dispose()
        downgrade(revision="0006")
        try:
            # Stored as Parley at 0006 would (the models are newer than that schema): the next
            # seq, and a row of the columns messages had then.
            execute = db.session.execute
            conversations = text(
                "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = :c RETURNING last_seq"
            )
            seq = execute(conversations, {"c": world.direct}).scalar_one()
            row = {"conversation_id": world.direct, "seq": seq, "sender_id": first["sender"]["id"]}
            body = {"type": "txt", "msg": "stored without the index 新消息"}
            row.update(type="txt", body=body, stream_pos=0, created_at=datetime.now(UTC))
            execute(Message.__table__.insert().values(**row))
            db.session.commit()
        finally:
            db.session.remove()
            upgrade()
    assert len(search(world.alice, "stored")["hits"]) == 2
    assert texts(search(world.alice, "新消息")) == ["stored without the index 新消息"]


@pytest.mark.postgresql
def test_postgresql_answers_from_the_trigram_index(app, world):
    send(world.alice, world.direct, "indexed 会议纪要")
    with app.app_context():
        connection = db.session.connection()
        for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
            connection.execute(text(f"SET LOCAL {setting} = off"))
        filters, params = search_module._filters(world.ids["alice"], None, None, None, None, None, None)
        sql, values = search_module._indexed_statement(
            "postgresql", "会议纪要", filters, params, 21, 1, 10**12, "index"
        )
        plan = connection.execute(text(f"EXPLAIN {sql}"), values).scalars().all()
        # A window scan walks the primary key and tests the text inline, never the GIN index.
        sql, values = search_module._indexed_statement(
            "postgresql", "会议纪要", filters, params, 21, 1000, 2000, "scan"
        )
        scan = connection.execute(text(f"EXPLAIN {sql}"), values).scalars().all()
        db.session.rollback()
    assert "ix_messages_search" in "\n".join(plan), "\n".join(plan)
    assert "pk_messages" in "\n".join(scan) and "ix_messages_search" not in "\n".join(scan), "\n".join(scan)


# --- contacts --------------------------------------------------------------------------------


def test_contacts_by_remark_nickname_username_and_group_name(app, world, make_user):
    make_user("zhang_stranger", nickname="张三")
    assert (
        world.alice.patch(
            f"/api/v1/friends/{world.ids['carol']}", json={"remark": "老同学 Carol"}
        ).status_code
        == 200
    )
    world.alice.post("/api/v1/groups", json={"name": "周末爬山群", "member_ids": [world.ids["carol"]]})
    by_remark = world.alice.get(CONTACTS, query_string={"q": "老同学"}).get_json()
    assert [friend["user"]["id"] for friend in by_remark["friends"]] == [world.ids["carol"]]
    assert by_remark["friends"][0]["remark"] == "老同学 Carol"
    by_name = world.alice.get(CONTACTS, query_string={"q": "BO"}).get_json()
    assert [friend["user"]["username"] for friend in by_name["friends"]] == ["bob"]
    groups = world.alice.get(CONTACTS, query_string={"q": "爬山"}).get_json()["groups"]
    assert [group["name"] for group in groups] == ["周末爬山群"]
    assert (
        world.alice.get(CONTACTS, query_string={"q": "phoenix"}).get_json()["groups"][0]["name"]
        == "Project Phoenix"
    )
    # Not friends, not my groups, not someone else's remark.
    assert world.alice.get(CONTACTS, query_string={"q": "张三"}).get_json() == {"friends": [], "groups": []}
    assert world.bob.get(CONTACTS, query_string={"q": "爬山"}).get_json()["groups"] == []
    assert world.carol.get(CONTACTS, query_string={"q": "老同学"}).get_json()["friends"] == []


def test_someone_who_sees_few_messages_is_answered_from_them_not_from_the_index(
    app, world, count_queries, monkeypatch, path
):
    send(world.alice, world.direct, "the quarterly meeting notes")
    monkeypatch.setattr(search_module, "VISIBLE_SCAN_MAX", 1 if path == "index" else 10)
    with count_queries() as statements:
        found = search(world.alice, "meeting")
    assert texts(found) == ["the quarterly meeting notes"] and found["partial"] is False
    with app.app_context():
        dialect = db.engine.dialect.name
    index = "messages_search" if dialect == "sqlite" else "ILIKE"
    used_index = any(index in statement and "scanned" not in statement for statement in statements)
    assert used_index is (path == "index")


def test_the_index_is_kept_by_triggers_at_the_head_of_the_migrations(app, path):
    """A later migration that rebuilds `messages` on SQLite (batch mode) drops its triggers with
    it; it must create them again, or new messages would silently go unsearchable."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            indexes = db.session.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")
            ).all()
            assert "ix_messages_search" in indexes
            return
        triggers = db.session.scalars(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'")
        ).all()
    assert sorted(triggers) == [f"messages_search_{name}" for name in ("delete", "insert", "update")]
