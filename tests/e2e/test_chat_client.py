"""The browser chat client, end to end: real Chromium, real server, several devices."""

from __future__ import annotations

import io
import re
import uuid

from PIL import Image
from playwright.sync_api import Page, expect

from app.chat.read import mark_read
from app.chat.send import send_message
from app.extensions import db
from app.models import Conversation, ConversationMember
from tests.e2e.conftest import DESKTOP, PHONE

XSS = '<img src=x onerror="window.__pwned = 1">'


def png(name: str) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "#f08a24").save(buffer, "PNG")
    return {"name": name, "mimeType": "image/png", "buffer": buffer.getvalue()}


def open_tab(page: Page, name: str) -> None:
    page.click(f"#tabs a[data-tab={name}]")


def send_text(page: Page, text: str) -> None:
    page.fill(".composer-input", text)
    page.press(".composer-input", "Enter")


def click_until(page: Page, target: str, shows: str) -> None:
    """Click `target` until `shows` is visible. Lists redraw an item when its presence or preview
    changes (and a tab when its data arrives); a click that lands while its item is being replaced
    is lost, so it is tried again (at most three times)."""
    for _ in range(3):
        page.click(target)
        try:
            expect(page.locator(shows)).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            continue
    expect(page.locator(shows)).to_be_visible()


def open_chat(page: Page, link: str = ".conv-link") -> None:
    """Open a chat from the list, until the chat's composer shows."""
    click_until(page, link, ".composer-input")


def theirs(page: Page):
    return page.locator(".msg.theirs .bubble.text")


def direct_conversation_id(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalars(
            db.select(Conversation.id)
            .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
            .where(ConversationMember.user_id == user_id, Conversation.kind == "direct")
        ).one()


def test_two_people_befriend_chat_both_ways_and_see_badges_and_presence(new_page, sign_up, screenshot):
    alice = new_page(
        PHONE, geolocation={"latitude": 31.2304, "longitude": 121.4737}, permissions=["geolocation"]
    )
    bob = new_page(DESKTOP)
    sign_up(alice, "alice", "Alice")
    sign_up(bob, "bob", "Bob")

    # Alice finds Bob and asks; Bob sees the badge on Contacts and accepts.
    open_tab(alice, "contacts")
    alice.click(".search-entry")
    alice.fill("input[name=q]", "bob")
    alice.click(".results .add-friend")
    alice.click(".sheet button[type=submit]")
    expect(alice.locator(".results .add-friend")).to_have_text("Requested")
    expect(bob.locator("#badge-contacts")).to_have_text("1")
    open_tab(bob, "contacts")
    bob.click(".requests-entry")
    bob.click(".request .accept")
    expect(bob.locator(".request")).to_contain_text("Added")

    # The direct chat appears on both sides without a reload.
    alice.click(".pane .back")
    open_tab(alice, "chats")
    expect(alice.locator(".conv")).to_have_count(1)
    open_tab(bob, "chats")
    expect(bob.locator(".conv")).to_have_count(1)
    open_chat(alice)
    expect(alice.locator(".chat-bar .sub")).to_have_text("online")

    send_text(alice, "Hello Bob 😀")
    expect(alice.locator(".msg.mine .bubble.text")).to_have_text(["Hello Bob 😀"])
    expect(alice.locator(".msg.mine .state")).to_have_text("Sent")
    expect(bob.locator(".conv .badge")).to_have_text("1")
    expect(bob.locator("#badge-chats")).to_have_text("1")
    expect(bob.locator(".conv-preview")).to_have_text("Hello Bob 😀")

    open_chat(bob)
    expect(theirs(bob)).to_have_text(["Hello Bob 😀"])
    expect(bob.locator("#badge-chats")).to_be_hidden()
    expect(alice.locator(".msg.mine .state")).to_have_text("Read")

    # Text stays text: markup a friend sends is shown, never run.
    send_text(bob, "Hi Alice!")
    send_text(bob, XSS)
    expect(theirs(alice)).to_have_text(["Hi Alice!", XSS])
    assert alice.locator(".msg-list .bubble img").count() == 0
    assert alice.evaluate("window.__pwned") is None

    # Emoji from the picker go into the composer.
    alice.click(".emoji-btn")
    alice.click(".emoji-picker .emoji >> nth=0")
    expect(alice.locator(".composer-input")).to_have_value("😀")
    alice.press(".composer-input", "Enter")
    expect(theirs(bob).last).to_have_text("😀")

    # A location from the browser's geolocation, with coordinates and an OpenStreetMap link.
    alice.click(".attach-btn")
    alice.click(".tile[data-kind=loc]")
    alice.click(".sheet form .btn >> nth=0")
    expect(alice.locator(".sheet input[name=lat]")).to_have_value("31.230400")
    alice.fill(".sheet input[name=title]", "The Bund")
    alice.click(".sheet button[type=submit]")
    place = bob.locator(".msg.theirs .bubble.loc")
    expect(place).to_contain_text("The Bund")
    expect(place.locator(".coords")).to_have_text("31.23040, 121.47370")
    expect(place.locator("a")).to_have_attribute(
        "href", re.compile(r"openstreetmap\.org/\?mlat=31\.2304&mlon=121\.4737")
    )

    # A photo: uploaded, shown as a thumbnail, full size on click.
    alice.click(".attach-btn")
    alice.set_input_files(".tile[data-kind=img] input[type=file]", files=[png("sunset.png")])
    photo = bob.locator(".msg.theirs .bubble.media img.thumb")
    expect(photo).to_have_count(1)
    bob.wait_for_function("() => document.querySelector('.msg.theirs img.thumb')?.naturalWidth > 0")
    photo.click()
    expect(bob.locator(".lightbox img")).to_be_visible()
    bob.click(".lightbox")
    expect(alice.locator(".msg.mine .bubble.media img.thumb")).to_have_count(1)

    screenshot(alice, "phone-chat")
    screenshot(bob, "desktop")
    alice.click(".chat-bar .back")
    expect(alice.locator(".conv")).to_have_count(1)
    screenshot(alice, "phone-chats")

    # Bob goes away: Alice sees him offline.
    bob.context.close()
    open_chat(alice)
    expect(alice.locator(".chat-bar .sub")).to_have_text("offline")


def test_second_device_stays_in_sync(new_page, sign_in, make_user, befriend, app):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    phone = sign_in(new_page(PHONE), "alice")
    laptop = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")

    open_chat(bob)
    send_text(bob, "ping")
    for device in (phone, laptop):
        expect(device.locator("#badge-chats")).to_have_text("1")
        expect(device.locator(".conv .badge")).to_have_text("1")

    # Read on the phone: the laptop's badge clears too, without opening anything.
    open_chat(phone)
    expect(theirs(phone)).to_have_text(["ping"])
    expect(laptop.locator("#badge-chats")).to_be_hidden()
    expect(laptop.locator(".conv .badge")).to_have_count(0)

    # What the phone sends shows on the laptop, in the list and in the open chat.
    send_text(phone, "pong")
    expect(laptop.locator(".conv-preview")).to_have_text("pong")
    open_chat(laptop)
    expect(laptop.locator(".msg.mine .bubble.text")).to_have_text(["pong"])
    expect(theirs(bob)).to_have_text(["pong"])


def test_network_cut_catches_up_without_gap_or_duplicate(new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = sign_in(new_page(PHONE), "alice")
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(alice)
    open_chat(bob)
    send_text(bob, "m1")
    expect(theirs(alice)).to_have_text(["m1"])

    alice.context.set_offline(True)
    expect(alice.locator(".chat-bar .sub")).to_have_text("Connecting…")
    send_text(alice, "written in the tunnel")
    expect(alice.locator(".msg.mine")).to_have_count(1)
    for number in range(2, 7):
        send_text(bob, f"m{number}")
    expect(bob.locator(".msg.mine .bubble.text")).to_have_count(6)
    expect(bob.locator(".msg.mine.sending")).to_have_count(0)

    alice.context.set_offline(False)
    expect(theirs(alice)).to_have_text([f"m{number}" for number in range(1, 7)])
    expect(alice.locator(".msg.mine .bubble.text")).to_have_text(["written in the tunnel"])
    expect(alice.locator(".msg.mine.failed, .msg.mine.sending")).to_have_count(0)
    expect(theirs(bob)).to_have_text(["written in the tunnel"])
    # The seq numbers on the page are 1..7 once each: no gap, no duplicate.
    seqs = alice.locator(".msg[data-seq]").evaluate_all("rows => rows.map(row => Number(row.dataset.seq))")
    assert seqs == list(range(1, 8))


def test_history_scrolls_up_in_pages_without_duplicates(new_page, sign_in, make_user, befriend, app):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    conversation_id = direct_conversation_id(app, alice_id)
    with app.app_context():
        for number in range(1, 101):
            send_message(bob_id, conversation_id, uuid.uuid4().hex, {"type": "txt", "msg": f"old {number}"})
        # All read: the chat opens at the newest page (an unread chat opens at its first unread).
        mark_read(alice_id, conversation_id, 100)
    alice = sign_in(new_page(DESKTOP), "alice")
    open_chat(alice)
    expect(theirs(alice)).to_have_count(40)
    expect(theirs(alice).last).to_have_text("old 100")
    for expected in (80, 100):
        alice.locator(".msgs").evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        expect(theirs(alice)).to_have_count(expected)
    expect(alice.locator(".older")).to_have_text("Beginning of the conversation")
    expect(theirs(alice)).to_have_text([f"old {number}" for number in range(1, 101)])
    # Loading older pages keeps the reader where they were, not at the top.
    assert alice.locator(".msgs").evaluate("el => el.scrollTop") > 0


def test_group_created_in_the_ui_shows_members_roles_and_system_messages(
    new_page, sign_in, make_user, befriend
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")

    open_tab(alice, "contacts")
    click_until(alice, ".new-group-entry", "input[name=name]")
    alice.fill("input[name=name]", "Hikers <b>club</b>")
    alice.check(f".picker input[value='{bob_id}']")
    alice.click(".pane button[type=submit]")
    expect(alice.locator(".chat-bar .title")).to_have_text("Hikers <b>club</b>")
    expect(alice.locator(".sys")).not_to_have_count(0)
    expect(bob.locator(".conv-name")).to_have_text(["Hikers <b>club</b>", "Alice"])

    send_text(alice, "Welcome!")
    open_chat(bob, ".conv-link >> nth=0")
    expect(bob.locator(".msg.theirs .sender")).to_have_text(["Alice"])
    expect(theirs(bob)).to_have_text(["Welcome!"])

    alice.click(".chat-bar .icon-btn >> nth=-1")
    alice.click(".sheet .menu-item >> nth=0")
    expect(alice.locator(".member")).to_have_count(3)
    expect(alice.locator(f".member[data-user-id='{alice_id}'] .role")).to_have_text("Owner")
    alice.click(".menu-item:has-text('Edit group')")
    alice.fill(".sheet textarea[name=announcement]", "Meet at 8")
    alice.click(".sheet button[type=submit]")
    expect(alice.locator(".announcement p")).to_have_text("Meet at 8")


def test_an_upload_refused_as_busy_is_tried_again_after_retry_after(
    new_page, sign_in, make_user, befriend, browser_problems
):
    # The first upload is answered 429 on purpose (below).
    browser_problems.allow_response("/api/v1/uploads", 429)
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    attempts = []

    def busy_once(route):
        attempts.append(route.request.method)
        if len(attempts) == 1:
            error = {"code": "too_many_uploads", "message": "Busy.", "fields": {}}
            route.fulfill(
                status=429,
                json={"error": error},
                headers={"Retry-After": "1", "Content-Type": "application/json"},
            )
        else:
            route.continue_()

    alice.route("**/api/v1/uploads", busy_once)
    open_chat(alice)
    alice.click(".attach-btn")
    alice.set_input_files(".tile[data-kind=img] input[type=file]", files=[png("retry.png")])
    open_chat(bob)
    expect(bob.locator(".msg.theirs .bubble.media img.thumb")).to_have_count(1, timeout=15_000)
    assert attempts == ["POST", "POST"]
