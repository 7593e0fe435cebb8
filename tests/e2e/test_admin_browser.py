"""An administrator bans a user in the console while the user's chat page is open."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE


def test_a_ban_in_the_console_signs_out_the_open_chat_page(new_page, sign_in, make_user, browser_problems):
    # The ban drops the chat page's socket on the server: a long-poll of that session still in
    # flight is answered 400 (unknown session) before the page goes to the sign-in page.
    browser_problems.allow_response(r"/socket\.io/", 400)
    make_user("root", is_admin=True)
    user_id = make_user("alice", nickname="Alice")
    chat = sign_in(new_page(PHONE), "alice")
    expect(chat.locator("#tabs")).to_be_visible()

    console = new_page(DESKTOP)
    console.goto(f"/login?next=/admin/user/details/?id={user_id}")
    console.fill("input[name=username]", "root")
    console.fill("input[name=password]", PASSWORD)
    console.click("button[type=submit]")
    expect(console.get_by_role("button", name="Ban", exact=True)).to_be_visible()
    console.fill("form[action$='/ban'] input[name=reason]", "spam")
    console.get_by_role("button", name="Ban", exact=True).click()
    expect(console.locator(".alert")).to_contain_text("Banned")

    expect(chat).to_have_url(re.compile(r"/login\?signed_out=1"), timeout=5_000)
    expect(chat.locator("#signed-out")).to_have_text("You were signed out on this device.")
