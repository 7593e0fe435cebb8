"""Browser tests: Debian's Chromium driven by Playwright against a live gunicorn server.

Fixtures here are general: `e2e_server` (a live server with a high sign-in limit), `browser`
(one headless Chromium per session), `new_page(viewport=...)` (a fresh browser context, i.e. a
separate device with its own cookies, and a page in it), and `sign_up` / `sign_in` that go
through the real HTML forms.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from config import BASE_DIR
from tests.conftest import PASSWORD, LiveServer, server_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
VENDOR = BASE_DIR / "app/static/vendor/socket.io.esm.min.js"
SCREENSHOTS = BASE_DIR / "docs/screenshots"

expect.set_options(timeout=10_000)


@pytest.fixture(scope="session")
def e2e_server(app, database_url, instance_path, tmp_path_factory):
    if not VENDOR.exists():
        pytest.exit(
            f"{VENDOR} is missing: run `make test` (or `make {VENDOR.relative_to(BASE_DIR)}`)", returncode=4
        )
    # The robot is off here so that each scenario's list holds only its own chats; the robot's
    # own browser test turns it on.
    env = server_env(database_url, instance_path, LOGIN_RATE_LIMIT="1000 per minute", BOT_ENABLED="false")
    live = LiveServer(env, tmp_path_factory.mktemp("e2e") / "server.log")
    # Written with a trailing slash, as people do: the browsers' sockets must still be accepted.
    live.env["PUBLIC_BASE_URL"] = f"{live.url}/"
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture(scope="session")
def browser():
    if not shutil.which("chromium") and not Path(CHROMIUM).exists():
        pytest.exit("Chromium is missing: run `make test` (it installs Debian's chromium)", returncode=4)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, e2e_server):
    """A page in a new browser context (a device of its own); all are closed after the test.
    Page errors (uncaught exceptions) fail the test."""
    contexts = []
    errors: list[str] = []

    def make(viewport: dict | None = None, *, locale: str = "en-US", **options) -> Page:
        context = browser.new_context(
            base_url=e2e_server.url, viewport=viewport or PHONE, locale=locale, **options
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


@pytest.fixture
def sign_up():
    def register(page: Page, username: str, nickname: str | None = None) -> Page:
        page.goto("/register")
        page.fill("input[name=username]", username)
        page.fill("input[name=nickname]", nickname or username.capitalize())
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#tabs")).to_be_visible()
        return page

    return register


@pytest.fixture
def sign_in():
    def login(page: Page, username: str) -> Page:
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page.locator("#tabs")).to_be_visible()
        return page

    return login


@pytest.fixture
def screenshot(tmp_path):
    """Save a screenshot; with PARLEY_SCREENSHOTS=1 it goes to docs/screenshots/ (for the README)."""

    def save(page: Page, name: str) -> Path:
        target_dir = SCREENSHOTS if os.environ.get("PARLEY_SCREENSHOTS") == "1" else tmp_path
        path = target_dir / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return save
