"""The robot's chat is in a new user's list and answers there, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, server_env
from tests.e2e.conftest import PHONE


@pytest.fixture
def robot_server(database_url, instance_path, tmp_path):
    """A live server with the robot on (its built-in provider: no network needed)."""
    env = server_env(database_url, instance_path, LOGIN_RATE_LIMIT="1000 per minute", BOT_ENABLED="true")
    server = LiveServer(env, tmp_path / "server.log").start()
    yield server
    server.stop()


def test_a_new_user_finds_the_robot_in_the_list_and_it_answers(browser, robot_server, sign_up):
    context = browser.new_context(base_url=robot_server.url, viewport=PHONE, locale="en-US")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        sign_up(page, "newcomer")
        expect(page.locator(".conv")).to_have_count(1)
        page.click(".conv-link")
        page.fill(".composer-input", "hello")
        page.press(".composer-input", "Enter")
        expect(page.locator(".msg.theirs .bubble.text")).to_have_count(1)
        assert page.locator(".msg.theirs .bubble.text").inner_text().strip() != ""
        assert not errors, errors
    finally:
        context.close()
