"""The little things users notice, in the browser: Esc closes whatever is on top (the emoji and
attach drawer, sheets, confirm sheets, the message menu, the forward picker, the search results)
and gives the focus back; typing right after a send reaches the peer; images pasted into the
composer and files dropped on the chat are sent; drafts stay per chat across switches and reloads
and show as "[Draft]" in the list; the devices page shows "last seen" in full on a phone."""

from __future__ import annotations

import base64
import io
import re
import uuid
from datetime import timedelta

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import update

from app.auth.services import start_device_session
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.extensions import db
from app.media.services import create_upload
from app.models import DeviceSession, User, utcnow
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id, open_chat
from tests.e2e.test_message_actions_browser import long_press

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "#1989fa").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PNG = _png()
# Files made in the page, in a DataTransfer as a clipboard or a drop holds them.
MAKE_FILES = """(specs, png64) => {
  const png = Uint8Array.from(atob(png64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  for (const spec of specs) {
    let file;
    if (spec.kind === "png") file = new File([png], spec.name, { type: "image/png" });
    else if (spec.kind === "big") file = new File([new Uint8Array(spec.size)], spec.name);
    else file = new File([spec.text], spec.name, { type: "text/plain" });
    transfer.items.add(file);
  }
  return transfer;
}"""


def seed(app, sender_id: int, conversation_id: int, text: str) -> int:
    with app.app_context():
        message, _ = send_message(sender_id, conversation_id, uuid.uuid4().hex, {"type": "txt", "msg": text})
        return message["seq"]


def friends(make_user, befriend, *names: str) -> list[int]:
    ids = [make_user(name, nickname=name.capitalize()) for name in names]
    for other in ids[1:]:
        befriend(ids[0], other)
    return ids


def focused_label(page: Page) -> str | None:
    return page.evaluate("() => document.activeElement?.getAttribute('aria-label')")


def paste(page: Page, specs: list[dict], text: str | None = None) -> bool:
    """Paste into the composer (a synthetic ClipboardEvent); returns whether the page took it over."""
    script = (
        "([specs, png, text]) => {"
        f"  const transfer = ({MAKE_FILES})(specs, png);"
        """
            if (text !== null) transfer.setData("text/plain", text);
            const init = { clipboardData: transfer, bubbles: true, cancelable: true };
            const event = new ClipboardEvent("paste", init);
            document.querySelector(".composer-input").dispatchEvent(event);
            return event.defaultPrevented;
        }"""
    )
    return page.evaluate(script, [specs, PNG, text])


def drag(page: Page, kind: str, specs: list[dict], selector: str = ".msgs") -> None:
    """A drag event carrying files on the chat (dragenter, dragleave or drop)."""
    script = (
        "([kind, specs, png, selector]) => {"
        f"  const transfer = ({MAKE_FILES})(specs, png);"
        """
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            document.querySelector(selector).dispatchEvent(new DragEvent(kind, init));
        }"""
    )
    page.evaluate(script, [kind, specs, PNG, selector])


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_esc_closes_the_topmost_layer_and_gives_the_focus_back(
    viewport, new_page, sign_in, make_user, befriend, app
):
    alice_id, bob_id = friends(make_user, befriend, "alice", "bob")
    conversation_id = direct_conversation_id(app, alice_id)
    seq = seed(app, bob_id, conversation_id, "hello there")
    phone = viewport == PHONE
    alice = sign_in(new_page(viewport, **({"has_touch": True, "is_mobile": True} if phone else {})), "alice")
    open_chat(alice)
    bubble = alice.locator(f'.msg[data-seq="{seq}"] .bubble')
    expect(bubble).to_be_visible()

    # The emoji picker and the attach menu: Esc closes them, the button that opened them has the focus.
    for button, panel in ((".emoji-btn", ".drawer .emoji-picker"), (".attach-btn", ".drawer .attach")):
        alice.click(button)
        expect(alice.locator(panel)).to_be_visible()
        alice.keyboard.press("Escape")
        expect(alice.locator(".drawer")).to_be_hidden()
        expect(alice.locator(button)).to_be_focused()

    # The chat's options (an action sheet) on top of the emoji drawer: Esc closes the sheet only,
    # then the drawer.
    options = alice.locator(".chat-bar .icon-btn[aria-label='Chat options']")
    alice.click(".emoji-btn")
    options.click()
    expect(alice.locator(".sheet")).to_be_visible()
    alice.keyboard.press("Escape")
    expect(alice.locator(".sheet")).to_have_count(0)
    expect(alice.locator(".drawer .emoji-picker")).to_be_visible()
    expect(options).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.locator(".drawer")).to_be_hidden()

    # A confirm sheet (delete the chat?): Esc is "no", and the chat stays.
    options.click()
    alice.locator(".sheet .menu-item", has_text="Delete chat").click()
    expect(alice.locator(".sheet")).to_contain_text("Remove this chat from the list?")
    alice.keyboard.press("Escape")
    expect(alice.locator(".sheet")).to_have_count(0)
    expect(options).to_be_focused()
    expect(alice.locator(".composer-input")).to_be_visible()

    def open_menu() -> None:
        """The message menu: a long press on a phone, the hover toolbar's "⋯" on a desktop."""
        if phone:
            long_press(alice, bubble)
        else:
            bubble.hover()
            alice.locator(f'.msg[data-seq="{seq}"] .tool-more').click()
        expect(alice.locator(".msg-menu")).to_be_visible()

    open_menu()
    alice.keyboard.press("Escape")
    expect(alice.locator(".msg-menu")).to_have_count(0)
    if not phone:
        assert focused_label(alice) == "Message actions"

    # A reply in the composer survives the Esc that closed the menu; Esc in the input cancels it.
    open_menu()
    alice.click(".msg-menu [data-action=reply]")
    expect(alice.locator(".compose-bar.reply")).to_be_visible()
    open_menu()
    alice.keyboard.press("Escape")
    expect(alice.locator(".msg-menu")).to_have_count(0)
    expect(alice.locator(".compose-bar.reply")).to_be_visible()
    alice.focus(".composer-input")
    alice.keyboard.press("Escape")
    expect(alice.locator(".compose-bar")).to_be_hidden()

    # The forward picker, opened from the menu: Esc closes it (and nothing else).
    open_menu()
    alice.click(".msg-menu [data-action=forward]")
    expect(alice.locator(".forward-form")).to_be_visible()
    alice.keyboard.press("Escape")
    expect(alice.locator(".sheet")).to_have_count(0)
    expect(alice.locator(".composer-input")).to_be_visible()

    # The search results over the chat list: Esc brings the list back, the focus stays in the box.
    if phone:
        alice.click(".chat-bar .back")
    box = alice.locator(".search-top input")
    box.fill("hello")
    expect(alice.locator(".search-results")).to_be_visible()
    expect(alice.locator(".hit")).to_have_count(1)
    alice.keyboard.press("Escape")
    expect(alice.locator(".search-results")).to_be_hidden()
    expect(box).to_have_value("")
    expect(box).to_be_focused()
    expect(alice.locator(".conv-list .conv")).to_have_count(1)


def test_typing_right_after_a_send_reaches_the_peer(new_page, sign_in, make_user, befriend):
    friends(make_user, befriend, "alice", "bob")
    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(alice)
    open_chat(bob)
    typing = bob.locator(".chat-bar .sub.typing")
    # Typing is not kept for later: Bob's socket must be connected before Alice's first keystroke
    # (her next one is throttled for 2 s). Alice sees him online once it is.
    expect(alice.locator(".chat-bar .sub")).to_have_text("online")

    composer = alice.locator(".composer-input")
    composer.press_sequentially("first")
    expect(typing).to_have_text("typing…")
    # Sent, and at once the next message begun (one keystroke, well within the 2 s throttle): the
    # message clears Bob's indicator, the keystroke shows it again.
    composer.press("Enter")
    composer.press_sequentially("s")
    expect(bob.locator(".msg.theirs .bubble.text")).to_have_text(["first"])
    expect(typing).to_have_text("typing…")
    expect(composer).to_have_value("s")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_pasted_images_and_dropped_files_are_sent(
    viewport, new_page, sign_in, make_user, befriend, browser_problems
):
    friends(make_user, befriend, "alice", "bob")
    alice = sign_in(new_page(viewport), "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    open_chat(bob)
    uploads = []
    alice.on(
        "request",
        lambda request: uploads.append(request.url) if request.url.endswith("/api/v1/uploads") else None,
    )

    # Pasted text stays text: the page leaves the paste to the browser and uploads nothing.
    assert paste(alice, [], "just words") is False

    # A pasted image (a screenshot) goes as a photo.
    assert paste(alice, [{"kind": "png", "name": "image.png"}]) is True
    expect(bob.locator(".msg.theirs .bubble.media img")).to_have_count(1)
    expect(alice.locator(".msg.mine .bubble.media img")).to_have_count(1)

    # Files dragged over the chat show the drop target; dropped, each is sent, in order.
    target = alice.locator(".drop-target")
    expect(target).to_be_hidden()
    drag(alice, "dragenter", [{"kind": "text", "name": "notes.txt", "text": "hello"}])
    expect(target).to_be_visible()
    expect(target).to_contain_text("Drop to send")
    drag(alice, "dragleave", [{"kind": "text", "name": "notes.txt", "text": "hello"}])
    expect(target).to_be_hidden()
    files = [{"kind": "text", "name": "notes.txt", "text": "hello"}, {"kind": "png", "name": "dropped.png"}]
    drag(alice, "dragenter", files, ".composer-input")
    expect(target).to_be_visible()
    drag(alice, "drop", files, ".composer-input")
    expect(target).to_be_hidden()
    expect(bob.locator(".msg.theirs .bubble.card.file")).to_contain_text("notes.txt")
    expect(bob.locator(".msg.theirs .bubble.media img")).to_have_count(2)
    kinds = bob.locator(".msg.theirs .bubble").evaluate_all(
        "els => els.map((el) => el.classList.contains('file') ? 'file' : 'media')"
    )
    assert kinds == ["media", "file", "media"]
    assert len(uploads) == 3

    # Over the client's limit (MAX_FILE_BYTES): refused before any upload, with the reason.
    paste(alice, [{"kind": "big", "name": "huge.bin", "size": 50 * 1024 * 1024 + 1}])
    expect(alice.locator("#toast")).to_have_text("huge.bin is over the limit of 50 MB.")
    assert len(uploads) == 3
    expect(bob.locator(".msg.theirs .bubble")).to_have_count(3)


def test_drafts_stay_per_chat_across_switches_and_reloads_and_show_in_the_list(
    new_page, sign_in, make_user, befriend, app, browser_problems
):
    # A reload can cut the socket's long-poll mid-flight: the server has closed that session, so
    # the unloading page's last poll is answered 400 (seen once on a loaded machine).
    browser_problems.allow_response("/socket.io/", 400)
    alice_id, bob_id, carol_id = friends(make_user, befriend, "alice", "bob", "carol")
    with app.app_context():
        bob_chat = open_direct(alice_id, bob_id)[0]["id"]
        carol_chat = open_direct(alice_id, carol_id)[0]["id"]
    seed(app, bob_id, bob_chat, "from bob")
    seed(app, carol_id, carol_chat, "from carol")
    alice = sign_in(new_page(DESKTOP), "alice")
    bob_item = alice.locator(f'.conv[data-id="{bob_chat}"]')
    carol_item = alice.locator(f'.conv[data-id="{carol_chat}"]')
    composer = alice.locator(".composer-input")

    open_chat(alice, f'.conv[data-id="{bob_chat}"] .conv-link')
    composer.fill("half a thought\nand more")
    # The open chat's item still shows its last message; switching away shows the draft.
    expect(bob_item.locator(".conv-preview")).to_have_text("from bob")
    open_chat(alice, f'.conv[data-id="{carol_chat}"] .conv-link')
    expect(composer).to_have_value("")
    expect(bob_item.locator(".conv-preview")).to_have_text("[Draft] half a thought and more")
    expect(bob_item.locator(".draft-tag")).to_have_text("[Draft]")
    expect(carol_item.locator(".draft-tag")).to_have_count(0)

    open_chat(alice, f'.conv[data-id="{bob_chat}"] .conv-link')
    expect(composer).to_have_value("half a thought\nand more")
    alice.reload()
    expect(composer).to_have_value("half a thought\nand more")

    # Sent: the draft is gone, here and in the list.
    composer.fill("whole thought")
    composer.press("Enter")
    expect(alice.locator(".msg.mine .bubble.text")).to_have_text(["whole thought"])
    open_chat(alice, f'.conv[data-id="{carol_chat}"] .conv-link')
    expect(bob_item.locator(".conv-preview")).to_have_text("whole thought")
    assert (
        alice.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('parley.draft.'))") == []
    )

    # A Chinese list says "[草稿]"; signing out forgets every draft of this browser.
    composer.fill("再说")
    alice.goto("/#/chats")
    alice.evaluate("() => localStorage.setItem('parley.locale', 'zh-CN')")
    alice.reload()
    expect(carol_item.locator(".conv-preview")).to_have_text("[草稿] 再说")
    alice.click("#tabs a[data-tab=me]")
    alice.click(".sign-out")
    alice.locator(".sheet .btn.danger").click()
    expect(alice).to_have_url(re.compile(r"/login"))
    assert (
        alice.evaluate("() => Object.keys(localStorage).filter((k) => k.startsWith('parley.draft.'))") == []
    )


def test_signing_out_on_the_account_page_forgets_the_drafts(new_page, sign_in, make_user, befriend, app):
    alice_id, bob_id = friends(make_user, befriend, "alice", "bob")
    with app.app_context():
        bob_chat = open_direct(alice_id, bob_id)[0]["id"]
    alice = sign_in(new_page(DESKTOP), "alice")
    open_chat(alice, f'.conv[data-id="{bob_chat}"] .conv-link')
    alice.locator(".composer-input").fill("not for the next person")
    drafts = "() => Object.keys(localStorage).filter((k) => k.startsWith('parley.draft.'))"
    alice.wait_for_function(f"() => ({drafts})().length === 1")
    alice.goto("/account")
    alice.locator("form[action$='/logout'] button").click()
    expect(alice).to_have_url(re.compile(r"/login"))
    alice.wait_for_function(f"() => ({drafts})().length === 0")
    assert alice.evaluate(drafts) == []


LAPTOP_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize("locale,seen", [("en-US", "last seen 5 minutes ago"), ("zh-CN", "最近使用 5分钟前")])
def test_devices_last_seen_is_shown_in_full_on_a_phone(locale, seen, new_page, sign_in, make_user, app):
    user_id = make_user("alice", nickname="Alice")
    # Another device, seen five minutes ago, from a long address.
    with app.app_context():
        device, _ = start_device_session(
            db.session.get(User, user_id), LAPTOP_AGENT, "2001:db8:85a3:8d3:1319:8a2e:370:7348"
        )
        db.session.execute(
            update(DeviceSession)
            .where(DeviceSession.id == device.id)
            .values(last_seen_at=utcnow() - timedelta(minutes=5, seconds=20))
        )
        db.session.commit()
    phone = sign_in(new_page(PHONE, locale=locale), "alice")
    phone.goto("/#/devices")
    lines = phone.locator(".device .device-seen")
    expect(lines).to_have_count(2)
    earlier = lines.filter(has_text=seen)
    expect(earlier).to_have_count(1)
    expect(earlier).to_have_text(seen)
    expect(earlier).to_have_attribute("title", re.compile(r"20\d\d"))
    for index in range(2):
        fits = lines.nth(index).evaluate(
            "el => el.scrollWidth <= el.clientWidth && el.getBoundingClientRect().right <= innerWidth"
        )
        assert fits, lines.nth(index).inner_text()


def test_esc_closes_the_photo_viewer_and_the_photo_has_the_focus_again(
    new_page, sign_in, make_user, befriend, app
):
    alice_id, bob_id = friends(make_user, befriend, "alice", "bob")
    conversation_id = direct_conversation_id(app, alice_id)
    with app.app_context():
        photo = create_upload(bob_id, io.BytesIO(base64.b64decode(PNG)), "p.png", "message")
        db.session.commit()
        send_message(bob_id, conversation_id, uuid.uuid4().hex, {"type": "img", "upload_id": photo.id})
    alice = sign_in(new_page(DESKTOP), "alice")
    open_chat(alice)
    opener = alice.locator(".msg.theirs .bubble.media")
    opener.focus()
    alice.keyboard.press("Enter")
    expect(alice.locator(".lightbox img")).to_be_visible()
    alice.keyboard.press("Escape")
    expect(alice.locator(".lightbox")).to_have_count(0)
    expect(opener).to_be_focused()
    # A click closes it as before.
    opener.click()
    expect(alice.locator(".lightbox img")).to_be_visible()
    alice.click(".lightbox")
    expect(alice.locator(".lightbox")).to_have_count(0)
