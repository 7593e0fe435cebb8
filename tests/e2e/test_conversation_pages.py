"""The conversation list in the browser: the first page, the rest as the list is scrolled, the tab
badge counting unread beyond the loaded pages, and a live message bringing an unloaded chat up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect
from sqlalchemy import update

from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group
from app.models import Conversation
from tests.conftest import PASSWORD
from tests.e2e.conftest import PHONE
from tests.socket_client import Device

GROUPS = 120


def listed_ids(page) -> list[int]:
    return page.locator(".conv").evaluate_all("items => items.map(item => Number(item.dataset.id))")


def test_scrolling_the_list_loads_every_page_once(new_page, sign_in, make_user, befriend, app):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    with app.app_context():
        for number in range(GROUPS):
            group = create_group(alice_id, f"Group {number:03}", [bob_id])
            send_message(alice_id, group.conversation_id, uuid.uuid4().hex, {"type": "txt", "msg": "hello"})
            ids.append(group.conversation_id)
        # The oldest group holds three messages Alice has not read: far beyond the first page.
        for _ in range(3):
            send_message(bob_id, ids[0], uuid.uuid4().hex, {"type": "txt", "msg": "unread"})
        for offset, conversation_id in enumerate(ids):
            db.session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(last_activity_at=base + timedelta(minutes=offset))
            )
        db.session.commit()

    alice = sign_in(new_page(PHONE), "alice")
    expect(alice.locator(".conv")).to_have_count(50)
    # The badge counts the unread of chats whose page is not loaded yet.
    expect(alice.locator("#badge-chats")).to_have_text("3")
    panel = alice.locator("#panel")
    for expected in (100, GROUPS + 1):
        panel.evaluate("el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
        expect(alice.locator(".conv")).to_have_count(expected)
    shown = listed_ids(alice)
    assert len(shown) == len(set(shown))
    # The direct chat with Bob (opened now) first, then the groups from the newest.
    assert shown[1:] == ids[::-1]
    expect(alice.locator(f'.conv[data-id="{ids[0]}"] .badge')).to_have_text("3")
    expect(alice.locator("#badge-chats")).to_have_text("3")


def test_a_live_message_brings_an_unloaded_chat_to_the_top(
    new_page, sign_in, make_user, befriend, app, e2e_server
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    ids = []
    with app.app_context():
        for number in range(60):
            group = create_group(alice_id, f"Group {number:03}", [bob_id])
            send_message(alice_id, group.conversation_id, uuid.uuid4().hex, {"type": "txt", "msg": "hello"})
            ids.append(group.conversation_id)
    alice = sign_in(new_page(PHONE), "alice")
    expect(alice.locator(".conv")).to_have_count(50)
    expect(alice.locator(f'.conv[data-id="{ids[0]}"]')).to_have_count(0)
    expect(alice.locator("#conn")).to_be_hidden()
    # Bob sends from a device of his own, so the message is delivered live by the server.
    with Device(e2e_server.url, "bob", PASSWORD, connect=False) as bob:
        sent = bob.post(
            f"/api/v1/conversations/{ids[0]}/messages",
            {"client_msg_id": uuid.uuid4().hex, "body": {"type": "txt", "msg": "wake up"}},
        )
        assert sent.status_code == 201, sent.text
    expect(alice.locator(".conv").first).to_have_attribute("data-id", str(ids[0]))
    expect(alice.locator(".conv").first.locator(".conv-preview")).to_contain_text("wake up")
    expect(alice.locator("#badge-chats")).to_have_text("1")
    # Scrolling on loads the rest; the chat that moved up is not listed twice.
    alice.locator("#panel").evaluate(
        "el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }"
    )
    expect(alice.locator(".conv")).to_have_count(61)
    shown = listed_ids(alice)
    assert len(shown) == len(set(shown))
