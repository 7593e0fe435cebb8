"""Search and in-page notifications in the browser: the chat list's search box (messages in
Chinese and English with highlighted matches, contacts by remark, groups), opening a hit far back
in a chat, "Search in chat"; system notifications (hooked in the page) for messages that arrive
while another chat is open or the tab is hidden, private previews, muted chats and @mentions, the
chime, the unread count in the title and favicon, and the permission banner."""

from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.chat.conversations import set_member_flags
from app.extensions import db
from app.groups.services import create_group
from app.models import User
from app.social.services import set_remark
from tests.conftest import PASSWORD
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id, open_chat
from tests.e2e.test_composer_browser import read_up_to, row, seed
from tests.socket_client import Device

FLASH = re.compile(r"\bflash\b")

# Replaces the page's Notification with one that records what was shown (and answers the
# permission the test chose), and counts the chimes made with WebAudio.
HOOK = """
(() => {
  const permission = %r;
  window.__notes = [];
  window.__asked = 0;
  window.__chimes = 0;
  class RecordedNotification {
    constructor(title, options = {}) {
      Object.assign(this, { title, body: options.body, tag: options.tag, icon: options.icon });
      window.__notes.push(this);
    }
    close() { this.closed = true; }
    static get permission() { return permission; }
    static requestPermission() { window.__asked += 1; return Promise.resolve("denied"); }
  }
  window.Notification = RecordedNotification;
  const Context = window.AudioContext;
  if (Context) {
    const make = Context.prototype.createOscillator;
    Context.prototype.createOscillator = function () { window.__chimes += 1; return make.call(this); };
  }
})();
"""


def hooked_page(new_page, viewport=DESKTOP, permission: str = "granted", **options) -> Page:
    if permission == "granted":
        options["permissions"] = ["notifications"]
    page = new_page(viewport, **options)
    page.add_init_script(HOOK % permission)
    return page


def notes(page: Page) -> list[dict]:
    return page.evaluate("window.__notes.map(n => ({title: n.title, body: n.body, tag: n.tag}))")


def chimes(page: Page) -> int:
    return page.evaluate("window.__chimes")


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def search(page: Page, text: str) -> None:
    page.fill(".search-top input[type=search]", text)


def hit_texts(page: Page) -> list[str]:
    return page.locator(".search-results .hits .hit-snippet").all_inner_texts()


def test_search_finds_chinese_and_english_highlights_as_text_and_opens_an_old_hit(
    new_page, sign_in, make_user, befriend, app, screenshot
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    carol_id = make_user("carol", nickname="Carol")
    befriend(alice_id, bob_id)
    befriend(alice_id, carol_id)
    conversation_id = direct_conversation_id(app, bob_id)
    old = seed(app, bob_id, conversation_id, ["明天上午的会议纪要请大家查收"])[0]
    seed(app, bob_id, conversation_id, [f"filler {n}" for n in range(80)])
    english, markup = seed(
        app,
        bob_id,
        conversation_id,
        ["The Project MEETING moved to Friday", "see <b>x</b> before the meeting"],
    )
    read_up_to(app, alice_id, conversation_id, markup)
    with app.app_context():
        set_remark(alice_id, bob_id, "老板Boss")
        group = create_group(alice_id, "杭州同学会", [bob_id, carol_id]).conversation_id
    seed(app, carol_id, group, ["周末去杭州西湖"])
    read_up_to(app, alice_id, group, 10)

    alice = sign_in(new_page(DESKTOP), "alice")
    expect(alice.locator(".conv")).to_have_count(3)

    # Chinese, no spaces: the hit names the chat and its sender's remark, the match is a <mark>.
    search(alice, "会议纪要")
    hits = alice.locator(".search-results .hits .hit")
    expect(hits).to_have_count(1)
    expect(alice.locator(".conv-list")).to_be_hidden()
    expect(hits.locator(".hit-name")).to_have_text("老板Boss")
    expect(hits.locator("mark")).to_have_text(["会议纪要"])
    expect(hits.locator(".hit-snippet")).to_have_text("明天上午的会议纪要请大家查收")
    screenshot(alice, "desktop-search-chinese")

    # The hit is 80 messages before the page a chat opens with: it opens around it, flashed.
    hits.first.locator(".hit-link").click()
    expect(alice).to_have_url(re.compile(rf"#/chat/{conversation_id}/{old}$"))
    expect(row(alice, old)).to_be_in_viewport()
    expect(row(alice, old)).to_have_class(FLASH)
    expect(row(alice, markup)).to_have_count(0)
    # The results stay beside the chat (two panes).
    expect(hits).to_have_count(1)

    # English: case-insensitive; a hit holding markup shows it as text, never as elements.
    search(alice, "meeting")
    expect(hits).to_have_count(2)
    expect(hits.locator("mark")).to_have_text(["meeting", "MEETING"])
    assert hit_texts(alice) == ["see <b>x</b> before the meeting", "The Project MEETING moved to Friday"]
    expect(alice.locator(".search-results .hit-snippet b")).to_have_count(0)
    hits.nth(1).locator(".hit-link").click()
    expect(row(alice, english)).to_be_in_viewport()

    # A friend by the remark only I gave him; a group by its name (and its message).
    search(alice, "老板")
    contact = alice.locator(".search-results .contact-hit")
    expect(contact).to_have_count(1)
    expect(contact.locator(".person-name")).to_have_text("老板Boss")
    expect(hits).to_have_count(0)
    expect(alice.locator(".search-results .search-status")).to_have_text("Nothing found.")
    search(alice, "杭州")
    expect(alice.locator(".search-results .group-hit .person-name")).to_have_text("杭州同学会")
    expect(hits).to_have_count(1)
    expect(hits.locator(".hit-name")).to_have_text("杭州同学会")
    expect(hits.locator(".hit-sender")).to_have_text("Carol: ")
    screenshot(alice, "desktop-search-contacts")

    # Clicking the contact opens the chat with him; clearing the box brings the list back.
    search(alice, "老板")
    contact.click()
    expect(alice).to_have_url(re.compile(rf"#/chat/{conversation_id}$"))
    expect(alice.locator(".composer-input")).to_be_visible()
    search(alice, "")
    expect(alice.locator(".conv-list")).to_be_visible()
    expect(alice.locator(".search-results")).to_be_hidden()


def test_search_in_chat_finds_only_that_conversation_on_a_phone(new_page, sign_in, make_user, befriend, app):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    direct = direct_conversation_id(app, bob_id)
    with app.app_context():
        team = create_group(alice_id, "Team", [bob_id]).conversation_id
    seed(app, bob_id, direct, ["apple pie tonight", *[f"apple crumble {n}" for n in range(24)]])
    tart = seed(app, bob_id, team, ["apple tart for the team", *[f"later {n}" for n in range(60)]])[0]
    read_up_to(app, alice_id, direct, 10)
    read_up_to(app, alice_id, team, 100)

    alice = sign_in(new_page(PHONE), "alice")
    # 26 hits: a page of 20, the rest as the results scroll to their end.
    search(alice, "apple")
    all_hits = alice.locator(".search-results .hits .hit")
    expect(all_hits).to_have_count(20)
    alice.locator("#panel").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(all_hits).to_have_count(26)
    expect(all_hits.locator(".hit-name")).to_have_text(["Team", *["Bob"] * 25])
    search(alice, "")

    open_chat(alice, f'.conv[data-id="{team}"] .conv-link')
    alice.click(".chat-bar [aria-label='Chat options']")
    alice.click(".sheet .menu-item >> text=Search in chat")
    expect(alice).to_have_url(re.compile(rf"#/chat/{team}/search$"))
    alice.fill(".chat-search input[type=search]", "APPLE")
    hits = alice.locator(".chat-search .hits .hit")
    expect(hits).to_have_count(1)
    expect(hits.locator(".hit-name")).to_have_text("Bob")
    expect(hits.locator("mark")).to_have_text(["apple"])
    hits.first.locator(".hit-link").click()
    expect(row(alice, tart)).to_be_in_viewport()
    expect(row(alice, tart)).to_have_class(FLASH)


def test_notifications_for_other_chats_and_hidden_tabs_privacy_mute_mentions_and_the_title(
    new_page, sign_in, make_user, befriend, app, e2e_server
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    direct = direct_conversation_id(app, bob_id)
    with app.app_context():
        team = create_group(alice_id, "Team", [bob_id]).conversation_id
        quiet = create_group(alice_id, "Quiet", [bob_id]).conversation_id
        set_member_flags(alice_id, quiet, {"muted": True})

    alice = sign_in(hooked_page(new_page), "alice")
    # Permission is already granted here: no banner.
    expect(alice.locator(".notify-banner")).to_be_hidden()
    open_chat(alice, f'.conv[data-id="{team}"] .conv-link')
    expect(alice).to_have_title("Parley")
    icon = alice.locator('link[rel~="icon"]').first
    plain_icon = icon.get_attribute("href")
    assert not plain_icon.startswith("data:")

    with Device(e2e_server.url, "bob", PASSWORD) as bob:
        # Another chat than the open one: a notification with the sender and the text, a chime,
        # "(1)" in the title and a badge drawn on the favicon.
        bob.send(direct, "hello alice")
        wait_for(lambda: len(notes(alice)) == 1, "the first notification")
        assert notes(alice) == [{"title": "Bob", "body": "hello alice", "tag": f"conversation-{direct}"}]
        assert chimes(alice) == 1
        expect(alice).to_have_title("(1) Parley")
        expect(icon).to_have_attribute("href", re.compile(r"^data:image/png"))

        # The open chat, visible: nothing. The same chat while the tab is hidden: a notification
        # titled with the group's name, the sender before the text.
        bob.send(team, "in the open chat")
        expect(alice.locator(".msg.theirs .bubble.text").last).to_have_text("in the open chat")
        alice.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
        bob.send(team, "while hidden")
        wait_for(lambda: len(notes(alice)) == 2, "the hidden tab's notification")
        assert notes(alice)[1] == {
            "title": "Team",
            "body": "Bob: while hidden",
            "tag": f"conversation-{team}",
        }
        alice.evaluate("delete document.hidden")
        assert len(notes(alice)) == 2

        # Clicking the notification opens that chat; reading it clears the title and the icon.
        alice.evaluate("window.__notes[0].onclick()")
        expect(alice).to_have_url(re.compile(rf"#/chat/{direct}$"))
        expect(alice.locator(".msg.theirs .bubble.text")).to_have_text(["hello alice"])
        expect(alice).to_have_title("Parley")
        expect(icon).to_have_attribute("href", plain_icon)

        # A muted chat is silent, unless the message mentions me.
        bob.send(quiet, "nobody needs to hear this")
        expect(alice.locator(f'.conv[data-id="{quiet}"] .conv-preview')).to_have_text(
            "Bob: nobody needs to hear this"
        )
        assert len(notes(alice)) == 2 and chimes(alice) == 2
        ack = bob.call(
            "message:send",
            {
                "conversation_id": quiet,
                "client_msg_id": uuid.uuid4().hex,
                "body": {"type": "txt", "msg": "@Alice this one is for you"},
                "mentions": [alice_id],
            },
        )
        assert ack["ok"], ack
        wait_for(lambda: len(notes(alice)) == 3, "the mention's notification")
        assert notes(alice)[2]["title"] == "Quiet"
        assert notes(alice)[2]["body"] == "Bob: @Alice this one is for you"
        assert chimes(alice) == 3

        # Me → Notifications: previews off (the account's setting, saved on the server) and the
        # sound off (this device): the text stays private and no chime plays.
        alice.click("#tabs a[data-tab=me]")
        alice.click(".entry[href='#/notifications']")
        settings = alice.locator(".notify-settings")
        expect(settings.locator("input[name=notifications]")).to_be_checked()
        previews = settings.locator("input[name=previews]")
        expect(previews).to_be_checked()
        previews.uncheck()
        wait_for(lambda: previews_setting(app, alice_id) is False, "previews off on the server")
        settings.locator("input[name=sound]").uncheck()
        secret = bob.send(direct, "the secret plan")["message"]
        wait_for(lambda: len(notes(alice)) == 4, "the private notification")
        assert notes(alice)[3] == {"title": "Parley", "body": "New message", "tag": f"conversation-{direct}"}
        # Recalled: its notification goes away.
        assert bob.call("message:recall", {"conversation_id": direct, "seq": secret["seq"]})["ok"]
        wait_for(lambda: alice.evaluate("window.__notes[3].closed === true"), "the recalled one closed")
        assert chimes(alice) == 3

        # Notifications off on this device: none at all.
        settings.locator("input[name=notifications]").uncheck()
        bob.send(direct, "anyone there?")
        expect(alice).to_have_title(re.compile(r"^\(\d+\) Parley$"))
        time.sleep(0.3)
        assert len(notes(alice)) == 4


def previews_setting(app, user_id: int) -> bool:
    with app.app_context():
        return db.session.scalar(select(User.notification_previews).where(User.id == user_id))


def test_the_permission_banner_shows_after_sign_in_and_not_now_is_remembered(new_page, sign_in, make_user):
    make_user("alice", nickname="Alice")
    page = hooked_page(new_page, PHONE, permission="default")
    page.goto("/login")
    expect(page.locator("input[name=username]")).to_be_visible()
    expect(page.locator(".notify-banner")).to_have_count(0)
    sign_in(page, "alice")

    banner = page.locator(".notify-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Turn on notifications?")
    # Nothing was asked of the browser on load.
    assert page.evaluate("window.__asked") == 0
    banner.locator(".notify-later").click()
    expect(banner).to_be_hidden()
    page.reload()
    expect(page.locator(".conv-list")).to_be_attached()
    expect(page.locator(".notify-banner")).to_be_hidden()
    assert page.evaluate("window.__asked") == 0

    # Asked again on another device (a fresh context): Enable asks the browser, once.
    other = hooked_page(new_page, PHONE, permission="default")
    sign_in(other, "alice")
    other.locator(".notify-banner .notify-enable").click()
    expect(other.locator(".notify-banner")).to_be_hidden()
    assert other.evaluate("window.__asked") == 1
