"""The "Sign in with GitHub" button in a real browser, against the local fake GitHub."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer, server_env
from tests.fake_github import CLIENT_ID, CLIENT_SECRET, github_fixture  # noqa: F401  (the fixture `github`)


@pytest.fixture
def github_server(github, database_url, instance_path, tmp_path):
    """A live server whose GitHub sign-in goes to the fake (as to a GitHub Enterprise server)."""
    env = server_env(
        database_url,
        instance_path,
        GITHUB_CLIENT_ID=CLIENT_ID,
        GITHUB_CLIENT_SECRET=CLIENT_SECRET,
        GITHUB_BASE_URL=github.url,
    )
    server = LiveServer(env, tmp_path / "server.log").start()
    yield server
    server.stop()


def test_sign_in_with_github_lands_in_the_chat_app(browser, github_server, github, screenshot):
    context = browser.new_context(base_url=github_server.url)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/login")
        screenshot(page, "sign-in-with-github")
        page.get_by_role("link", name="Sign in with GitHub").click()
        expect(page.locator("#tabs")).to_be_visible()
        assert page.url == f"{github_server.url}/"

        me = page.request.get("/api/v1/auth/me").json()
        assert (me["user"]["username"], me["user"]["nickname"]) == ("octocat", "The Octocat")
        assert me["device"]["method"] == "github"
        assert github.calls == [
            "GET /login/oauth/authorize",
            "POST /login/oauth/access_token",
            "GET /api/v3/user",
        ]
        assert not errors, errors
    finally:
        context.close()
