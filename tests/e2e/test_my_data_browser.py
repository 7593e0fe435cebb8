"""Me → Your data and account, in the browser: "Download my data" shows the export being prepared,
then (told by `export:ready`) a download link that serves the zip; "Delete my account" asks for the
password, refuses a wrong one in place, then deletes the account and lands on the sign-in page,
where the old password no longer works. An account with neither a password nor GitHub (made through
the server API) is told to ask an administrator instead."""

from __future__ import annotations

import io
import json
import re
import zipfile

import requests
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import PHONE


def test_download_my_data_then_delete_the_account(new_page, sign_up, browser_problems):
    browser_problems.allow_response("/api/v1/auth/me/delete", 403)  # the wrong password, on purpose
    browser_problems.allow_response("/login", 401)  # signing in to the deleted account
    page = sign_up(new_page(PHONE), "dora")
    page.click("#tabs a[data-tab=me]")
    page.click("a.entry[href='#/data']")
    expect(page.locator(".my-data h3").first).to_have_text("Download my data")
    page.click("button.ask-export")
    link = page.locator("a.export-download")
    expect(link).to_be_visible()
    expect(page.locator("button.ask-export")).to_be_enabled()
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200
    with zipfile.ZipFile(io.BytesIO(response.body())) as archive:
        assert json.loads(archive.read("profile.json"))["account"]["username"] == "dora"

    page.click("button.delete-account")
    page.click(".sheet .btn.danger")  # "Continue" past the warning
    page.fill(".sheet input[name=password]", "not my password")
    page.click(".sheet button[type=submit]")
    expect(page.locator("#error-delete-password")).to_have_text("wrong password")
    page.fill(".sheet input[name=password]", PASSWORD)
    page.click(".sheet button[type=submit]")
    # The client goes to the sign-in page once, though the socket's drop also leads there.
    page.wait_for_url(re.compile(r"/login(\?.*)?$"))
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#tabs")).to_have_count(0)


def test_an_account_made_by_the_organisation_is_told_to_ask_an_administrator(
    new_page, e2e_server, api_key, make_user
):
    user_id = make_user("corp", password=None, nickname="Corp", external_id="emp-42")
    issued = requests.post(
        f"{e2e_server.url}/api/server/v1/users/{user_id}/sign-in-tokens",
        json={},
        headers=api_key("users"),
        timeout=10,
    )
    assert issued.status_code == 201, issued.text
    page = new_page(PHONE)
    page.goto(f"/login/token#{issued.json()['token']}")
    page.click("#token-confirm")
    page.click("#token-open")
    expect(page.locator("#tabs")).to_be_visible()
    page.click("#tabs a[data-tab=me]")
    page.click("a.entry[href='#/data']")
    danger = page.locator(".my-data .danger-zone")
    expect(danger.locator(".cannot-delete")).to_have_text(
        "This account was made by your organisation: ask an administrator to delete it."
    )
    expect(danger.locator("form, button")).to_have_count(0)  # no "Confirm with GitHub", no "Delete"
    expect(page.locator("button.ask-export")).to_be_enabled()  # the export is still theirs to ask for


def test_two_ways_to_the_sign_in_page_at_once_make_one_navigation(new_page, sign_up):
    """Deleting the account both answers the page (which goes to sign in) and drops its socket
    (whose refused reconnect goes there too): the second way must not abort the first's load."""
    page = sign_up(new_page(PHONE), "erin")
    documents = []
    page.on("request", lambda request: request.is_navigation_request() and documents.append(request.url))
    with page.expect_event("load"):
        page.evaluate(
            """async () => {
          const { goToSignIn } = await import("/static/js/api.js");
          goToSignIn("/login?first=1");
          goToSignIn("/login?signed_out=1");
        }"""
        )
    # Still signed in here, so /login sends the page back to the app: what counts is that the
    # page asked for the sign-in page once, and the first way's load was not replaced.
    expect(page.locator("#tabs")).to_be_visible()
    assert [url for url in documents if "/login" in url] == [documents[0]]
    assert documents[0].endswith("/login?first=1")
