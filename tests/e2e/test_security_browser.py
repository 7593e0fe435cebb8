"""The pages under their Content-Security-Policy, in a real browser: the chat client, the account
page and the admin console work with no violation reported; and a message an administrator
recalls in the console changes on the open chat page at once, without a reload."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from app.chat.send import send_message
from app.extensions import db
from app.models import Conversation, ConversationMember, Message
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP

# Collects every violation the page reports (init scripts run outside the page's policy).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def watch_policy(page: Page) -> list[str]:
    """Violations seen on this page: the console's reports and the DOM events of every document."""
    seen: list[str] = []
    page.context.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: seen.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return seen


def violations(page: Page, seen: list[str]) -> list[str]:
    return seen + page.evaluate("window.__csp || []")


def sign_in_to_console(page: Page, next_url: str) -> None:
    page.goto(f"/login?next={next_url}")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_the_chat_client_and_account_page_run_under_the_policy(new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    page = new_page(DESKTOP)
    seen = watch_policy(page)
    sign_in(page, "alice")
    # The modules ran: the list is drawn, and the socket connected (the banner is hidden).
    expect(page.locator(".conv-link")).to_have_count(1)
    page.wait_for_function("() => document.body.classList.contains('ready')")
    expect(page.locator("#conn")).to_be_hidden()
    page.click(".conv-link")
    page.fill(".composer-input", "under a strict policy")
    page.press(".composer-input", "Enter")
    expect(page.locator(".msg.mine .bubble.text")).to_have_text(["under a strict policy"])
    expect(page.locator(".msg.mine .state.sent")).to_be_visible()
    assert violations(page, seen) == []
    page.goto("/account")
    expect(page.locator("h1, h2").first).to_be_visible()
    assert violations(page, seen) == []


def test_the_admin_console_runs_under_the_policy(new_page, make_user):
    make_user("root", is_admin=True)
    user_id = make_user("alice", nickname="Alice")
    page = new_page(DESKTOP)
    seen = watch_policy(page)
    sign_in_to_console(page, "/admin/")
    expect(page.locator('[data-stat="users"]')).to_have_text("2")
    page.goto("/admin/user/")
    # The filter menu is Flask-Admin's own script (and its one inline handler, admitted by hash).
    page.get_by_role("link", name="Add Filter").click()
    page.locator("a.filter").first.click()
    expect(page.locator(".filter-op").first).to_be_visible()
    page.goto(f"/admin/user/details/?id={user_id}")
    expect(page.get_by_role("button", name="Ban", exact=True)).to_be_visible()
    for path in ("/admin/group/", "/admin/message/", "/admin/auditlog/", "/admin/bot/"):
        page.goto(path)
        expect(page.locator(".navbar")).to_be_visible()
        assert violations(page, seen) == [], path


def test_a_recall_in_the_console_replaces_the_open_bubble_without_a_reload(
    new_page, sign_in, make_user, befriend, app
):
    make_user("root", is_admin=True)
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        conversation_id = db.session.scalars(
            db.select(Conversation.id)
            .join(ConversationMember, ConversationMember.conversation_id == Conversation.id)
            .where(ConversationMember.user_id == alice_id, Conversation.kind == "direct")
        ).one()
        send_message(bob_id, conversation_id, "e2e-recall-1", {"type": "txt", "msg": "kept message"})
        send_message(bob_id, conversation_id, "e2e-recall-2", {"type": "txt", "msg": "something nasty"})
        message_id = db.session.scalar(db.select(Message.id).where(Message.client_msg_id == "e2e-recall-2"))

    alice = sign_in(new_page(DESKTOP), "alice")
    alice.click(".conv-link")
    expect(alice.locator(".msg.theirs .bubble.text")).to_have_text(["kept message", "something nasty"])
    expect(alice.locator(".conv-preview")).to_have_text("something nasty")
    alice.evaluate("window.__samePage = true")

    console = new_page(DESKTOP)
    sign_in_to_console(console, f"/admin/message/details/?id={message_id}")
    console.fill("input[name=reason]", "abuse")
    console.get_by_role("button", name="Remove everywhere").click()
    expect(console.locator(".alert")).to_be_visible()

    expect(alice.locator(".msg.theirs .bubble.text")).to_have_text(["kept message"], timeout=5_000)
    expect(alice.locator(".sys.recalled")).to_have_text("A message was removed by an administrator")
    expect(alice.locator(".conv-preview")).to_have_text("A message was removed by an administrator")
    expect(alice.locator("body")).not_to_contain_text("something nasty")
    assert alice.evaluate("window.__samePage") is True


def test_a_mute_in_the_console_shows_on_the_open_chat_page(new_page, sign_in, make_user, befriend):
    make_user("root", is_admin=True)
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = sign_in(new_page(DESKTOP), "alice")
    alice.click(".conv-link")
    expect(alice.locator(".composer-input")).to_be_visible()

    console = new_page(DESKTOP)
    sign_in_to_console(console, f"/admin/user/details/?id={alice_id}")
    console.fill("form[action$='/mute'] input[name=reason]", "cool down")
    console.fill("form[action$='/mute'] input[name=minutes]", "30")
    console.get_by_role("button", name="Mute", exact=True).click()
    expect(console.get_by_role("button", name="Unmute", exact=True)).to_be_visible()

    # The composer stays in place, disabled, with the reason and its end (views/speakstate.js).
    # (Its date comes first when it ends on another day: a run near midnight.)
    muted = re.compile(r"^Your account is muted until ([A-Z][a-z]{2} \d{1,2} )?\d{1,2}:\d{2}( [AP]M)?\.$")
    expect(alice.locator(".speak-note")).to_have_text(muted, timeout=5_000)
    expect(alice.locator(".composer-input")).to_be_disabled()
    expect(alice.locator("#toast")).to_have_text(
        "An administrator muted you: your messages are not sent for now."
    )

    console.get_by_role("button", name="Unmute", exact=True).click()
    expect(alice.locator(".composer-input")).to_be_enabled(timeout=5_000)
    expect(alice.locator(".speak-note")).to_be_hidden()
