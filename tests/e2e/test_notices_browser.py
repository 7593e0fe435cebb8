"""The notice conversation in the browser: a system notice sent through the server API appears
live as "Notices" (系统通知 in Chinese), opens as notice cards with no composer, and cannot be
picked as a forward target; a recalled notice reads as a recalled message in the reader's
language."""

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

    # Recalled by the service, live: the row says so in Chinese, never the server's English text.
    (notice,) = response.json()["notices"]
    page.locator(".conv.notice .conv-link").click()
    expect(page.locator(".notice-card .notice-text")).to_have_text(text)
    recalled = http.post(
        f"{e2e_server.url}/api/server/v1/conversations/{notice['conversation_id']}"
        f"/messages/{notice['message']['seq']}/recall",
        headers=headers,
    )
    assert recalled.status_code == 200, recalled.text
    row = page.locator(f".sys.recalled[data-seq='{notice['message']['seq']}']")
    expect(row).to_have_text("一条消息已被管理员撤回")
    expect(page.locator(".notice-card")).to_have_count(0)
    expect(page.get_by_text("Removed by an administrator")).to_have_count(0)
    page.reload()  # and from the server's history
    page.locator(".conv.notice .conv-link").click()
    expect(row).to_have_text("一条消息已被管理员撤回")
    expect(page.get_by_text("Removed by an administrator")).to_have_count(0)
