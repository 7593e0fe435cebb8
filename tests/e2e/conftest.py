"""Browser tests: Debian's Chromium driven by Playwright against a live gunicorn server.

Fixtures here are general: `e2e_server` (a live server with a high sign-in limit), `browser`
(one headless Chromium per session), `new_page(viewport=...)` (a fresh browser context, i.e. a
separate device with its own cookies, and a page in it), and `sign_up` / `sign_in` that go
through the real HTML forms.
"""

from __future__ import annotations

import os
import re
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
    # A microphone that plays a tone, for the voice recorder (a page still needs the permission).
    "--use-fake-device-for-media-stream",
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


class BrowserProblems:
    """What went wrong in a test's pages: uncaught exceptions, console errors, failed requests
    and HTTP answers of 400 or more. Any of them fails the test unless the test said it expects
    it (`browser_problems.allow(pattern)`, a regular expression searched in the problem's text,
    which starts with its kind and holds the request's method, URL and status where there is one).
    A request the browser itself cancelled (a navigation, a closed page) is not a problem."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def allow_response(self, path: str, status: int) -> None:
        """An answer the test provokes on purpose: `status` from the path (a regular expression
        matched at the end of the URL, before any query), and the console line Chromium logs
        for it."""
        self.allow(rf"^http \w+ https?://[^/]+{path}(\?\S*)? {status}$")
        self.allow(
            rf"^console Failed to load resource: .* status of {status} .* at https?://[^/]+{path}(\?\S*)?$"
        )

    def allow_offline(self) -> None:
        """The test takes the browser offline: what it tries meanwhile fails as disconnected."""
        self.allow(r"^(requestfailed \w+|console Failed to load resource:) .*net::ERR_INTERNET_DISCONNECTED")

    def add(self, problem: str) -> None:
        self.seen.append(problem)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.add(f"pageerror {error}"))
        page.on("console", self._console)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        location = message.location.get("url", "") if message.location else ""
        self.add(f"console {message.text} at {location}")

    def _failed(self, request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure or "NS_BINDING_ABORTED" in failure:
            return
        self.add(f"requestfailed {request.method} {request.url} {failure}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.add(f"http {response.request.method} {response.url} {response.status}")

    def unexpected(self) -> list[str]:
        # A failed load's console line names only the resource's URL: it is expected when an
        # allowed pattern matches it.
        return [p for p in self.seen if not any(pattern.search(p) for pattern in self.allowed)]


@pytest.fixture
def browser_problems():
    return BrowserProblems()


@pytest.fixture
def new_page(browser, e2e_server, browser_problems):
    """A page in a new browser context (a device of its own); all are closed after the test.
    Uncaught exceptions, console errors and failed requests fail the test unless the test
    allowed them (`browser_problems.allow`)."""
    contexts = []

    def make(viewport: dict | None = None, *, locale: str = "en-US", **options) -> Page:
        context = browser.new_context(
            base_url=e2e_server.url, viewport=viewport or PHONE, locale=locale, **options
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        browser_problems.watch(page)
        return page

    yield make
    for context in contexts:
        # Leave each page first, so its socket closes now and the live server forgets it before
        # the next test (which may reuse the same user ids) starts.
        for page in context.pages:
            page.goto("about:blank")
        context.close()
    unexpected = browser_problems.unexpected()
    assert not unexpected, "unexpected browser problems:\n" + "\n".join(unexpected)


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
