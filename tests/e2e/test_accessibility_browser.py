"""axe-core on every main screen of Parley, on a phone and a desktop, light and dark.

One browser context per (viewport, colour scheme) walks the screens: the server-rendered pages
(sign-in, register, account, the token sign-in page, an error page, the admin console's dashboard
and users list, /api/docs around Swagger UI's own widgets) and the chat client's (chats list,
search with results, a direct chat holding text, image, file, reply and reactions, the message
menu, the forward picker, the emoji picker, a group chat with system lines, the group's info,
contacts, friend requests, Me, profile, devices, settings, notification settings). Every serious
or critical WCAG 2.x A/AA violation is collected, and the test fails listing them all
(tests/e2e/axe.py).

The dark runs take the system's dark scheme (`color_scheme="dark"`); on the phone the app's own
theme setting (Me → Settings → Theme: Dark, `data-theme="dark"` on <html>) is chosen as well, so
both ways the client turns dark are checked.
"""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.chat.actions.reactions import react
from app.chat.send import send_message
from app.extensions import db
from app.groups.services import create_group
from app.media.services import create_upload
from app.social.services import send_friend_request
from tests.conftest import PASSWORD
from tests.e2e.axe import Audit
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id

CONTEXTS = [
    pytest.param(PHONE, "light", id="phone-light"),
    pytest.param(PHONE, "dark", id="phone-dark"),
    pytest.param(DESKTOP, "light", id="desktop-light"),
    pytest.param(DESKTOP, "dark", id="desktop-dark"),
]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), "#3a7bd5").save(buffer, "PNG")
    return buffer.getvalue()


def say(app, sender_id: int, conversation_id: int, body: dict, extras: dict | None = None) -> int:
    with app.app_context():
        message, _ = send_message(sender_id, conversation_id, uuid.uuid4().hex, body, extras)
        return message["seq"]


def upload(app, user_id: int, data: bytes, name: str) -> str:
    with app.app_context():
        row = create_upload(user_id, io.BytesIO(data), name, "message")
        db.session.commit()
        return row.id


def seed(app, make_user, befriend) -> dict:
    """Alice (an administrator) with a direct chat with Bob holding every kind of message, a
    group with Bob and Carol, and a friend request from Dave waiting for her."""
    alice = make_user("alice", nickname="Alice", is_admin=True)
    bob = make_user("bob", nickname="Bob")
    carol = make_user("carol", nickname="Carol")
    dave = make_user("dave", nickname="Dave")
    befriend(alice, bob)
    befriend(alice, carol)
    direct = direct_conversation_id(app, bob)
    first = say(
        app,
        bob,
        direct,
        {"type": "txt", "msg": "Hello Alice, the photos from the trip: https://example.com/trip"},
    )
    say(app, alice, direct, {"type": "txt", "msg": "Thanks! Here is one of mine."})
    say(app, alice, direct, {"type": "img", "upload_id": upload(app, alice, png_bytes(), "lake.png")})
    report = b"Trip budget\nfuel 40\nfood 60\n"
    say(app, bob, direct, {"type": "file", "upload_id": upload(app, bob, report, "trip-budget-final.txt")})
    reply = say(app, bob, direct, {"type": "txt", "msg": "Lovely lake!"}, {"reply_to": first})
    with app.app_context():
        react(alice, direct, reply, "👍", True)
        react(bob, direct, reply, "❤️", True)
    with app.app_context():
        made = create_group(alice, "Weekend trip", [bob, carol])
        group, group_id = made.conversation_id, made.id
    say(app, carol, group, {"type": "txt", "msg": "Who brings the tent?"})
    with app.app_context():
        send_friend_request(dave, alice, "Hi, it's Dave from the climbing club")
    return {"direct": direct, "group": group, "group_id": group_id}


def visit(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("load")


def route(page: Page, hash_: str, ready: str) -> None:
    page.evaluate("(hash) => { window.location.hash = hash; }", hash_)
    expect(page.locator(ready).first).to_be_visible()


@pytest.mark.parametrize(("viewport", "scheme"), CONTEXTS)
def test_every_main_screen_has_no_serious_accessibility_violation(
    new_page, browser_problems, app, make_user, befriend, e2e_server, viewport, scheme
):
    ids = seed(app, make_user, befriend)
    audit = Audit(f"{viewport['width']}x{viewport['height']} {scheme}")
    page = new_page(viewport, color_scheme=scheme, reduced_motion="reduce")

    # Server-rendered pages, signed out.
    visit(page, "/login")
    audit.check(page, "sign-in")
    visit(page, "/register")
    audit.check(page, "register")
    visit(page, "/login/token")
    expect(page.locator("#token-error")).to_be_visible()
    audit.check(page, "token sign-in")
    browser_problems.allow(r"http GET \S+/no-such-page 404")
    browser_problems.allow(r"console Failed to load resource: .* 404 .*at \S+/no-such-page")
    visit(page, "/no-such-page")
    expect(page.locator("h2")).to_be_visible()
    audit.check(page, "error page")

    # Sign in; the chat client.
    visit(page, "/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#tabs")).to_be_visible()
    if scheme == "dark" and viewport is PHONE:
        route(page, "#/settings", "select[name=theme]")
        page.select_option("select[name=theme]", "dark")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        audit.check(page, "settings (dark chosen)")
    route(page, "#/chats", ".conv-list .conv")
    expect(page.locator(".conv")).to_have_count(3)
    audit.check(page, "chats list")

    page.fill(".search-top input", "trip")
    expect(page.locator(".search-results .hit").first).to_be_visible()
    audit.check(page, "search with results")
    page.fill(".search-top input", "")
    expect(page.locator(".conv-list")).to_be_visible()

    route(page, f"#/chat/{ids['direct']}", ".msg-list .msg")
    expect(page.locator(".msg-list .reaction")).to_have_count(2)
    expect(page.locator(".msg-list .bubble.file")).to_be_visible()
    expect(page.locator(".msg-list img.thumb")).to_be_visible()
    audit.check(page, "direct chat")

    page.locator(".msg.theirs .bubble.text").first.click(button="right", position={"x": 4, "y": 4})
    expect(page.locator(".msg-menu")).to_be_visible()
    audit.check(page, "message menu")
    page.click(".msg-menu [data-action=forward]")
    expect(page.locator(".forward-form")).to_be_visible()
    audit.check(page, "forward picker")
    page.click(".sheet-head .icon-btn")
    expect(page.locator(".sheet")).to_have_count(0)

    page.click(".emoji-btn")
    expect(page.locator(".drawer .emoji-picker")).to_be_visible()
    audit.check(page, "emoji picker")
    page.click(".emoji-btn")

    route(page, f"#/chat/{ids['group']}", ".msg-list .sys")
    expect(page.locator(".msg.theirs")).to_have_count(1)
    audit.check(page, "group chat")
    route(page, f"#/group/{ids['group_id']}", ".member")
    audit.check(page, "group info")

    route(page, "#/contacts", ".person.friend")
    audit.check(page, "contacts")
    route(page, "#/requests", ".pane .person")
    audit.check(page, "friend requests")
    route(page, "#/me", ".me-card")
    audit.check(page, "me")
    route(page, "#/profile", "input[name=nickname]")
    audit.check(page, "profile")
    route(page, "#/devices", ".device")
    audit.check(page, "devices")
    route(page, "#/settings", "select[name=theme]")
    audit.check(page, "settings")
    route(page, "#/notifications", ".switch-row")
    audit.check(page, "notification settings")

    # Server-rendered pages, signed in.
    visit(page, "/account")
    audit.check(page, "account")
    visit(page, "/admin/")
    audit.check(page, "admin dashboard")
    visit(page, "/admin/user/")
    expect(page.get_by_text("bob", exact=True).first).to_be_visible()
    audit.check(page, "admin users list")
    visit(page, "/api/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    # Only Parley's page around Swagger UI: the operations' widgets are Swagger UI's own markup
    # (third-party, vendored from npm), outside what Parley can fix.
    audit.check(page, "api docs", exclude=["#swagger-ui"])

    assert len(audit.screens) >= 23
    audit.assert_clean()
