"""The chat with the keyboard alone, on a phone and a desktop: sign in, Tab to the chat list (one
Tab stop; Up/Down move between chats), Enter opens a chat, type and send; Shift+Tab back to the
messages (one Tab stop; Up/Down move between them), open a message's menu with Enter or
Shift+F10, move in it with the arrow keys, Esc closes it and gives the focus back, Enter on an
item runs it. Every control reached shows a visible focus ring (app/static/css/a11y.css,
app/static/js/keys.js)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id
from tests.e2e.test_composer_browser import seed

# The focused element, or the box it sits in (the search field's form), draws an outline.
RING = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const ringed = (node) => {
    const style = getComputedStyle(node);
    return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 1;
  };
  return ringed(el) || (!!el.parentElement && ringed(el.parentElement));
}"""


def focused(page: Page):
    return page.locator("*:focus")


def tab_until(page: Page, selector: str, *, back: bool = False, limit: int = 30) -> None:
    """Press Tab (Shift+Tab) until the focus is on `selector`; each stop on the way shows a ring."""
    trail = []
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        trail.append(page.evaluate("() => document.activeElement?.outerHTML.slice(0, 80)"))
        if page.evaluate("(s) => !!document.activeElement?.matches(s)", selector):
            assert page.evaluate(RING), f"no visible focus ring on {selector}"
            return
        ring = page.evaluate(RING)
        assert ring is not False, "a focused control without a visible focus ring: " + page.evaluate(
            "() => document.activeElement.outerHTML.slice(0, 200)"
        )
    raise AssertionError(f"{selector} not reached with {'Shift+Tab' if back else 'Tab'}: {trail}")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_keyboard_only_from_sign_in_to_sending_and_a_message_menu(
    new_page, app, make_user, befriend, viewport
):
    alice, bob, carol = (
        make_user("alice", nickname="Alice"),
        make_user("bob", nickname="Bob"),
        make_user("carol", nickname="Carol"),
    )
    befriend(alice, bob)
    befriend(alice, carol)
    with_bob = direct_conversation_id(app, bob)
    seed(app, carol, direct_conversation_id(app, carol), ["Hi from Carol"])
    seed(app, bob, with_bob, ["First from Bob", "Second from Bob"])  # Bob's chat is the newest

    page = new_page(viewport)
    page.goto("/login")
    tab_until(page, "input[name=username]")
    page.keyboard.type("alice")
    tab_until(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#tabs")).to_be_visible()
    links = page.locator(".conv-link")
    expect(links).to_have_count(2)

    # The list is one Tab stop: Tab reaches its first chat; Down and Up move; Tab leaves it.
    tab_until(page, ".conv-link")
    expect(focused(page)).to_have_attribute("href", f"#/chat/{with_bob}")
    page.keyboard.press("ArrowDown")
    expect(focused(page)).to_have_attribute("href", links.nth(1).get_attribute("href"))
    assert page.evaluate(RING)
    page.keyboard.press("ArrowUp")
    expect(focused(page)).to_have_attribute("href", f"#/chat/{with_bob}")
    expect(page.locator(".conv-link[tabindex='0']")).to_have_count(1)
    page.keyboard.press("Tab")
    expect(focused(page)).not_to_have_class("conv-link")

    # Back to the list (Shift+Tab lands on the chat used last), Enter opens it; type and send.
    tab_until(page, ".conv-link", back=True)
    expect(focused(page)).to_have_attribute("href", f"#/chat/{with_bob}")
    page.keyboard.press("Enter")
    expect(page.locator(".composer-input")).to_be_visible()
    if viewport is PHONE:
        tab_until(page, ".composer-input")
    expect(page.locator(".composer-input")).to_be_focused()
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Enter")
    mine = page.locator(".msg.mine[data-seq]:not([data-seq=''])")
    expect(mine).to_have_count(1)

    # The messages are one Tab stop, the newest first; Up moves to older ones.
    tab_until(page, ".msg-list > .msg", back=True)
    expect(focused(page)).to_have_attribute("data-seq", mine.get_attribute("data-seq"))
    page.keyboard.press("ArrowUp")
    second = page.locator(".msg.theirs", has_text="Second from Bob")
    expect(second).to_be_focused()
    assert page.evaluate(RING)

    # Enter opens its menu with the focus inside; Down leaves the reactions for the items; Esc
    # closes it and the focus is back on the message.
    page.keyboard.press("Enter")
    menu = page.locator(".msg-menu[role=menu]")
    expect(menu).to_be_visible()
    expect(menu.locator(".react-quick").first).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(menu.locator(".react-quick").nth(1)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.locator("[data-action=reply]")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.locator("[data-action=copy]")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(menu.locator("[data-action=reply]")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).to_have_count(0)
    expect(second).to_be_focused()

    # Shift+F10 opens it too; Enter on "Reply" starts a reply in the composer, sent with Enter.
    page.keyboard.press("Shift+F10")
    expect(menu).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(menu.locator("[data-action=reply]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(menu).to_have_count(0)
    expect(page.locator(".compose-bar.reply")).to_be_visible()
    expect(page.locator(".composer-input")).to_be_focused()
    page.keyboard.type("A keyboard reply")
    page.keyboard.press("Enter")
    reply = page.locator(".msg.mine", has_text="A keyboard reply")
    expect(reply.locator(".quote")).to_contain_text("Second from Bob")

    # Contacts: the entries, groups and friends are one Tab stop too; End, Up, Enter opens a card.
    page.evaluate("() => { window.location.hash = '#/contacts'; }")
    expect(page.locator("a.person.friend")).to_have_count(2)
    # (The chat that had the focus is gone: Shift+Tab goes back from where it was, past the tabs.)
    tab_until(page, ".entries .entry, a.person", back=True)
    expect(page.locator("#panel [tabindex='0']")).to_have_count(1)
    page.keyboard.press("End")
    expect(focused(page)).to_have_attribute("href", f"#/user/{carol}")
    page.keyboard.press("ArrowUp")
    expect(focused(page)).to_have_attribute("href", f"#/user/{bob}")
    assert page.evaluate(RING)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"#/user/{bob}$"))
