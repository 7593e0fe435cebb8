"""State that stays true, in a real browser on phone and desktop: a group left on one device leaves
the list of the other (live and after a reload) with no badge for one's own system events; a mute
closes the composer with its reason and end, live, and opens it again when lifted."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.chat.conversations import open_direct
from app.groups import roles as group_roles
from app.groups import services as groups
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
# The end of a mute: its time, after its date when that is another day (a run near midnight).
UNTIL = r"([A-Z][a-z]{2} \d{1,2} )?\d{1,2}:\d{2}( [AP]M)?"


@pytest.fixture
def people(app, make_user, befriend):
    """Alice owns "Team" with Bob in it; they also have a direct chat."""
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    with app.app_context():
        group = groups.create_group(alice_id, "Team", [bob_id])
        direct, _ = open_direct(alice_id, bob_id)
        ids = {"alice": alice_id, "bob": bob_id, "group": group.id, "team": group.conversation_id}
        ids["direct"] = direct["id"]
    return ids


def conv(page: Page, conversation_id: int):
    return page.locator(f'.conv[data-id="{conversation_id}"]')


def open_chat(page: Page, conversation_id: int) -> None:
    conv(page, conversation_id).locator(".conv-link").click()
    expect(page.locator(".chat .composer-input")).to_be_visible()


def go(page: Page, hash_: str) -> None:
    page.evaluate("(hash) => { window.location.hash = hash; }", hash_)


def hold_first_answer(page: Page, url, method: str | None = None) -> list:
    """Route `url` on `page`: its first request (of `method`, if given) goes to the server at once
    and the answer is held, as (route, response), in the list returned; the others go through."""
    held: list = []

    def handle(route) -> None:
        if held or (method is not None and route.request.method != method):
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route(url, handle)
    return held


def wait_until_held(page: Page, held: list, what: str) -> None:
    for _ in range(300):
        if held:
            return
        page.wait_for_timeout(50)
    raise AssertionError(what)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_group_left_on_one_device_leaves_the_other_with_no_badge(viewport, app, new_page, sign_in, people):
    with app.app_context():
        group_roles.set_role(people["alice"], people["group"], people["bob"], "admin")
    here = sign_in(new_page(viewport), "bob")
    there = sign_in(new_page(viewport), "bob")
    # The other device reads the group, then shows the list.
    open_chat(there, people["team"])
    expect(there.locator("#badge-chats")).to_be_hidden()
    go(there, "#/chats")

    # An act of mine on this device writes a system message: never unread on the other one.
    go(here, f"#/group/{people['group']}")
    here.get_by_role("button", name="Mute everyone").click()
    expect(conv(there, people["team"]).locator(".conv-preview")).to_have_text("Bob muted the group")
    expect(conv(there, people["team"]).locator(".badge")).to_have_count(0)
    expect(there.locator("#badge-chats")).to_be_hidden()

    # Leaving here: the chat leaves the list on both devices at once, and stays gone after a reload.
    here.get_by_role("button", name="Let everyone speak").click()
    here.get_by_role("button", name="Leave group").click()
    here.get_by_role("dialog").get_by_role("button", name="Leave group").click()
    expect(here).to_have_url(re.compile(r"#/chats$"))
    for page in (here, there):
        expect(conv(page, people["team"])).to_have_count(0)
        expect(conv(page, people["direct"])).to_have_count(1)
        expect(page.locator("#badge-chats")).to_be_hidden()
    there.reload()
    expect(conv(there, people["direct"])).to_have_count(1)
    expect(conv(there, people["team"])).to_have_count(0)
    expect(there.locator("#badge-chats")).to_be_hidden()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_chat_open_on_the_other_device_closes_when_the_group_is_left(viewport, new_page, sign_in, people):
    there = sign_in(new_page(viewport), "bob")
    open_chat(there, people["team"])
    here = sign_in(new_page(DESKTOP), "bob")
    go(here, f"#/group/{people['group']}")
    here.get_by_role("button", name="Leave group").click()
    here.get_by_role("dialog").get_by_role("button", name="Leave group").click()
    expect(there).to_have_url(re.compile(r"#/chats$"))
    expect(conv(there, people["team"])).to_have_count(0)
    expect(there.locator("#badge-chats")).to_be_hidden()


def mute_bob_from_group_info(alice: Page, people: dict, action: str) -> None:
    go(alice, f"#/group/{people['group']}")
    alice.locator(f'.member[data-user-id="{people["bob"]}"]').click()
    alice.get_by_role("dialog").get_by_role("button", name=action, exact=True).click()
    expect(alice.get_by_role("dialog")).to_have_count(0)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_group_mute_closes_the_composer_with_its_reason_live(viewport, new_page, sign_in, people):
    alice = sign_in(new_page(DESKTOP), "alice")
    bob = sign_in(new_page(viewport), "bob")
    open_chat(bob, people["team"])
    bob.locator(".composer-input").fill("a draft")
    note, composer_input = bob.locator(".speak-note"), bob.locator(".composer-input")
    expect(note).to_be_hidden()

    mute_bob_from_group_info(alice, people, "Mute for an hour")
    expect(note).to_have_text(re.compile(rf"^You are muted in this group until {UNTIL}\.$"))
    expect(composer_input).to_be_disabled()
    expect(composer_input).to_have_value("a draft")  # kept for when the mute ends
    expect(bob.locator(".composer .attach-btn")).to_be_disabled()
    # After a reload the summary says the same.
    bob.reload()
    expect(bob.locator(".speak-note")).to_have_text(
        re.compile(rf"^You are muted in this group until {UNTIL}\.$")
    )
    expect(bob.locator(".composer-input")).to_be_disabled()
    # Other chats are open to him.
    go(bob, f"#/chat/{people['direct']}")
    expect(bob.locator(".speak-note")).to_be_hidden()
    expect(bob.locator(".composer-input")).to_be_enabled()
    go(bob, f"#/chat/{people['team']}")
    expect(bob.locator(".composer-input")).to_be_disabled()

    mute_bob_from_group_info(alice, people, "Unmute")
    expect(bob.locator(".speak-note")).to_be_hidden()
    expect(bob.locator(".composer-input")).to_be_enabled()

    # "Mute everyone": the reason has no end; letting everyone speak opens it again.
    go(alice, f"#/group/{people['group']}")
    alice.get_by_role("button", name="Mute everyone").click()
    expect(bob.locator(".speak-note")).to_have_text("Everyone is muted by the admins.")
    expect(bob.locator(".composer-input")).to_be_disabled()
    alice.get_by_role("button", name="Let everyone speak").click()
    expect(bob.locator(".speak-note")).to_be_hidden()
    bob.locator(".composer-input").fill("back")
    bob.locator(".composer-input").press("Enter")
    expect(bob.locator(".msg.mine .bubble.text").last).to_have_text("back")


def console_mute(console: Page, user_id: int, minutes: str) -> None:
    console.goto(f"/login?next=/admin/user/details/?id={user_id}")
    console.fill("input[name=username]", "root")
    console.fill("input[name=password]", PASSWORD)
    console.click("button[type=submit]")
    console.fill("form[action$='/mute'] input[name=reason]", "cool down")
    console.fill("form[action$='/mute'] input[name=minutes]", minutes)
    console.get_by_role("button", name="Mute", exact=True).click()
    expect(console.get_by_role("button", name="Unmute", exact=True)).to_be_visible()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_site_mute_closes_every_composer_with_the_reason(viewport, new_page, sign_in, make_user, people):
    make_user("root", is_admin=True)
    bob = sign_in(new_page(viewport), "bob")
    open_chat(bob, people["direct"])
    console = new_page(DESKTOP)
    console_mute(console, people["bob"], "45")

    reason = re.compile(rf"^Your account is muted until {UNTIL}\.$")
    expect(bob.locator(".speak-note")).to_have_text(reason)
    expect(bob.locator(".composer-input")).to_be_disabled()
    go(bob, f"#/chat/{people['team']}")
    expect(bob.locator(".speak-note")).to_have_text(reason)
    expect(bob.locator(".composer-input")).to_be_disabled()
    bob.reload()
    expect(bob.locator(".speak-note")).to_have_text(reason)
    expect(bob.locator(".composer-input")).to_be_disabled()

    console.get_by_role("button", name="Unmute", exact=True).click()
    expect(bob.locator(".speak-note")).to_be_hidden()
    expect(bob.locator(".composer-input")).to_be_enabled()


def test_a_mute_lifted_before_the_page_connects_opens_the_composer(new_page, sign_in, make_user, people):
    """The page renders muted from its boot payload; the mute is lifted before its socket has
    joined (the live event goes to no one): the first connect asks again and opens the composer."""
    make_user("root", is_admin=True)
    # No service worker: requests it forwards would pass by the page's routes.
    bob = sign_in(new_page(DESKTOP, service_workers="block"), "bob")
    console = new_page(DESKTOP)
    console_mute(console, people["bob"], "45")
    # The next page's socket waits (its requests are held) until the mute is lifted.
    held: list = []
    gate = {"open": False}
    bob.route("**/socket.io/**", lambda route: route.continue_() if gate["open"] else held.append(route))
    bob.reload()
    open_chat(bob, people["direct"])
    expect(bob.locator(".speak-note")).to_have_text(re.compile(rf"^Your account is muted until {UNTIL}\.$"))
    expect(bob.locator(".composer-input")).to_be_disabled()

    console.get_by_role("button", name="Unmute", exact=True).click()
    expect(console.get_by_role("button", name="Mute", exact=True)).to_be_visible()
    gate["open"] = True
    for route in held:
        route.continue_()
    expect(bob.locator(".speak-note")).to_be_hidden()
    expect(bob.locator(".composer-input")).to_be_enabled()


def test_an_answer_read_before_a_live_lift_does_not_close_the_composer_again(
    new_page, sign_in, make_user, people
):
    """The connect's `/auth/me` is read while the mute still holds, and its answer arrives after
    the live lift: the page asks again rather than closing the composer on the older answer."""
    make_user("root", is_admin=True)
    bob = sign_in(new_page(DESKTOP, service_workers="block"), "bob")
    console = new_page(DESKTOP)
    console_mute(console, people["bob"], "45")
    # The server answers the next page's first `/auth/me` at once (muted); the answer is held.
    held = hold_first_answer(bob, "**/api/v1/auth/me")
    bob.reload()
    open_chat(bob, people["direct"])
    expect(bob.locator(".speak-note")).to_have_text(re.compile(rf"^Your account is muted until {UNTIL}\.$"))
    bob.wait_for_function("() => document.body.classList.contains('ready')")
    wait_until_held(bob, held, "the page never asked /auth/me")

    console.get_by_role("button", name="Unmute", exact=True).click()
    expect(bob.locator(".speak-note")).to_be_hidden()  # the live lift
    [(route, stale)] = held
    # The page asks again: an answer that is not the held one, and tells the lift.
    with bob.expect_response(
        lambda answer: answer.url.endswith("/api/v1/auth/me") and answer.request != route.request
    ) as again:
        route.fulfill(response=stale)
    assert again.value.ok
    assert again.value.json()["sanction"] == {"kind": "mute", "active": False, "expires_at": None}
    expect(bob.locator(".speak-note")).to_be_hidden()
    expect(bob.locator(".composer-input")).to_be_enabled()


def test_a_summary_read_before_a_live_unmute_does_not_close_the_composer_again(
    app, new_page, sign_in, people
):
    """The reloaded page's catch-up (`/sync`) reads the group's summary while Bob is still muted
    there, and its answer arrives after the live unmute: the page asks for that conversation again
    rather than closing the composer on the older summary."""
    with app.app_context():
        group_roles.mute_member(people["alice"], people["group"], people["bob"], 60)
    alice = sign_in(new_page(DESKTOP), "alice")
    # No service worker: requests it forwards would pass by the page's routes.
    bob = sign_in(new_page(DESKTOP, service_workers="block"), "bob")
    # The next page's socket waits (its requests are held) until the group has changed after the
    # list's cursor, so that its catch-up carries the group's summary; the server answers that
    # catch-up at once (muted), and the answer is held.
    held_socket: list = []
    gate = {"open": False}
    bob.route(
        "**/socket.io/**", lambda route: route.continue_() if gate["open"] else held_socket.append(route)
    )
    held = hold_first_answer(bob, re.compile(r"/api/v1/sync\?"))
    bob.reload()
    open_chat(bob, people["team"])
    note, composer_input = bob.locator(".speak-note"), bob.locator(".composer-input")
    muted = re.compile(rf"^You are muted in this group until {UNTIL}\.$")
    expect(note).to_have_text(muted)
    expect(composer_input).to_be_disabled()

    open_chat(alice, people["team"])
    alice.locator(".composer-input").fill("while you were away")
    alice.locator(".composer-input").press("Enter")
    expect(alice.locator(".msg.mine .bubble.text").last).to_have_text("while you were away")
    gate["open"] = True
    for route in held_socket:
        route.continue_()
    wait_until_held(bob, held, "the page never asked /sync")

    mute_bob_from_group_info(alice, people, "Unmute")
    expect(note).to_be_hidden()  # the live unmute
    expect(composer_input).to_be_enabled()
    [(route, stale)] = held
    assert any(
        item["id"] == people["team"] and item["my_muted_until"] for item in stale.json()["conversations"]
    )
    # The page asks for the group's summary again, and its answer tells the unmute.
    with bob.expect_response(
        lambda answer: (
            answer.url.endswith(f"/api/v1/conversations/{people['team']}") and answer.request.method == "GET"
        )
    ) as again:
        route.fulfill(response=stale)
    assert again.value.ok
    assert again.value.json()["conversation"]["my_muted_until"] is None
    expect(note).to_be_hidden()
    expect(composer_input).to_be_enabled()
    # The rest of the catch-up is applied: the message sent while the socket waited is shown.
    expect(bob.locator(".msg .bubble.text").last).to_have_text("while you were away")


def test_leaving_waits_for_a_load_of_the_group_under_way(app, new_page, sign_in, people):
    """A live change reloads the group's info while I leave it: the members are not asked for once
    I am out (the server would refuse: a 403 in the page), the leave waits for that load."""
    with app.app_context():
        group_roles.set_role(people["alice"], people["group"], people["bob"], "admin")
    bob = sign_in(new_page(DESKTOP, service_workers="block"), "bob")
    go(bob, f"#/group/{people['group']}")
    expect(bob.get_by_role("button", name="Leave group")).to_be_visible()
    order: list[str] = []
    bob.on("request", lambda request: order.append(f"{request.method} {request.url.split('/api/v1')[-1]}"))
    held: list = []
    members = re.compile(rf"/api/v1/groups/{people['group']}/members\?")
    gate = {"open": False}
    bob.route(members, lambda route: route.continue_() if gate["open"] else held.append(route))
    # A live change (Alice mutes everyone): the info view loads again, its members are held.
    alice = sign_in(new_page(DESKTOP), "alice")
    go(alice, f"#/group/{people['group']}")
    alice.get_by_role("button", name="Mute everyone").click()
    wait_until_held(bob, held, "the view never asked for the members again")

    left: list = []
    bob.on("response", lambda answer: left.append(answer) if answer.request.method == "DELETE" else None)
    bob.get_by_role("button", name="Leave group").click()
    bob.get_by_role("dialog").get_by_role("button", name="Leave group").click()
    leave = f"DELETE /groups/{people['group']}/members/{people['bob']}"
    # A leave sent at once would be answered within these two seconds; this one waits.
    for _ in range(40):
        if left:
            break
        bob.wait_for_timeout(50)
    gate["open"] = True
    with bob.expect_response(members) as listed:
        for route in held:
            route.continue_()
    assert listed.value.status == 200  # asked while still a member
    expect(bob).to_have_url(re.compile(r"#/chats$"))
    expect(conv(bob, people["team"])).to_have_count(0)
    asked = [line for line in order if "/members" in line or "/join-requests" in line]
    assert leave in asked
    # Nothing about the group's members is asked for after the leave.
    assert asked[-1] == leave, asked


def test_a_settings_answer_older_than_a_live_change_is_not_applied(new_page, sign_in, people):
    """Bob pins the chat on his phone, whose answer is held; his laptop unpins it meanwhile, and
    the phone hears that live. The phone's late answer (pinned) is then older than what it shows:
    it asks for the chat again instead of pinning it back."""
    phone = sign_in(new_page(PHONE, service_workers="block"), "bob")
    laptop = sign_in(new_page(DESKTOP), "bob")
    held = hold_first_answer(phone, re.compile(rf"/api/v1/conversations/{people['direct']}$"), "PATCH")
    open_chat(phone, people["direct"])
    phone.locator("#main").get_by_role("button", name="Chat options").click()
    phone.get_by_role("button", name="Pin to top").click()
    wait_until_held(phone, held, "the phone never sent its PATCH")
    expect(conv(laptop, people["direct"])).to_have_class(re.compile(r"\bpinned\b"))  # the live pin

    open_chat(laptop, people["direct"])
    laptop.locator("#main").get_by_role("button", name="Chat options").click()
    laptop.get_by_role("button", name="Unpin").click()
    go(phone, "#/chats")
    expect(conv(phone, people["direct"])).not_to_have_class(re.compile(r"\bpinned\b"))  # the live unpin

    [(route, stale)] = held
    assert stale.json()["conversation"]["pinned"] is True
    with phone.expect_response(
        lambda answer: (
            answer.url.endswith(f"/api/v1/conversations/{people['direct']}")
            and answer.request.method == "GET"
        )
    ) as again:
        route.fulfill(response=stale)
    assert again.value.json()["conversation"]["pinned"] is False
    phone.wait_for_timeout(300)
    expect(conv(phone, people["direct"])).not_to_have_class(re.compile(r"\bpinned\b"))


def test_a_list_read_before_a_live_friend_request_does_not_hide_it(new_page, sign_in, make_user):
    """Bob's page loads his requests on connect (none yet) and that answer is held; Carol's request
    arrives live and the page loads them again (one). The first, older answer then comes: the
    badge keeps Carol's request."""
    make_user("bob", nickname="Bob")
    make_user("carol", nickname="Carol")
    bob = new_page(DESKTOP, service_workers="block")
    held = hold_first_answer(bob, re.compile(r"/api/v1/friend-requests\?direction=incoming"))
    sign_in(bob, "bob")
    wait_until_held(bob, held, "the page never loaded its requests")
    [(route, stale)] = held
    assert stale.json()["requests"] == []

    carol = sign_in(new_page(PHONE), "carol")
    carol.click("#tabs a[data-tab=contacts]")
    carol.click(".search-entry")
    carol.fill("input[name=q]", "bob")
    carol.click(".results .add-friend")
    carol.click(".sheet button[type=submit]")
    expect(carol.locator(".results .add-friend")).to_have_text("Requested")
    badge = bob.locator("#badge-contacts")
    expect(badge).to_have_text("1")  # the live request, loaded again

    route.fulfill(response=stale)
    bob.wait_for_timeout(500)
    expect(badge).to_have_text("1")
    expect(badge).to_be_visible()
