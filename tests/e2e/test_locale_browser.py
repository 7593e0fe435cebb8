"""A zh-CN Chromium sees Chinese on every server-rendered page: sign-in, registration, the
account page, an error page and the admin console's list of users."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.auth.deletion import delete_user
from app.chat.conversations import open_direct
from app.chat.send import send_message
from app.extensions import db
from tests.chat_helpers import new_client_msg_id
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE

# English words of Parley's and Flask-Admin's chrome that must not be left on a Chinese page.
ENGLISH = [
    "Sign in",
    "Sign out",
    "Register",
    "Create an account",
    "Have an account",
    "New here",
    "Username",
    "Nickname",
    "Password",
    "Profile",
    "Devices",
    "Save",
    "Back to Parley",
    "Error",
    "List",
    "Search",
    "Add Filter",
    "Dashboard",
    "Users",
    "Groups",
    "Messages",
    "Audit log",
    "Word lists",
    "Created At",
    "Console role",
    "Banned",
    "Muted",
]


def english_left(page: Page) -> list[str]:
    text = page.locator("body").inner_text()
    return [word for word in ENGLISH if re.search(rf"\b{re.escape(word)}\b", text)]


def assert_chinese(page: Page, *chinese: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    for text in chinese:
        expect(page.locator("body")).to_contain_text(text)
    assert english_left(page) == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_sign_in_register_and_account_pages_are_chinese(new_page, browser_problems, viewport):
    browser_problems.allow_response("/register", 400)  # the empty form, refused on purpose
    # No service worker: the chat app's would fetch its shell meanwhile and take the flash.
    page = new_page(viewport, locale="zh-CN", service_workers="block")
    page.goto("/login")
    assert_chinese(page, "登录", "用户名", "密码", "第一次来？", "注册账号")

    page.get_by_role("link", name="注册账号").click()
    expect(page).to_have_url(re.compile(r"/register$"))
    assert_chinese(page, "注册账号", "昵称", "已有账号？")
    page.get_by_role("button", name="注册").click()  # empty: WTForms' own messages, in Chinese
    expect(page.locator(".error").first).to_have_text("该字段是必填字段。")
    assert_chinese(page)

    name = f"li{viewport['width']}"
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="注册").click()
    expect(page.locator("#tabs")).to_be_visible()

    page.goto("/account")
    assert_chinese(page, "个人资料", "保存个人资料", "设备", "本设备", "退出登录")
    page.get_by_role("button", name="保存个人资料").click()
    expect(page.locator(".flash")).to_have_text("个人资料已保存。")


def test_an_error_page_is_chinese(new_page, browser_problems):
    browser_problems.allow_response("/no-such-page", 404)
    page = new_page(PHONE, locale="zh-CN")
    page.goto("/no-such-page")
    assert_chinese(page, "在服务器上找不到请求的地址", "错误 404", "返回 Parley")


def test_the_admin_consoles_list_of_users_is_chinese(new_page, make_user):
    make_user("root", is_admin=True)
    make_user("alice", nickname="Alice")
    page = new_page(DESKTOP, locale="zh-CN")
    page.goto("/login?next=/admin/user/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/admin/user/$"))
    expect(page.get_by_role("cell", name="alice", exact=True)).to_be_visible()
    assert_chinese(page, "仪表盘", "用户", "列表", "用户名", "昵称", "创建时间", "审计日志")


def test_a_deleted_accounts_chat_is_named_in_the_readers_language(
    app, new_page, sign_in, make_user, befriend
):
    """The server keeps "Deleted user" as the nickname and says `deleted`; the client names it."""
    alice, bob = make_user("alice", nickname="Alice"), make_user("bob")
    befriend(alice, bob)
    with app.app_context():
        conversation = open_direct(alice, bob)[0]["id"]
        send_message(alice, conversation, new_client_msg_id(), {"type": "txt", "msg": "再见"})
        delete_user(alice)
        db.session.commit()
    page = sign_in(new_page(PHONE, locale="zh-CN"), "bob")
    expect(page.locator(".conv-name")).to_have_text(["已注销用户"])
    page.locator(".conv").first.click()
    expect(page.locator(".msg.theirs .bubble.text")).to_have_text(["再见"])
