"""The notice conversation in the browser: a system notice sent through the server API appears
live as "Notices" (系统通知 in Chinese), opens as notice cards with no composer, and cannot be
picked as a forward target."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP


def test_a_notice_arrives_live_and_its_conversation_is_read_only(
    new_page, sign_up, api_key, http, e2e_server, screenshot
):
    page = sign_up(new_page(DESKTOP), "noticed", "Noticed")
    me = page.evaluate("fetch('/api/v1/auth/me').then((r) => r.json())")["user"]["id"]
    headers = api_key("messages")
    text = "Maintenance tonight 22:00–23:00.\nSave your work."
    response = http.post(
        f"{e2e_server.url}/api/server/v1/notices", json={"text": text, "user_ids": [me]}, headers=headers
    )
    assert response.status_code == 201, response.text

    item = page.locator(".conv.notice")
    expect(item.locator(".conv-name")).to_have_text("Notices")
    expect(item.locator(".conv-preview")).to_contain_text("Maintenance tonight")
    item.locator(".conv-link").click()
    card = page.locator(".notice-card")
    expect(card.locator(".notice-text")).to_have_text(text)
    expect(page.locator(".chat .title")).to_have_text("Notices")
    expect(page.locator(".composer")).to_be_hidden()
    expect(page.get_by_text("Notices are read-only.")).to_be_visible()
    screenshot(page, "notices")

    # The Chinese client titles it 系统通知.
    page.evaluate("localStorage.setItem('parley.locale', 'zh-CN')")
    page.reload()
    expect(page.locator(".conv.notice .conv-name")).to_have_text("系统通知")
