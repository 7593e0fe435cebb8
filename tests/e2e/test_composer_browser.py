"""The composer and the history window in the browser: replies and jumps to what they quote,
edits from the composer, @mention autocomplete and "[@me]" in the list, the pin bar, the unread
divider, and the buttons that jump to the newest message and to the first mention."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.chat.conversations import set_member_flags
from app.chat.read import mark_read
from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group
from app.models import ConversationMember, Message
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id, open_chat, send_text
from tests.socket_client import Device

FLASH = re.compile(r"\bflash\b")


def seed(
    app, sender_id: int, conversation_id: int, texts: list[str], extras: dict | None = None
) -> list[int]:
    """Store messages as `sender_id` sent them; returns their seqs."""
    seqs = []
    with app.app_context():
        for text in texts:
            message, _ = send_message(
                sender_id,
                conversation_id,
                uuid.uuid4().hex,
                {"type": "txt", "msg": text},
                (extras or {}).get(text),
            )
            seqs.append(message["seq"])
    return seqs


def read_up_to(app, user_id: int, conversation_id: int, seq: int) -> None:
    with app.app_context():
        mark_read(user_id, conversation_id, seq)


def read_seq(app, user_id: int, conversation_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(ConversationMember.read_seq).where(
                ConversationMember.user_id == user_id, ConversationMember.conversation_id == conversation_id
            )
        )


def stored(app, conversation_id: int, seq: int) -> Message:
    with app.app_context():
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
        )
        db.session.expunge(message)
        return message


def row(page: Page, seq: int):
    return page.locator(f'.msg-list .msg[data-seq="{seq}"]')


def menu_action(page: Page, seq: int, action: str) -> None:
    """Open a message's menu (right-click) and pick an action."""
    row(page, seq).locator(".bubble").click(button="right")
    page.click(f'.msg-menu [data-action="{action}"]')


def scroll_down(page: Page) -> None:
    page.locator(".msgs").evaluate(
        "el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }"
    )


def test_reply_jumps_to_the_quote_beyond_the_page_and_edits_go_through_the_composer(
    new_page, sign_in, make_user, befriend, app, e2e_server
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    conversation_id = direct_conversation_id(app, alice_id)
    seqs = seed(app, bob_id, conversation_id, [f"message {n}" for n in range(1, 121)])
    read_up_to(app, alice_id, conversation_id, seqs[-1])

    alice = sign_in(new_page(DESKTOP), "alice")
    open_chat(alice)
    expect(row(alice, seqs[-1])).to_be_visible()
    expect(alice.locator(".unread-divider")).to_have_count(0)
    expect(row(alice, seqs[0])).to_have_count(0)

    # Reply from the menu: a bar above the input, then the send carries reply_to.
    menu_action(alice, seqs[-1], "reply")
    expect(alice.locator(".compose-bar.reply")).to_contain_text("Reply to Bob")
    expect(alice.locator(".compose-bar.reply .compose-bar-preview")).to_have_text("message 120")
    send_text(alice, "my answer")
    expect(alice.locator(".compose-bar")).to_be_hidden()
    mine = alice.locator(".msg.mine").last
    expect(mine.locator(".bubble.text")).to_have_text("my answer")
    expect(mine.locator(".quote")).to_contain_text("message 120")
    answer_seq = seqs[-1] + 1
    expect(row(alice, answer_seq)).to_be_visible()
    assert stored(app, conversation_id, answer_seq).reply_to_seq == seqs[-1]

    # Bob, on his phone, sees the quote; a click on it shows the message it quotes.
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(bob)
    expect(row(bob, answer_seq).locator(".quote")).to_contain_text("message 120")
    bob.locator(".msgs").evaluate("el => { el.scrollTop = 0; }")
    row(bob, answer_seq).locator(".quote").click()
    expect(row(bob, seqs[-1])).to_be_in_viewport()

    # A reply to the very first message: far beyond the loaded page. The click loads the page
    # around it (the window no longer reaches the newest message) and flashes it.
    with Device(e2e_server.url, "bob", PASSWORD) as device:
        ack = device.call(
            "message:send",
            {
                "conversation_id": conversation_id,
                "client_msg_id": uuid.uuid4().hex,
                "body": {"type": "txt", "msg": "remember this?"},
                "reply_to": seqs[0],
            },
        )
        assert ack["ok"], ack
    far = ack["message"]["seq"]
    expect(row(alice, far).locator(".quote")).to_contain_text("message 1")
    row(alice, far).locator(".quote").click()
    expect(row(alice, seqs[0])).to_be_in_viewport()
    expect(row(alice, seqs[0])).to_have_class(FLASH)
    expect(alice.locator(".older")).to_have_text("Beginning of the conversation")
    expect(row(alice, far)).to_have_count(0)
    expect(alice.locator(".jump-bottom")).to_be_visible()
    alice.click(".jump-bottom")
    expect(row(alice, far)).to_be_in_viewport()
    expect(alice.locator(".jump-bottom")).to_be_hidden()

    # Edit my answer in the composer: Esc cancels and gives the draft back; Enter saves.
    alice.fill(".composer-input", "a draft")
    menu_action(alice, answer_seq, "edit")
    expect(alice.locator(".compose-bar.edit")).to_contain_text("Editing")
    expect(alice.locator(".composer-input")).to_have_value("my answer")
    alice.press(".composer-input", "Escape")
    expect(alice.locator(".compose-bar")).to_be_hidden()
    expect(alice.locator(".composer-input")).to_have_value("a draft")
    menu_action(alice, answer_seq, "edit")
    alice.fill(".composer-input", "my edited answer")
    alice.press(".composer-input", "Enter")
    expect(row(alice, answer_seq).locator(".bubble.text")).to_have_text("my edited answer")
    expect(alice.locator(".composer-input")).to_have_value("a draft")
    expect(row(bob, answer_seq).locator(".bubble.text")).to_have_text("my edited answer")
    edited = stored(app, conversation_id, answer_seq)
    assert (edited.body["msg"], edited.edit_count) == ("my edited answer", 1)
    # Nothing new was sent by the edit.
    expect(alice.locator(".msg.mine")).to_have_count(1)


def test_mention_autocomplete_and_at_me_in_the_list_also_in_a_muted_group(
    new_page, sign_in, make_user, befriend, app
):
    alice_id = make_user("alice", nickname="Alice")
    bob_id = make_user("bob", nickname="Bob")
    carol_id = make_user("carol", nickname="Carol")
    befriend(alice_id, bob_id)
    befriend(alice_id, carol_id)
    with app.app_context():
        team = create_group(alice_id, "Team", [bob_id, carol_id]).conversation_id
        quiet = create_group(alice_id, "Quiet", [bob_id]).conversation_id
        set_member_flags(bob_id, quiet, {"muted": True})
    seed(app, alice_id, team, ["welcome"])
    seed(app, alice_id, quiet, ["shh"])
    read_up_to(app, bob_id, team, 10)
    read_up_to(app, bob_id, quiet, 10)
    read_up_to(app, carol_id, team, 10)

    bob = sign_in(new_page(PHONE), "bob")
    carol = sign_in(new_page(PHONE, locale="zh-CN"), "carol")
    alice = sign_in(new_page(DESKTOP), "alice")
    expect(bob.locator(".conv .at-me")).to_have_count(0)

    # "@" opens the members (and "Everyone" for the owner); typing filters; Enter picks.
    open_chat(alice, f'.conv[data-id="{team}"] .conv-link')
    composer = alice.locator(".composer-input")
    composer.press_sequentially("hi @")
    items = alice.locator(".mention-list .mention-item")
    expect(items).to_have_count(3)
    expect(items.first).to_contain_text("Everyone")
    expect(alice.locator(".mention-list")).not_to_contain_text("Alice")
    composer.press_sequentially("bo")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Bob")
    composer.press("Enter")
    expect(alice.locator(".mention-list")).to_be_hidden()
    expect(composer).to_have_value("hi @Bob ")
    composer.press_sequentially("look")
    composer.press("Enter")
    expect(row(alice, 3).locator(".bubble.text")).to_have_text("hi @Bob look")

    # Bob's list says "[@me]" before the preview until he opens the chat; Carol's does not.
    team_item = bob.locator(f'.conv[data-id="{team}"]')
    expect(team_item.locator(".at-me")).to_have_text("[@me]")
    expect(team_item.locator(".conv-preview")).to_have_text("Alice: hi @Bob look")
    expect(carol.locator(f'.conv[data-id="{team}"] .badge')).to_have_text("1")
    expect(carol.locator(".conv .at-me")).to_have_count(0)
    stored_message = stored(app, team, 3)
    assert (stored_message.mentions, stored_message.mention_all) == ([bob_id], False)

    # A click picks too; a name taken out of the text before sending is not mentioned.
    composer.press_sequentially("@car")
    alice.click(".mention-list .mention-item >> text=Carol")
    expect(composer).to_have_value("@Carol ")
    composer.fill("never mind")
    composer.press("Enter")
    expect(row(alice, 4).locator(".bubble.text")).to_have_text("never mind")
    assert not stored(app, team, 4).mentions
    expect(carol.locator(".conv .at-me")).to_have_count(0)

    # @all from the owner: Carol (in Chinese) sees "[有人@我]".
    composer.press_sequentially("@")
    alice.click(".mention-list .mention-all")
    composer.press_sequentially("meeting at 3")
    composer.press("Enter")
    expect(row(alice, 5).locator(".bubble.text")).to_have_text("@all meeting at 3")
    expect(carol.locator(f'.conv[data-id="{team}"] .at-me')).to_have_text("[有人@我]")
    assert stored(app, team, 5).mention_all is True

    # A muted group still says "[@me]" (its badge is only a dot).
    open_chat(alice, f'.conv[data-id="{quiet}"] .conv-link')
    composer.press_sequentially("@b")
    expect(alice.locator(".mention-list .mention-name")).to_have_text(["Bob"])
    composer.press("Tab")
    composer.press_sequentially("are you there?")
    composer.press("Enter")
    quiet_item = bob.locator(f'.conv[data-id="{quiet}"]')
    expect(quiet_item.locator(".at-me")).to_have_text("[@me]")
    expect(quiet_item.locator(".badge.dot-badge")).to_be_visible()

    # Opening the chat reads it: the mark goes, here and after a reload (from the server).
    open_chat(bob, f'.conv[data-id="{team}"] .conv-link')
    expect(bob.locator(".msg.mentions-me")).to_have_count(2)
    bob.click(".chat-bar .back")
    expect(team_item.locator(".at-me")).to_have_count(0)
    expect(quiet_item.locator(".at-me")).to_have_text("[@me]")
    bob.reload()
    expect(bob.locator(f'.conv[data-id="{quiet}"] .at-me')).to_have_text("[@me]")
    expect(bob.locator(f'.conv[data-id="{team}"] .at-me')).to_have_count(0)


def test_pin_bar_appears_live_cycles_through_pins_and_unpin_removes_it(
    new_page, sign_in, make_user, befriend, app, e2e_server
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        team = create_group(alice_id, "Team", [bob_id]).conversation_id
    seqs = seed(app, alice_id, team, [f"note {n}" for n in range(1, 61)])
    read_up_to(app, bob_id, team, seqs[-1])

    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(alice, f'.conv[data-id="{team}"] .conv-link')
    open_chat(bob, f'.conv[data-id="{team}"] .conv-link')
    expect(bob.locator(".pin-bar")).to_be_hidden()

    # The owner pins the newest from the menu: Bob's bar shows it at once, without ✕ (a member).
    menu_action(alice, seqs[-1], "pin")
    expect(bob.locator(".pin-bar .pin-preview")).to_have_text("note 60")
    expect(bob.locator(".pin-bar .pin-count")).to_have_count(0)
    expect(bob.locator(".pin-bar .pin-unpin")).to_have_count(0)
    expect(alice.locator(".pin-bar .pin-unpin")).to_be_visible()

    # An old message, not loaded on either side, pinned through the API: the newest pin is shown
    # first, "1/2"; a click jumps to it (loading the page around it) and shows the next.
    with Device(e2e_server.url, "alice", PASSWORD, connect=False) as device:
        response = device.http.put(
            f"{device.base_url}/api/v1/conversations/{team}/pins/{seqs[1]}", json={}, timeout=10
        )
        assert response.status_code == 200, response.text
    expect(bob.locator(".pin-bar .pin-preview")).to_have_text("note 2")
    expect(bob.locator(".pin-bar .pin-count")).to_have_text("1/2")
    expect(row(bob, seqs[1])).to_have_count(0)
    bob.click(".pin-bar .pin-main")
    expect(row(bob, seqs[1])).to_be_in_viewport()
    expect(row(bob, seqs[1])).to_have_class(FLASH)
    expect(bob.locator(".pin-bar .pin-preview")).to_have_text("note 60")
    expect(bob.locator(".pin-bar .pin-count")).to_have_text("2/2")

    # The owner unpins the one her bar shows (the newest pin), then the other: Bob's bar follows.
    expect(alice.locator(".pin-bar .pin-preview")).to_have_text("note 2")
    alice.click(".pin-bar .pin-unpin")
    expect(bob.locator(".pin-bar .pin-preview")).to_have_text("note 60")
    expect(bob.locator(".pin-bar .pin-count")).to_have_count(0)
    expect(alice.locator(".pin-bar .pin-preview")).to_have_text("note 60")
    alice.click(".pin-bar .pin-unpin")
    expect(bob.locator(".pin-bar")).to_be_hidden()
    expect(alice.locator(".pin-bar")).to_be_hidden()
    with app.app_context():
        from app.models import Conversation

        assert not db.session.get(Conversation, team).pins


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_unread_divider_opens_at_the_first_unread_and_the_jump_buttons(
    new_page, sign_in, make_user, befriend, app, e2e_server
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        team = create_group(bob_id, "Team", [alice_id]).conversation_id
    old = seed(app, bob_id, team, [f"old {n}" for n in range(1, 11)])
    read_up_to(app, alice_id, team, old[-1])
    texts = [f"unread {n}" for n in range(1, 151)]
    unread = seed(app, bob_id, team, texts, {"unread 100": {"mentions": [alice_id]}})

    alice = sign_in(new_page(PHONE), "alice")
    item = alice.locator(f'.conv[data-id="{team}"]')
    expect(item.locator(".badge")).to_have_text("99+")
    expect(item.locator(".at-me")).to_have_text("[@me]")
    open_chat(alice, f'.conv[data-id="{team}"] .conv-link')

    # The chat opens at the first unread message, under "150 new messages"; nothing is read yet.
    expect(alice.locator(".unread-divider")).to_have_text("150 new messages")
    expect(alice.locator(".unread-divider")).to_be_in_viewport()
    expect(row(alice, unread[0])).to_be_in_viewport()
    expect(row(alice, unread[-1])).to_have_count(0)
    expect(alice.locator(".jump-bottom")).to_be_visible()
    expect(alice.locator(".jump-bottom .jump-count")).to_be_hidden()
    expect(alice.locator(".jump-mention")).to_be_visible()
    assert read_seq(app, alice_id, team) == old[-1]

    # New messages while reading further up are counted on the button.
    with Device(e2e_server.url, "bob", PASSWORD) as bob:
        for text in ("live 1", "live 2"):
            bob.send(team, text)
        expect(alice.locator(".jump-bottom .jump-count")).to_have_text("2")

        # "@" goes to the first message that mentions me.
        alice.click(".jump-mention")
        expect(row(alice, unread[99])).to_be_in_viewport()
        expect(row(alice, unread[99])).to_have_class(FLASH)
        expect(alice.locator(".jump-mention")).to_be_hidden()
        assert read_seq(app, alice_id, team) == old[-1]

        # Scrolling down loads the pages after the window until the newest; then it is read.
        newest = unread[-1] + 2
        for _ in range(10):
            scroll_down(alice)
            if row(alice, newest).count():
                break
            alice.wait_for_timeout(300)
        scroll_down(alice)
        expect(row(alice, newest)).to_be_in_viewport()
        wait_for(lambda: read_seq(app, alice_id, team) == newest, "the chat to be read")
        expect(alice.locator(".jump-bottom")).to_be_hidden()
        seqs = [
            int(seq)
            for seq in alice.locator(".msg-list .msg").evaluate_all("rows => rows.map(r => r.dataset.seq)")
        ]
        assert seqs == sorted(set(seqs)) and seqs[-1] == newest
        assert seqs[0] <= unread[99] and set(range(seqs[0], newest + 1)) <= set(seqs)

        # Up in the history again: a new message is counted; the button goes back to it.
        alice.locator(".msgs").evaluate("el => { el.scrollTop = el.scrollHeight / 3; }")
        expect(alice.locator(".jump-bottom")).to_be_visible()
        bob.send(team, "live 3")
        expect(alice.locator(".jump-bottom .jump-count")).to_have_text("1")
        assert read_seq(app, alice_id, team) == newest
        alice.click(".jump-bottom")
        expect(row(alice, newest + 1)).to_be_in_viewport()
        expect(alice.locator(".jump-bottom")).to_be_hidden()
        wait_for(lambda: read_seq(app, alice_id, team) == newest + 1, "the new message to be read")

    alice.click(".chat-bar .back")
    expect(item.locator(".badge")).to_have_count(0)
    expect(item.locator(".at-me")).to_have_count(0)
