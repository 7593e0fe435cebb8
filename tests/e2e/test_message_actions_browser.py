"""Message actions in the browser: the menu (right-click, long press), recall and re-edit, edits
and their history, reactions, forwarding as a chat-history card, delete for me, and links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import update

from app.extensions import db
from app.groups.services import create_group
from app.models import Message
from tests.e2e.conftest import DESKTOP, PHONE

XSS = '<img src=x onerror="window.__pwned = 1">'


def send_text(page: Page, text: str) -> None:
    page.fill(".composer-input", text)
    page.press(".composer-input", "Enter")


def open_chat(page: Page, link: str = ".conv-link") -> None:
    """Open a chat from the list until its composer shows (a click landing while the list redraws
    an item is lost, so it is tried again)."""
    for _ in range(3):
        page.click(link)
        try:
            expect(page.locator(".composer-input")).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            continue
    expect(page.locator(".composer-input")).to_be_visible()


def menu_of(page: Page, bubble: Locator) -> Locator:
    """Right-click a message (on its edge: a link inside keeps the browser's own menu)."""
    bubble.click(button="right", position={"x": 4, "y": 4})
    menu = page.locator(".msg-menu")
    expect(menu).to_be_visible()
    return menu


def choose(page: Page, bubble: Locator, action: str) -> None:
    menu_of(page, bubble).locator(f".menu-item[data-action={action}]").click()
    expect(page.locator(".msg-menu")).to_have_count(0)


def long_press(page: Page, target: Locator) -> None:
    """A real touch held for 700 ms (touch events from the browser's input pipeline)."""
    box = target.bounding_box()
    point = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    page.wait_for_timeout(700)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def pair(make_user, befriend, new_page, sign_in, alice_view=DESKTOP, bob_view=PHONE, **bob_options):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = sign_in(new_page(alice_view), "alice")
    bob = sign_in(new_page(bob_view, **bob_options), "bob")
    open_chat(alice)
    open_chat(bob)
    return alice_id, bob_id, alice, bob


def test_menu_by_right_click_and_long_press_and_reactions_both_ways(
    new_page, sign_in, make_user, befriend, screenshot
):
    _, _, alice, bob = pair(make_user, befriend, new_page, sign_in, has_touch=True, is_mobile=True)
    send_text(alice, "hello")
    mine = alice.locator(".msg.mine .bubble.text")
    expect(bob.locator(".msg.theirs .bubble.text")).to_have_text(["hello"])

    # Desktop: right-click opens the menu with every action for my own fresh text; Esc closes it.
    menu = menu_of(alice, mine)
    actions = menu.locator(".menu-item").evaluate_all("items => items.map(item => item.dataset.action)")
    assert actions == ["reply", "copy", "forward", "pin", "edit", "recall", "select", "hide"]
    expect(menu.locator(".react-quick")).to_have_count(6)
    screenshot(alice, "desktop-message-menu")
    alice.keyboard.press("Escape")
    expect(alice.locator(".msg-menu")).to_have_count(0)
    # The hover toolbar's "⋯" opens the same menu.
    mine.hover()
    alice.locator(".msg.mine .tool-more").click()
    expect(alice.locator(".msg-menu .menu-item[data-action=recall]")).to_have_count(1)
    alice.keyboard.press("Escape")

    # Phone: a long press opens it as a sheet; someone else's message has no edit or recall.
    theirs = bob.locator(".msg.theirs .bubble.text")
    long_press(bob, theirs)
    menu = bob.locator(".msg-menu")
    expect(menu).to_be_visible()
    screenshot(bob, "phone-message-menu")
    actions = menu.locator(".menu-item").evaluate_all("items => items.map(item => item.dataset.action)")
    assert "edit" not in actions and "recall" not in actions
    assert {"reply", "copy", "forward", "hide"} <= set(actions)
    menu.locator('.react-quick[data-emoji="👍"]').click()
    expect(bob.locator(".msg-menu")).to_have_count(0)

    # The reaction shows on both sides with its count; mine is highlighted.
    chip = alice.locator('.msg.mine .reaction[data-emoji="👍"]')
    expect(chip.locator(".reaction-count")).to_have_text("1")
    expect(chip).not_to_have_class("reaction mine")
    expect(bob.locator('.msg.theirs .reaction[data-emoji="👍"]')).to_have_class("reaction mine")

    # Alice adds ❤️ from the full picker; both see two chips.
    menu = menu_of(alice, mine)
    menu.locator(".react-more").click()
    alice.locator(".msg-menu .emoji-picker .emoji-tab[data-name=symbols]").click()
    alice.locator('.msg-menu .emoji-grid .emoji[aria-label="❤️"]').click()
    expect(bob.locator(".msg.theirs .reaction")).to_have_count(2)
    expect(alice.locator('.msg.mine .reaction[data-emoji="❤️"]')).to_have_class("reaction mine")
    screenshot(alice, "desktop-reactions")

    # Who reacted: right-click a chip.
    chip.click(button="right")
    expect(alice.locator('.reactor-group[data-emoji="👍"] .reactor .person-name')).to_have_text(["Bob"])
    alice.click(".sheet-head .icon-btn")

    # Bob takes his 👍 back with a click on the chip: gone on both sides, ❤️ stays.
    bob.locator('.msg.theirs .reaction[data-emoji="👍"]').click()
    expect(alice.locator(".msg.mine .reaction")).to_have_count(1)
    expect(alice.locator(".msg.mine .reaction")).to_have_attribute("data-emoji", "❤️")
    expect(bob.locator(".msg.theirs .reaction")).to_have_count(1)


def test_recall_within_the_window_re_edit_and_the_quote_follows(
    new_page, sign_in, make_user, befriend, screenshot
):
    _, _, alice, bob = pair(make_user, befriend, new_page, sign_in)
    send_text(alice, "a secret")
    theirs = bob.locator(".msg.theirs .bubble.text")
    expect(theirs).to_have_text(["a secret"])

    # Bob replies to it: his reply carries the quote.
    choose(bob, theirs, "reply")
    send_text(bob, "what secret?")
    quote = alice.locator(".msg.theirs .quote")
    expect(quote).to_have_text("Alice: a secret")
    screenshot(alice, "desktop-reply-quote")

    choose(alice, alice.locator(".msg.mine .bubble.text"), "recall")
    expect(bob.locator(".sys.recalled")).to_have_text("Alice recalled a message")
    expect(theirs).to_have_count(0)
    expect(alice.locator(".sys.recalled")).to_contain_text("You recalled a message")
    # The reply's quote now says its original was recalled, on both sides.
    expect(quote).to_have_text("The quoted message was recalled")
    expect(bob.locator(".msg.mine .quote")).to_have_text("The quoted message was recalled")
    # Bob has no way to re-edit Alice's message; Alice gets her text back in the composer.
    expect(bob.locator(".sys.recalled .reedit")).to_have_count(0)
    alice.click(".sys.recalled .reedit")
    expect(alice.locator(".composer-input")).to_have_value("a secret")


def test_an_old_message_offers_no_recall(new_page, sign_in, make_user, befriend, app):
    alice_id, _, alice, bob = pair(make_user, befriend, new_page, sign_in)
    send_text(alice, "said long ago")
    expect(bob.locator(".msg.theirs .bubble.text")).to_have_text(["said long ago"])
    with app.app_context():
        db.session.execute(
            update(Message)
            .where(Message.sender_id == alice_id)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=10))
        )
        db.session.commit()
    alice.reload()
    expect(alice.locator("#tabs")).to_be_attached()
    bubble = alice.locator(".msg.mine .bubble.text")
    expect(bubble).to_have_text(["said long ago"])
    menu = menu_of(alice, bubble)
    expect(menu.locator(".menu-item[data-action=edit]")).to_have_count(1)
    expect(menu.locator(".menu-item[data-action=recall]")).to_have_count(0)


def test_edit_shows_on_the_other_side_with_its_history(new_page, sign_in, make_user, befriend):
    _, _, alice, bob = pair(make_user, befriend, new_page, sign_in)
    send_text(alice, "see you at 5")
    theirs = bob.locator(".msg.theirs .bubble.text")
    expect(theirs).to_have_text(["see you at 5"])

    choose(alice, alice.locator(".msg.mine .bubble.text"), "edit")
    expect(alice.locator(".composer-input")).to_have_value("see you at 5")
    send_text(alice, "see you at 6")
    expect(theirs).to_have_text(["see you at 6"])
    mark = bob.locator(".msg.theirs .edited-mark")
    expect(mark).to_have_text("edited")
    expect(alice.locator(".msg.mine .edited-mark")).to_have_count(1)

    mark.click()
    versions = bob.locator(".edit-history .edit-version")
    expect(versions.locator(".edit-text")).to_have_text(["see you at 5", "see you at 6"])
    expect(versions.locator(".edit-head span")).to_have_text(["Original", "Current"])


def test_forward_merged_to_a_group_opens_as_a_sheet(new_page, sign_in, make_user, befriend, app, screenshot):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    carol_id = make_user("carol", nickname="Carol")
    befriend(alice_id, bob_id)
    befriend(alice_id, carol_id)
    with app.app_context():
        group = create_group(alice_id, "Team", [carol_id])
        group_conversation = group.conversation_id
    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(bob)
    send_text(bob, "the plan: https://example.com/plan")
    alice_direct = '.conv-link:has-text("Bob")'
    open_chat(alice, alice_direct)
    expect(alice.locator(".msg.theirs .bubble.text")).to_have_count(1)
    send_text(alice, "agreed")
    # Stored (it has its seq), not only shown as sending.
    expect(alice.locator('.msg.mine:not([data-seq=""])')).to_have_count(1)

    # Select both messages, forward them combined to the group.
    choose(alice, alice.locator(".msg.theirs .bubble.text"), "select")
    alice.locator(".msg.mine .bubble.text").click()
    expect(alice.locator(".msg.selected")).to_have_count(2)
    alice.click(".select-bar .select-forward")
    alice.check(".sheet input[name=mode][value=merged]")
    alice.fill(".sheet .forward-title", "Plan talk")
    alice.locator(f'.forward-target[data-id="{group_conversation}"]').click()
    alice.click(".sheet .forward-form button[type=submit]")
    expect(alice.locator(".sheet")).to_have_count(0)
    expect(alice.locator(".select-bar")).to_have_count(0)

    carol = sign_in(new_page(PHONE), "carol")
    open_chat(carol)
    card = carol.locator(".msg.theirs .bubble.merged")
    expect(card.locator(".merged-title")).to_have_text("Plan talk")
    expect(card.locator(".merged-line")).to_have_text(
        ["Bob: the plan: https://example.com/plan", "Alice: agreed"]
    )
    screenshot(carol, "phone-merged-card")
    card.click()
    items = carol.locator(".sheet .merged-list .msg")
    expect(items.locator(".sender")).to_have_text(["Bob", "Alice"])
    carol.locator(".sheet").evaluate("el => Promise.all(el.getAnimations().map(a => a.finished))")
    screenshot(carol, "phone-merged-sheet")
    expect(items.locator(".bubble.text")).to_have_text(["the plan: https://example.com/plan", "agreed"])
    # Read-only: no menu inside the sheet.
    items.first.locator(".bubble").click(button="right")
    expect(carol.locator(".msg-menu")).to_have_count(0)


def test_delete_for_me_leaves_my_other_device_and_the_peer_alone(new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    phone = sign_in(new_page(PHONE), "alice")
    laptop = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")
    for page in (phone, laptop, bob):
        open_chat(page)
    send_text(bob, "keep this")
    send_text(bob, "drop this")
    for page in (phone, laptop):
        expect(page.locator(".msg.theirs .bubble.text")).to_have_text(["keep this", "drop this"])

    choose(laptop, laptop.locator(".msg.theirs .bubble.text").last, "hide")
    laptop.click(".sheet .btn.danger")
    for page in (phone, laptop):
        expect(page.locator(".msg.theirs .bubble.text")).to_have_text(["keep this"])
    # The list's preview falls back to the newest message left.
    expect(laptop.locator(".conv-preview")).to_have_text("keep this")
    expect(bob.locator(".msg.mine .bubble.text")).to_have_text(["keep this", "drop this"])
    # Still gone after a reload (the server's history leaves it out).
    phone.reload()
    expect(phone.locator(".msg.theirs .bubble.text")).to_have_text(["keep this"])

    # Several at once from the select bar: the phone selects the last one and deletes it.
    choose(phone, phone.locator(".msg.theirs .bubble.text"), "select")
    expect(phone.locator(".select-bar .select-count")).to_have_text("1 selected")
    phone.click(".select-bar .select-hide")
    phone.click(".sheet .btn.danger")
    expect(phone.locator(".select-bar")).to_have_count(0)
    for page in (phone, laptop):
        expect(page.locator(".msg.theirs")).to_have_count(0)
    expect(bob.locator(".msg.mine .bubble.text")).to_have_text(["keep this", "drop this"])


def test_links_are_safe_anchors_and_markup_stays_text(new_page, sign_in, make_user, befriend):
    _, _, alice, bob = pair(make_user, befriend, new_page, sign_in)
    send_text(bob, f"docs at https://example.com/a?b=1, not javascript:alert(1) {XSS}")
    bubble = alice.locator(".msg.theirs .bubble.text")
    expect(bubble).to_have_text(f"docs at https://example.com/a?b=1, not javascript:alert(1) {XSS}")
    link = bubble.locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_text("https://example.com/a?b=1")
    expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    assert alice.locator(".msg-list .bubble img").count() == 0
    assert alice.evaluate("window.__pwned") is None
