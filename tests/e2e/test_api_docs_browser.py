"""/api/docs in a real browser: the vendored Swagger UI renders the generated document, lists
operations of the client API and of the server API, runs a request against this server, and
reports no console error, no violation of the strict policy (app/headers.py) and no request to
another host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from config import BASE_DIR
from tests.e2e.conftest import DESKTOP

SWAGGER_UI = BASE_DIR / "app/static/vendor/swagger-ui"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_docs_page_shows_both_apis_from_this_server_alone(new_page, e2e_server, screenshot):
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        if not (SWAGGER_UI / name).exists():
            pytest.fail(f"{SWAGGER_UI / name} is missing: run `make vendor`")
    page = new_page(DESKTOP)
    page.context.add_init_script(RECORD_VIOLATIONS)
    errors: list[str] = []
    hosts: set[str] = set()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc or request.url.split(":")[0]))

    page.goto("/api/docs")
    client_op = page.locator('.opblock-summary-path[data-path="/api/v1/auth/login"]')
    expect(client_op).to_be_visible()
    server_ops = page.locator('.opblock-summary-path[data-path^="/api/server/v1/"]')
    expect(server_ops.first).to_be_visible()
    expect(page.locator(".info .title")).to_contain_text("Parley API")
    shot = screenshot(page, "api-docs")

    # An operation opened: its body's example and schema (highlighted, styled by Swagger UI).
    login = page.locator("#operations-auth_api-auth_api_login")
    login.locator(".opblock-summary").click()
    expect(login.locator(".body-param__example")).to_contain_text('"username"')
    login.locator('button[data-name="model"]').first.click()
    expect(login.locator(".model-box").first).to_contain_text("LoginIn")
    expect(page.locator("section.models")).to_contain_text("MessageIn")

    # "Try it out" on a public route: the request goes to this server and is answered.
    operation = page.locator("#operations-openapi-openapi_document")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table tbody td.response-col_status").first).to_have_text("200")

    assert shot.exists()
    assert errors == [], errors
    assert page.evaluate("window.__csp") == []
    local = urlsplit(e2e_server.url).netloc
    assert hosts <= {local, "data", "blob"}, hosts
