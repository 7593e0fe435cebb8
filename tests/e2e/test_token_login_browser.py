"""A company's app opens /login/token#<token> in a real browser: after a click (and naming any session
it would replace) the page exchanges the token for a device session under the strict policy and
says who is signed in; a used or malformed link says so instead. The
token never reaches the server's log and leaves the address bar at once. The page speaks the
reader's language (the browser's, or the account's own choice once signed in)."""

from __future__ import annotations

import requests
from playwright.sync_api import expect

from app.extensions import db
from app.models import User
from tests.e2e.conftest import DESKTOP
from tests.e2e.test_security_browser import sign_in_to_console, violations, watch_policy


def sign_in_token(e2e_server, api_key, user_id: int) -> str:
    response = requests.post(
        f"{e2e_server.url}/api/server/v1/users/{user_id}/sign-in-tokens",
        json={},
        headers=api_key("users"),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def me(page):
    return page.evaluate("fetch('/api/v1/auth/me').then((r) => r.status === 200 ? r.json() : null)")


def test_a_sign_in_link_asks_first_then_opens_the_chat_and_works_once(
    new_page, e2e_server, api_key, make_user, screenshot, browser_problems
):
    # The test asks /auth/me before signing in (401), and spends the link twice (401).
    browser_problems.allow_response("/api/v1/auth/me", 401)
    browser_problems.allow_response("/api/v1/auth/token", 401)
    alice = make_user("alice", nickname="Alice")
    token = sign_in_token(e2e_server, api_key, alice)
    page = new_page()
    seen = watch_policy(page)
    page.goto(f"/login/token#{token}")
    # Nothing happens without a click (a link someone else made must not sign the browser in).
    expect(page.locator("#token-confirm")).to_be_visible()
    assert "#" not in page.url  # the token left the address bar
    assert me(page) is None
    screenshot(page, "token-login-ask")
    page.click("#token-confirm")
    expect(page.locator("#token-status")).to_have_text("You are now signed in as Alice (@alice).")
    page.click("#token-open")
    expect(page.locator("#tabs")).to_be_visible()
    assert page.url == f"{e2e_server.url}/"
    assert me(page)["user"]["id"] == alice
    assert violations(page, seen) == []
    # In the server's log the page was asked for without the token.
    assert token not in e2e_server.log_path.read_text()
    # The same link again, on another device: refused, and said so.
    other = new_page()
    other.goto(f"/login/token#{token}")
    other.click("#token-confirm")
    expect(other.locator("#token-error")).to_have_text(
        "This sign-in link is invalid, has expired or was used already."
    )
    expect(other.locator("#token-title")).to_have_text("Could not sign in")
    screenshot(other, "token-login-used")


def test_a_signed_in_browser_is_told_whose_session_a_link_would_replace(
    new_page, e2e_server, api_key, make_user
):
    alice = make_user("alice", nickname="Alice")
    mallory = make_user("mallory", nickname="Mallory")
    page = new_page()
    page.goto(f"/login/token#{sign_in_token(e2e_server, api_key, alice)}")
    page.click("#token-confirm")
    expect(page.locator("#token-done")).to_be_visible()
    # A link made for another account (an attacker's own): the page names both, and waits.
    page.goto(f"/login/token#{sign_in_token(e2e_server, api_key, mallory)}")
    expect(page.locator("#token-current")).to_have_text(
        "You are signed in as Alice (@alice); continue with the link's account instead?"
    )
    assert me(page)["user"]["id"] == alice
    page.click("#token-confirm")
    expect(page.locator("#token-status")).to_have_text("You are now signed in as Mallory (@mallory).")
    assert me(page)["user"]["id"] == mallory


def test_a_malformed_link_says_it_is_invalid_instead_of_waiting(new_page):
    page = new_page()
    page.goto("/login/token#abc%")  # decodeURIComponent throws on it
    expect(page.locator("#token-error")).to_have_text(
        "This sign-in link is invalid, has expired or was used already."
    )
    expect(page.locator("#token-title")).to_have_text("Could not sign in")
    expect(page.locator("#token-status")).to_be_hidden()
    assert "#" not in page.url
    chinese = new_page(locale="zh-CN")
    chinese.goto("/login/token#%E0%A4%A")
    expect(chinese.locator("#token-error")).to_have_text("该登录链接无效、已过期或已被使用。")
    expect(chinese.locator("#token-title")).to_have_text("无法登录")


def test_the_page_speaks_chinese_in_a_chinese_browser(new_page, e2e_server, api_key, make_user):
    alice = make_user("alice", nickname="Alice")
    page = new_page(locale="zh-CN")
    page.goto(f"/login/token#{sign_in_token(e2e_server, api_key, alice)}")
    expect(page.locator("#token-status")).to_have_text(
        "一个应用通过登录链接把你带到了这里。只有链接是你自己打开的，才继续。"
    )
    expect(page.locator("#token-title")).to_have_text("登录 Parley？")
    expect(page.locator("#token-confirm")).to_have_text("登录")
    expect(page.get_by_role("link", name="改用密码登录")).to_be_visible()
    assert page.title() == "登录 · Parley"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.click("#token-confirm")
    expect(page.locator("#token-status")).to_have_text("你已登录为 Alice (@alice)。")
    expect(page.locator("#token-open")).to_have_text("打开聊天")


def test_an_account_that_chose_chinese_gets_it_after_signing_in_on_an_english_browser(
    app, new_page, e2e_server, api_key, make_user
):
    bob = make_user("bob", nickname="Bob")
    with app.app_context():
        db.session.get(User, bob).locale = "zh-CN"
        db.session.commit()
    page = new_page()
    page.goto(f"/login/token#{sign_in_token(e2e_server, api_key, bob)}")
    expect(page.locator("#token-title")).to_have_text("Sign in to Parley?")
    page.click("#token-confirm")
    expect(page.locator("#token-status")).to_have_text("你已登录为 Bob (@bob)。")
    page.click("#token-open")
    expect(page.locator("#tabs")).to_contain_text("消息")  # the chat opens in Chinese too


def test_an_administrator_makes_and_revokes_a_key_in_the_console(new_page, e2e_server, make_user, screenshot):
    make_user("root", is_admin=True)
    alice = make_user("alice")
    page = new_page(DESKTOP)
    seen = watch_policy(page)
    sign_in_to_console(page, "/admin/apikeys/")
    page.click("[data-action=new-api-key]")
    page.fill("input[name=name]", "CRM backend")
    page.check("input[name=scopes][value=users]")
    page.check("input[name=scopes][value=read]")
    page.fill("textarea[name=allowed_ips]", "127.0.0.1\n10.0.0.0/8")
    page.click("button[type=submit]")
    key = page.locator("[data-api-key]").inner_text()
    screenshot(page, "console-api-key-created")
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{e2e_server.url}/api/server/v1/users/{alice}/sign-in-tokens"
    assert requests.post(url, json={}, headers=headers, timeout=10).status_code == 201
    page.goto("/admin/apikeys/")
    expect(page.locator("td", has_text="127.0.0.1/32, 10.0.0.0/8")).to_be_visible()
    screenshot(page, "console-api-keys")
    page.click("button:has-text('Revoke')")
    expect(page.locator(".alert", has_text="API key revoked")).to_be_visible()
    assert requests.post(url, json={}, headers=headers, timeout=10).status_code == 401
    assert violations(page, seen) == []
