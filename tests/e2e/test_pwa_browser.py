"""The installable app in Chromium: the manifest and icons, the service worker controlling the
page, Chromium's own installability check, an offline start from the worker's caches with the
offline banner, the favicon on server-rendered pages, a push subscription, and what the worker does
with a push and a notification click."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import PushSubscription
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP

CONTROLLED = "() => navigator.serviceWorker.controller !== null"


def wait_until_controlled(page: Page) -> None:
    page.wait_for_function(CONTROLLED)
    script = page.evaluate("() => navigator.serviceWorker.controller.scriptURL")
    assert script.endswith("/sw.js")


def test_the_manifest_and_its_icons_load(new_page):
    page = new_page(DESKTOP)
    page.goto("/login")
    href = page.locator("link[rel=manifest]").get_attribute("href")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    for field in ("name", "short_name", "lang", "start_url", "scope", "display", "icons", "theme_color"):
        assert manifest[field], field
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/", "/", "standalone")
    for icon in manifest["icons"]:
        image = page.request.get(icon["src"])
        assert image.status == 200
        assert image.headers["content-type"] == "image/png"
        width, height = Image.open(io.BytesIO(image.body())).size
        assert f"{width}x{height}" == icon["sizes"]


def test_a_chinese_browser_gets_the_chinese_names(new_page):
    page = new_page(DESKTOP, locale="zh-CN")
    page.goto("/login")
    # The manifest as Chromium itself fetched and parsed it.
    cdp = page.context.new_cdp_session(page)
    manifest = json.loads(cdp.send("Page.getAppManifest")["data"])
    assert (manifest["lang"], manifest["name"]) == ("zh-CN", "Parley 聊天")


def test_server_pages_have_the_favicon(new_page):
    page = new_page(DESKTOP)
    page.goto("/login")
    favicon = page.request.get("/favicon.ico")
    assert favicon.status == 200
    assert favicon.headers["content-type"] == "image/x-icon"
    assert "max-age" in favicon.headers["cache-control"]
    icon = page.locator("link[rel=icon]").get_attribute("href")
    # The page's own icon loads as an image (its natural size is known once decoded).
    size = page.evaluate(
        """(src) => new Promise((resolve) => {
            const image = new Image();
            image.onload = () => resolve([image.naturalWidth, image.naturalHeight]);
            image.onerror = () => resolve(null);
            image.src = src;
        })""",
        icon,
    )
    assert size == [32, 32]


@pytest.fixture
def profile(browser, e2e_server, tmp_path):
    """A browser with a profile on disk, as a user runs it: Chromium offers installing and push
    only outside incognito, and every `new_page` context is an incognito one."""
    context = browser.browser_type.launch_persistent_context(
        str(tmp_path / "profile"),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        base_url=e2e_server.url,
        viewport=DESKTOP,
        locale="en-US",
    )
    context.set_default_timeout(15_000)
    errors: list[str] = []
    context.pages[0].on("pageerror", lambda error: errors.append(str(error)))
    yield context
    context.close()
    assert not errors, errors


def test_the_worker_controls_the_app_and_chromium_can_install_it(profile, sign_up):
    page = sign_up(profile.pages[0], "alice")
    wait_until_controlled(page)
    scope = page.evaluate("async () => (await navigator.serviceWorker.getRegistration()).scope")
    assert scope == page.url.split("#")[0].rstrip("/") + "/"
    cdp = page.context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert not manifest["errors"], manifest["errors"]
    assert manifest["url"].endswith("/manifest.webmanifest")
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert errors == [], errors


def test_offline_the_app_opens_from_the_cache_with_the_banner(
    new_page, sign_in, make_user, befriend, browser_problems
):
    browser_problems.allow_offline()
    alice_id, bob_id, carol_id = (
        make_user("alice", nickname="Alice"),
        make_user("bob", nickname="Bob"),
        make_user("carol", nickname="Carol"),
    )
    befriend(alice_id, bob_id)
    page = sign_in(new_page(DESKTOP), "alice")
    expect(page.locator(".conv-link")).to_have_count(1)
    wait_until_controlled(page)
    expect(page.locator("#conn")).to_be_hidden()

    # Going offline shows the banner at once (the browser says it is offline).
    page.context.set_offline(True)
    expect(page.locator("#conn")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("Offline — reconnecting…")
    # A chat that starts while Alice is offline is not in what was last loaded.
    befriend(alice_id, carol_id)

    response = page.reload()
    assert response is not None and response.from_service_worker
    expect(page.locator("#tabs")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("Offline — reconnecting…")
    expect(page.locator(".conv-link")).to_have_count(1)
    expect(page.locator(".conv-name")).to_have_text(["Bob"])
    page.wait_for_function("() => document.body.classList.contains('ready')")

    # Back online: the socket connects, the banner goes, and the new chat arrives.
    page.context.set_offline(False)
    expect(page.locator("#conn")).to_be_hidden()
    expect(page.locator(".conv-link")).to_have_count(2)
    # The contacts the offline start could not load come with the connection.
    page.click('#tabs a[data-tab="contacts"]')
    expect(page.locator(".person.friend .person-name")).to_have_text(["Bob", "Carol"])


def test_the_banner_shows_in_chinese(new_page, sign_in, make_user):
    make_user("mei", nickname="Mei")
    page = sign_in(new_page(DESKTOP, locale="zh-CN"), "mei")
    wait_until_controlled(page)
    page.context.set_offline(True)
    expect(page.locator("#conn")).to_have_text("离线 — 正在重新连接…")


def test_signing_out_drops_the_kept_shell(new_page, sign_in, make_user, browser_problems):
    # The app learns of the sign-out when its socket is dropped: its catch-up and profile reads
    # may then be answered 401 before it moves to /login.
    browser_problems.allow_response("/api/v1/sync", 401)
    browser_problems.allow_response("/api/v1/auth/me", 401)
    make_user("alice", nickname="Alice")
    page = sign_in(new_page(DESKTOP), "alice")
    wait_until_controlled(page)
    kept = (
        "async () => (await (await caches.open('parley-data-v1')).keys()).map((r) => new URL(r.url).pathname)"
    )
    page.wait_for_function(f"async () => (await ({kept})()).includes('/')")
    # Signed in, the sign-in page sends back to the app: the kept shell stays.
    page.goto("/login")
    wait_until_controlled(page)
    assert "/" in page.evaluate(kept)
    page.evaluate(
        """async () => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/logout";
            const token = document.createElement("input");
            token.name = "csrf_token";
            token.value = document.querySelector('meta[name="csrf-token"]').content;
            form.append(token);
            document.body.append(form);
            form.submit();
        }"""
    )
    # The form's redirect and the app's own move to /login (its socket is dropped by the sign-out)
    # may race, one aborting the other: wait for where the page ends, not for one navigation.
    expect(page).to_have_url(re.compile(r"/login"))
    page.wait_for_load_state()
    page.wait_for_function(f"async () => (await ({kept})()).length === 0")


PWA = "import('/static/js/pwa.js')"
API = "import('/static/js/api.js')"
NO_PUSH_SERVICE = {"TimeoutError", "AbortError", "NotAllowedError"}
# A subscription as a browser would make it: a P-256 key pair and a 16-byte secret, made in the
# page with WebCrypto, and an endpoint on a public host (nothing is sent to it in this test).
SYNTHETIC_SUBSCRIPTION = """async () => {
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const b64url = (bytes) =>
        btoa(String.fromCharCode(...bytes)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    return {
        endpoint: "https://1.1.1.1/push/parley-e2e-" + crypto.randomUUID(),
        keys: { p256dh: b64url(raw), auth: b64url(crypto.getRandomValues(new Uint8Array(16))) },
    };
}"""


def subscriptions_of(app, user_id: int) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(PushSubscription.endpoint).filter_by(user_id=user_id)))


def test_push_subscription_from_the_page(profile, sign_in, make_user, app):
    alice_id = make_user("alice", nickname="Alice")
    page = sign_in(profile.pages[0], "alice")
    page.context.grant_permissions(["notifications"])
    wait_until_controlled(page)
    assert page.evaluate(f"async () => (await {PWA}).pushSupported()") is True
    assert page.evaluate(f"async () => (await {PWA}).pushState()") == "off"

    outcome = page.evaluate(
        f"""async () => {{
            try {{
                return {{ state: await (await {PWA}).enablePush({{ timeoutMs: 5000 }}) }};
            }} catch (error) {{
                return {{ error: error.name, message: error.message }};
            }}
        }}"""
    )
    if outcome.get("state") == "on":
        assert page.evaluate(f"async () => (await {PWA}).pushState()") == "on"
        assert len(subscriptions_of(app, alice_id)) == 1
    else:
        # Headless Chromium here has no reachable push service (the browser's subscribe never
        # settles; private contexts refuse at once): enablePush gives up, and nothing is kept.
        assert outcome.get("error") in NO_PUSH_SERVICE, outcome
        assert page.evaluate(f"async () => (await {PWA}).pushState()") == "off"
        assert subscriptions_of(app, alice_id) == []

    # The server's side of the round trip with a subscription made in the page: registered for
    # this device, listed, and removed by disablePush.
    subscription = page.evaluate(SYNTHETIC_SUBSCRIPTION)
    status = page.evaluate(
        f"""async (body) => {{
            const {{ api }} = await {API};
            await api("/push/subscriptions", {{ method: "POST", body }});
            return (await api("/push/subscriptions")).subscriptions;
        }}""",
        subscription,
    )
    assert len(status) == 1
    assert subscriptions_of(app, alice_id) == [subscription["endpoint"]]
    assert page.evaluate(f"async () => (await {PWA}).disablePush()") == "off"
    assert subscriptions_of(app, alice_id) == []


def deliver_push(page: Page, origin: str, payload: dict) -> None:
    """Hand the worker a push message, as the browser does when the push service delivers one."""
    cdp = page.context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"])
    )
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 5
    while not (live := [item for item in registrations if not item["isDeleted"]]):
        if time.monotonic() > deadline:
            break
        page.wait_for_timeout(20)  # lets Playwright deliver the session's events
    assert live, registrations
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": origin,
            "registrationId": live[0]["registrationId"],
            "data": json.dumps(payload),
        },
    )
    cdp.detach()


SHOWN = """async () => (await self.registration.getNotifications()).map((n) => ({
    title: n.title, body: n.body, tag: n.tag, icon: new URL(n.icon).pathname, url: n.data.url,
}))"""


def test_a_push_shows_one_notification_per_conversation_unless_parley_is_in_front(
    profile, sign_in, make_user
):
    make_user("alice", nickname="Alice")
    page = sign_in(profile.pages[0], "alice")
    page.context.grant_permissions(["notifications"])
    wait_until_controlled(page)
    worker = page.context.service_workers[0]
    first = {
        "conversation_id": 5,
        "title": "Bob",
        "body": "lunch?",
        "tag": "conversation-5",
        "url": "/#/chat/5",
    }

    origin = page.evaluate("location.origin")

    # Parley is open and focused: the page shows the message itself, the worker stays quiet.
    deliver_push(page, origin, first)
    page.wait_for_timeout(500)
    assert worker.evaluate(SHOWN) == []

    # Parley closed (the tab went elsewhere): the push becomes a notification...
    page.goto("about:blank")
    deliver_push(page, origin, first)
    expected = {
        "title": "Bob",
        "body": "lunch?",
        "tag": "conversation-5",
        "icon": "/static/icons/icon-192.png",
        "url": "/#/chat/5",
    }
    assert shown(worker, lambda items: items) == [expected]
    # ...and the next one in that conversation replaces it rather than piling up.
    deliver_push(page, origin, {**first, "body": "at noon"})
    assert shown(worker, lambda items: items and items[0]["body"] == "at noon") == [
        {**expected, "body": "at noon"}
    ]


def shown(worker, ready, timeout: float = 5.0) -> list[dict]:
    """The worker's notifications once `ready(notifications)` holds (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        items = worker.evaluate(SHOWN)
        if ready(items) or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_a_short_socket_drop_shows_no_banner_a_longer_one_does(
    new_page, sign_in, make_user, browser_problems
):
    # The drop can come before the socket's upgrade from long-polling: the server has closed that
    # session, so the poll still in flight is answered 400 (seen once on a loaded machine).
    browser_problems.allow_response("/socket.io/", 400)
    make_user("alice", nickname="Alice")
    page = sign_in(new_page(DESKTOP), "alice")
    page.wait_for_function("() => document.body.classList.contains('ready')")
    expect(page.locator("#conn")).to_be_hidden()
    socket = "(await import('/static/js/socket.js')).socket"
    page.evaluate(f"async () => {socket}.disconnect()")
    # Still hidden a second later (a server restart or a network switch goes unnoticed)...
    page.wait_for_timeout(1000)
    expect(page.locator("#conn")).to_be_hidden()
    # ...shown after a few seconds, and gone once the socket is back.
    expect(page.locator("#conn")).to_be_visible()
    expect(page.locator("#conn")).to_have_text("Offline — reconnecting…")
    page.evaluate(f"async () => {socket}.connect()")
    expect(page.locator("#conn")).to_be_hidden()


def test_a_notification_click_follows_its_link_in_the_open_app(new_page, sign_in, make_user):
    make_user("alice", nickname="Alice")
    page = sign_in(new_page(DESKTOP), "alice")
    wait_until_controlled(page)
    page.wait_for_function("() => document.body.classList.contains('ready')")
    worker = page.context.service_workers[0]
    # What the worker's notificationclick does with an open app: it tells the page where to go.
    worker.evaluate(
        """async () => {
            const [client] = await self.clients.matchAll({ type: "window" });
            const url = new URL("/#/devices", self.location.origin).href;
            client.postMessage({ type: "parley:open", url });
        }"""
    )
    page.wait_for_url(re.compile(r"/#/devices$"))
    expect(page.locator("#tabs a.on")).to_have_attribute("data-tab", "me")
    # Nothing else is followed: another site's link, or another kind of message.
    worker.evaluate(
        """async () => {
            const [client] = await self.clients.matchAll({ type: "window" });
            client.postMessage({ type: "parley:open", url: "https://example.com/#/contacts" });
            client.postMessage({ type: "other", url: "/#/contacts" });
        }"""
    )
    page.wait_for_timeout(300)
    assert page.url.endswith("/#/devices")
