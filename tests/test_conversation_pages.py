"""The conversation list in pages: keyset cursor in the list's order, unread totals for the badge,
a fixed number of queries per page, and sync still covering every changed conversation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.chat.conversations import LIST_PAGE_SIZE, conversation_summaries, set_member_flags
from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group
from app.models import Conversation
from tests.chat_helpers import new_client_msg_id


@pytest.fixture
def alice(make_user, login):
    user_id = make_user("alice")
    return user_id, login("alice")


def make_groups(
    app, owner_id: int, count: int, start: int = 0, members: list[int] | None = None
) -> list[int]:
    """`count` groups (of their owner and `members`), each with one message, newest last."""
    ids = []
    with app.app_context():
        for index in range(start, start + count):
            group = create_group(owner_id, f"g{index}", members or [])
            send_message(owner_id, group.conversation_id, new_client_msg_id(), {"type": "txt", "msg": "x"})
            ids.append(group.conversation_id)
    return ids


def say(app, user_id: int, conversation_id: int) -> None:
    with app.app_context():
        send_message(user_id, conversation_id, new_client_msg_id(), {"type": "txt", "msg": "again"})


def all_pages(client, limit: int, between=None) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/conversations", query_string=params)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append(body["conversations"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(body["conversations"]) == limit
        if between:
            between(len(pages))


def token(raw: bytes) -> str:
    """A cursor as the server spells them (URL-safe base64 without padding)."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def expected_order(app, user_id: int) -> list[int]:
    """The order the list promises: pinned first, then last activity, then id (newest first)."""
    with app.app_context():
        items = conversation_summaries([user_id])
    key = [(item["pinned"], datetime.fromisoformat(item["last_activity_at"]), item["id"]) for item in items]
    return [conversation_id for _, _, conversation_id in sorted(key, reverse=True)]


def test_pages_follow_the_list_order_across_pins_and_equal_activity(alice, app):
    alice_id, client = alice
    ids = make_groups(app, alice_id, 23)
    same = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with app.app_context():
        # Ties on activity inside the pinned part, inside the unpinned part, and across both.
        db.session.execute(
            update(Conversation).where(Conversation.id.in_(ids[2:14])).values(last_activity_at=same)
        )
        db.session.commit()
        for conversation_id in (ids[3], ids[5], ids[8], ids[20], ids[0]):
            set_member_flags(alice_id, conversation_id, {"pinned": True})
    pages = all_pages(client, limit=4)
    listed = [item["id"] for page in pages for item in page]
    assert len(listed) == len(set(listed)) == 23
    assert listed == expected_order(app, alice_id)
    assert [item["pinned"] for item in pages[0] + pages[1][:1]] == [True] * 5
    assert not any(item["pinned"] for page in pages[1:] for item in page[1:])
    assert len(pages) == 6 and len(pages[-1]) == 3


def test_the_first_page_has_fifty_and_next_is_null_on_the_last(alice, app):
    alice_id, client = alice
    make_groups(app, alice_id, LIST_PAGE_SIZE + 3)
    first = client.get("/api/v1/conversations").get_json()
    assert set(first) == {"conversations", "cursor", "next", "unread_total", "unread_elsewhere"}
    assert len(first["conversations"]) == LIST_PAGE_SIZE and first["next"]
    rest = client.get("/api/v1/conversations", query_string={"cursor": first["next"]}).get_json()
    assert len(rest["conversations"]) == 3 and rest["next"] is None
    assert "unread_total" not in rest
    both = [item["id"] for item in first["conversations"] + rest["conversations"]]
    assert both == expected_order(app, alice_id)
    whole = client.get("/api/v1/conversations", query_string={"limit": 100}).get_json()
    assert [item["id"] for item in whole["conversations"]] == both and whole["next"] is None


def test_new_activity_between_pages_moves_an_item_up_and_repeats_or_drops_nothing_else(alice, app):
    alice_id, client = alice
    ids = make_groups(app, alice_id, 12)
    moved = []

    def meanwhile(pages_seen: int) -> None:
        if pages_seen == 1:
            # One item of a page already read, and one of a page still to come, get a message.
            for conversation_id in (ids[11], ids[1]):
                say(app, alice_id, conversation_id)
                moved.append(conversation_id)

    pages = all_pages(client, limit=4, between=meanwhile)
    listed = [item["id"] for page in pages for item in page]
    assert len(listed) == len(set(listed))
    # The item that moved from a later page to the top is not met again (live events and sync
    # bring it to the client); everything else is listed exactly once.
    assert set(listed) == set(ids) - {ids[1]}
    assert expected_order(app, alice_id)[:2] == [ids[1], ids[11]]


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "!!!!",
        "not base64 at all",
        token(b"2.5.1"),
        token(b"1.5"),
        token(b"1.5.0"),
        token(b"0.5.99999999999"),
        token(b"0.999999999999999999.5"),
        token(b"\xff\xfe.1.1"),
        "A" * 65,
    ],
)
def test_a_bad_cursor_is_refused(alice, app, cursor):
    alice_id, client = alice
    make_groups(app, alice_id, 2)
    response = client.get("/api/v1/conversations", query_string={"cursor": cursor})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_cursor"
    assert response.get_json()["error"]["fields"] == {"cursor": "not a cursor"}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
def test_a_bad_limit_is_refused(alice, limit):
    _, client = alice
    response = client.get("/api/v1/conversations", query_string={"limit": limit})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_input"
    assert "limit" in response.get_json()["error"]["fields"]


def test_a_cursor_made_from_a_listed_item_continues_after_it(alice, app):
    alice_id, client = alice
    ids = make_groups(app, alice_id, 5)
    first = client.get("/api/v1/conversations", query_string={"limit": 2}).get_json()
    assert [item["id"] for item in first["conversations"]] == [ids[4], ids[3]]
    # The cursor is opaque to clients, but it names the last item's place, not an offset:
    # removing an item listed before it shifts nothing.
    with app.app_context():
        set_member_flags(alice_id, ids[4], {"hidden": True})
    rest = client.get("/api/v1/conversations", query_string={"cursor": first["next"]}).get_json()
    assert [item["id"] for item in rest["conversations"]] == [ids[2], ids[1], ids[0]]


def test_the_first_page_carries_the_unread_the_badge_needs(alice, make_user, befriend, app, login):
    alice_id, _ = alice
    bob_id = make_user("bob")
    befriend(alice_id, bob_id)
    ids = make_groups(app, alice_id, LIST_PAGE_SIZE + 5, members=[bob_id])
    # Two unread in the oldest conversation (beyond the first page), one in the newest, and three
    # in a muted one that the badge leaves out.
    for conversation_id in (ids[0], ids[0], ids[-1], ids[1], ids[1], ids[1]):
        say(app, bob_id, conversation_id)
    with app.app_context():
        set_member_flags(alice_id, ids[1], {"muted": True})
        # Keep the first page's order fixed: the newest-by-id group stays on top.
        base = datetime(2026, 1, 1, tzinfo=UTC)
        for offset, conversation_id in enumerate(ids):
            db.session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(last_activity_at=base + timedelta(seconds=offset))
            )
        db.session.commit()
    client = login("alice")
    first = client.get("/api/v1/conversations").get_json()
    on_page = {item["id"]: item["unread"] for item in first["conversations"]}
    assert ids[0] not in on_page and ids[1] not in on_page and on_page[ids[-1]] == 1
    assert first["unread_total"] == 3
    assert first["unread_elsewhere"] == {str(ids[0]): 2}


def _page_queries(client, count_queries, cursor=None) -> tuple[int, str | None]:
    params = {"cursor": cursor} if cursor else {}
    with count_queries() as statements:
        response = client.get("/api/v1/conversations", query_string=params)
    assert response.status_code == 200
    return len(statements), response.get_json()["next"]


def test_each_page_costs_the_same_queries_as_rows_grow(alice, app, count_queries):
    alice_id, client = alice
    make_groups(app, alice_id, LIST_PAGE_SIZE + 5)
    small_first, cursor = _page_queries(client, count_queries)
    small_next, _ = _page_queries(client, count_queries, cursor)
    make_groups(app, alice_id, 3 * LIST_PAGE_SIZE, start=1000)
    big_first, cursor = _page_queries(client, count_queries)
    big_next, _ = _page_queries(client, count_queries, cursor)
    assert (big_first, big_next) == (small_first, small_next)
    assert small_first <= 5 and small_next <= 4


def test_sync_still_brings_every_changed_conversation(alice, app):
    alice_id, client = alice
    cursor = client.get("/api/v1/conversations").get_json()["cursor"]
    ids = make_groups(app, alice_id, LIST_PAGE_SIZE + 20)
    synced = client.get("/api/v1/sync", query_string={"cursor": cursor}).get_json()
    assert {item["id"] for item in synced["conversations"]} == set(ids)
