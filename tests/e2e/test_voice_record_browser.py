"""Recording a voice message in the browser (app/static/js/recorder.js, views/voicerecord.js) with
Chromium's fake microphone: a click starts and ✓ sends on a desktop, hold-to-talk with slide-up
to cancel on a phone, too short or cancelled recordings are never sent, a refused or missing
microphone says so, the longest allowed recording sends itself (a little early, even when the
page's timers are late), and the microphone is asked for only when the button is pressed and
released once the recording ends. A recording that ends by itself, a hidden page, a recording
and a playing voice message, and a recording whose upload failed."""

from __future__ import annotations

import re
import weakref

from playwright.sync_api import Page, expect

from app.extensions import db
from app.models import Message, Upload
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import open_chat
from tests.e2e.test_security_browser import sign_in_to_console
from tests.e2e.test_voice_play_browser import friends, send_voice

MIC = "button.voice-record"
TOAST = "#toast"
TOUCH_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Every microphone the page asked for: how many times, and whether each is still live.
WATCH_MICROPHONE = """
window.__mics = [];
window.__asked = 0;
if (navigator.mediaDevices) {
  const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    window.__asked += 1;
    const stream = await ask(constraints);
    window.__mics.push(stream);
    return stream;
  };
}
"""
THREE_SECONDS = """
const observer = new MutationObserver(() => {
  const limits = document.getElementById('limits');
  if (!limits) return;
  try {
    const data = JSON.parse(limits.textContent);
    limits.textContent = JSON.stringify({ ...data, voice_max_seconds: 3 });
    observer.disconnect();
  } catch {
    // Not all of its text is parsed yet.
  }
});
observer.observe(document, { childList: true, subtree: true, characterData: true });
document.addEventListener('DOMContentLoaded', () => observer.disconnect());
"""
# A background tab's timers: the ones of about the limit's length (here 3 s) come 5 s late.
LATE_TIMERS = """
const setTimeoutFirst = window.setTimeout;
window.setTimeout = (fn, delay, ...args) =>
  setTimeoutFirst(fn, delay >= 2000 && delay <= 3100 ? delay + 5000 : delay, ...args);
"""
# Every text the recording's clock showed, in order.
CLOCK_TEXTS = """
window.__clock = [];
new MutationObserver(() => {
  const time = document.querySelector('.voice-time');
  const text = time?.textContent;
  if (text && window.__clock[window.__clock.length - 1] !== text) window.__clock.push(text);
}).observe(document, { childList: true, subtree: true, characterData: true });
"""
# When the press began and ended, and when the overlay appeared (performance.now(), in the page).
PRESS_TIMES = """
window.__press = {};
addEventListener('pointerdown', () => { window.__press = { down: performance.now() }; }, true);
addEventListener('pointerup', () => { window.__press.up = performance.now(); }, true);
new MutationObserver(() => {
  if (document.querySelector('.voice-overlay') && window.__press.down && !window.__press.shown)
    window.__press.shown = performance.now();
}).observe(document, { childList: true, subtree: true });
"""
HIDE_PAGE = """() => {
  Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  document.dispatchEvent(new Event('visibilitychange'));
  delete document.visibilityState;
}"""
LIVE_TRACKS = (
    "() => window.__mics.flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length"
)
# A phone without a microphone: the browser answers as it does when none is plugged in.
NO_MICROPHONE = """
if (navigator.mediaDevices) {
  navigator.mediaDevices.getUserMedia = () =>
    Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
}
"""


def voice_page(new_page, sign_in, username: str, viewport: dict = DESKTOP, **options) -> Page:
    page = new_page(viewport, **options)
    page.add_init_script(WATCH_MICROPHONE)
    return sign_in(page, username)


def audio_rows(app, sender_id: int) -> tuple[list[Message], list[Upload]]:
    with app.app_context():
        messages = db.session.scalars(db.select(Message).where(Message.sender_id == sender_id)).all()
        uploads = db.session.scalars(db.select(Upload).where(Upload.owner_id == sender_id)).all()
        db.session.expunge_all()
        return list(messages), list(uploads)


def touch(page: Page, kind: str, x: float, y: float) -> None:
    """A real touch (Chromium's input pipeline: pointer events of type touch, pointer capture),
    through one DevTools session per page (a touch starts and ends in the same one)."""
    session = TOUCH_SESSIONS.get(page)
    if session is None:
        session = TOUCH_SESSIONS[page] = page.context.new_cdp_session(page)
    points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
    session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})


def mic_centre(page: Page) -> tuple[float, float]:
    box = page.locator(MIC).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_a_desktop_click_records_and_the_other_browser_plays_it(app, new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    open_chat(bob)
    mic = alice.locator(MIC)
    expect(mic).to_have_attribute("aria-label", "Record a voice message")
    # Opening the app and the chat never asks for the microphone: only the press does.
    assert alice.evaluate("window.__asked") == 0

    mic.click()
    bar = alice.locator(".voice-bar")
    expect(bar).to_be_visible()
    expect(alice.locator(".composer-input")).to_be_hidden()
    # Long enough to be seen playing (the fake microphone's sound).
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[5-9]$"), timeout=20_000)
    bar.locator(".voice-send").click()
    expect(bar).to_have_count(0)
    expect(alice.locator(".composer-input")).to_be_visible()
    # The microphone is released: the browser's recording indicator goes away.
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")

    # The sender's own bubble, then the other side's, with its length and the unplayed dot.
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(1, timeout=30_000)
    voice = bob.locator(".msg.theirs button.voice")
    expect(voice).to_have_attribute(
        "aria-label", re.compile(r"^Play voice message, ([5-9]|1[0-9]) seconds, not played yet$")
    )
    expect(bob.locator(".msg.theirs .voice-unplayed")).to_have_count(1)

    # Bob's other device shows it unplayed too, until he plays it on the first one.
    bob_phone = sign_in(new_page(PHONE), "bob")
    open_chat(bob_phone)
    expect(bob_phone.locator(".msg.theirs .voice-unplayed")).to_have_count(1)
    # (Connected: the dot is to go by the live event.)
    expect(bob_phone.locator(".chat-bar .sub")).not_to_have_text("Connecting…")
    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")
    expect(bob.locator(".msg.theirs .voice-unplayed")).to_have_count(0)
    expect(bob_phone.locator(".msg.theirs .voice-unplayed")).to_have_count(0)
    # The recording plays to its end.
    expect(voice).to_have_attribute("data-state", "idle", timeout=30_000)

    messages, uploads = audio_rows(app, alice_id)
    assert [message.type for message in messages] == ["audio"]
    [upload] = uploads
    assert upload.kind == "audio" and upload.mime in {"audio/webm", "audio/ogg", "audio/mp4"}
    # Measured by the server from the file: the five seconds or more recorded, as the bubble says.
    assert 4.5 <= upload.duration <= 20
    expect(voice).to_have_attribute("aria-label", f"Play voice message, {int(upload.duration + 0.5)} seconds")
    assert messages[0].body["upload_id"] == upload.id
    assert messages[0].body["duration"] == upload.duration


def test_the_keyboard_starts_cancels_with_esc_and_sends_with_enter(
    app, new_page, sign_in, make_user, befriend
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    bar = alice.locator(".voice-bar")

    # Space on the button starts; Esc cancels: nothing is sent, the microphone is released. (The
    # chat focuses its input once its history is in: only then is the focus the test's to move.)
    expect(alice.locator(".composer-input")).to_be_focused()
    alice.locator(MIC).focus()
    alice.keyboard.press("Space")
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    alice.keyboard.press("Escape")
    expect(bar).to_have_count(0)
    expect(alice.locator(MIC)).to_be_focused()
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")

    # Enter starts again, and Enter (the focus is on ✓) sends.
    alice.keyboard.press("Enter")
    expect(bar.locator(".voice-send")).to_be_focused()
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    # Enter in a field elsewhere on the page is that field's: the recording goes on.
    alice.evaluate(
        "() => { const field = document.createElement('input'); field.id = 'elsewhere';"
        " document.body.append(field); field.focus(); }"
    )
    alice.keyboard.press("Enter")
    expect(bar).to_have_count(1)
    alice.evaluate("() => document.getElementById('elsewhere').remove()")
    bar.locator(".voice-send").focus()
    alice.keyboard.press("Enter")
    expect(bar).to_have_count(0)
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(1, timeout=30_000)
    messages, uploads = audio_rows(app, alice_id)
    # Only the second recording went: the cancelled one was never uploaded.
    assert [message.type for message in messages] == ["audio"]
    assert [upload.kind for upload in uploads] == ["audio"]
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 2")


def test_hold_to_talk_on_a_phone_slide_up_cancels_and_too_short_is_not_sent(
    app, new_page, sign_in, make_user, befriend
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = new_page(PHONE, permissions=["microphone"], has_touch=True, is_mobile=True)
    alice.add_init_script(WATCH_MICROPHONE)
    alice.add_init_script(PRESS_TIMES)
    sign_in(alice, "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    open_chat(bob)
    x, y = mic_centre(alice)
    overlay = alice.locator(".voice-overlay")

    # Held: the overlay with the time and the hint; slid up by more than 60 px, released: gone.
    touch(alice, "touchStart", x, y)
    expect(overlay).to_be_visible()
    expect(overlay.locator(".voice-hint")).to_have_text("Slide up to cancel")
    expect(overlay.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    touch(alice, "touchMove", x, y - 40)
    expect(overlay.locator(".voice-hint")).to_have_text("Slide up to cancel")
    touch(alice, "touchMove", x, y - 100)
    expect(overlay.locator(".voice-hint")).to_have_text("Release to cancel")
    touch(alice, "touchEnd", x, y - 100)
    expect(overlay).to_have_count(0)
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")

    # Held and let go as soon as it records: "Too short", nothing sent. The press lasted under a
    # second (measured in the page from the press to the release, which holds the recording);
    # on a machine so slow that it did not, the recording may go, and then it was a second long.
    touch(alice, "touchStart", x, y)
    expect(overlay).to_be_visible()
    touch(alice, "touchEnd", x, y)
    expect(overlay).to_have_count(0)
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 2")
    press = alice.evaluate("window.__press")
    short = True
    if press["up"] - press["down"] < 990:
        expect(alice.locator(TOAST)).to_have_text("Too short")
    elif press["up"] - press["shown"] >= 1000:
        short = False
    else:
        alice.wait_for_function(
            "() => document.querySelector('#toast')?.textContent === 'Too short'"
            " || !!document.querySelector('.msg.mine button.voice')"
        )
        short = alice.locator(".msg.mine button.voice").count() == 0

    # Held past a second, slid up (cancel armed), back down again (un-armed) and released: sent.
    touch(alice, "touchStart", x, y)
    expect(overlay.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    touch(alice, "touchMove", x, y - 100)
    expect(overlay.locator(".voice-hint")).to_have_text("Release to cancel")
    touch(alice, "touchMove", x, y - 30)
    expect(overlay.locator(".voice-hint")).to_have_text("Slide up to cancel")
    touch(alice, "touchEnd", x, y - 30)
    expect(overlay).to_have_count(0)
    sent = 1 if short else 2
    expect(bob.locator(".msg.theirs button.voice")).to_have_count(sent, timeout=30_000)
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 3")
    # The cancelled and the too short recordings were never uploaded nor sent.
    messages, uploads = audio_rows(app, alice_id)
    assert [message.type for message in messages] == ["audio"] * sent
    assert len(uploads) == sent and all(upload.duration >= 0.9 for upload in uploads)
    assert 1.0 <= uploads[-1].duration <= 20
    # The press never opened the desktop's bar.
    expect(alice.locator(".voice-bar")).to_have_count(0)


def test_a_refused_or_missing_microphone_says_so_and_sends_nothing(
    app, new_page, sign_in, make_user, befriend, browser_problems
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    # No permission granted: headless Chromium refuses the microphone.
    alice = voice_page(new_page, sign_in, "alice")
    open_chat(alice)
    alice.locator(MIC).click()
    expect(alice.locator(TOAST)).to_have_text(
        "Parley needs your microphone to record. Allow it in the browser's site settings."
    )
    expect(alice.locator(".voice-bar")).to_have_count(0)
    expect(alice.locator(".composer-input")).to_be_visible()
    assert alice.evaluate("window.__asked") == 1

    # A phone with no microphone at all.
    phone = new_page(PHONE, permissions=["microphone"], has_touch=True, is_mobile=True)
    phone.add_init_script(NO_MICROPHONE)
    sign_in(phone, "alice")
    open_chat(phone)
    x, y = mic_centre(phone)
    touch(phone, "touchStart", x, y)
    expect(phone.locator(TOAST)).to_have_text("No microphone was found.")
    touch(phone, "touchEnd", x, y)
    expect(phone.locator(".voice-overlay")).to_have_count(0)

    messages, uploads = audio_rows(app, alice_id)
    assert messages == [] and uploads == []


def test_the_longest_recording_counts_down_and_sends_itself(app, new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = new_page(DESKTOP, permissions=["microphone"])
    alice.add_init_script(WATCH_MICROPHONE)

    # The page is told a 3-second limit (the server's VOICE_MAX_SECONDS reaches the client in the
    # page's limits, read by store.js when the modules run, after this rewrite). Its timers of
    # about that length come late, as in a background tab: the clock's ticks stop it all the same.
    alice.add_init_script(THREE_SECONDS)
    alice.add_init_script(LATE_TIMERS)
    alice.add_init_script(CLOCK_TEXTS)
    sign_in(alice, "alice")
    open_chat(alice)
    alice.locator(MIC).click()
    bar = alice.locator(".voice-bar")
    expect(bar).to_be_visible()
    # At the limit (a little before it) it stops and sends itself.
    expect(bar).to_have_count(0, timeout=15_000)
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(1, timeout=30_000)
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0")
    # The last ten seconds were counted down (here all three), never a clock.
    clock = alice.evaluate("window.__clock")
    assert clock and all(re.fullmatch(r"[0-3]″ left", text) for text in clock), clock
    assert clock == sorted(clock, reverse=True)
    messages, uploads = audio_rows(app, alice_id)
    assert [message.type for message in messages] == ["audio"]
    # Never past the limit the server allows (3 s here + 0.5 s).
    assert 2.5 <= uploads[0].duration <= 3.2


def test_at_the_limit_a_finger_on_release_to_cancel_cancels(app, new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = new_page(PHONE, permissions=["microphone"], has_touch=True, is_mobile=True)
    alice.add_init_script(WATCH_MICROPHONE)
    alice.add_init_script(THREE_SECONDS)
    sign_in(alice, "alice")
    open_chat(alice)
    x, y = mic_centre(alice)
    overlay = alice.locator(".voice-overlay")
    touch(alice, "touchStart", x, y)
    expect(overlay).to_be_visible()
    touch(alice, "touchMove", x, y - 100)
    expect(overlay.locator(".voice-hint")).to_have_text("Release to cancel")
    # The limit comes while the finger is there: dropped, not sent.
    expect(overlay).to_have_count(0, timeout=15_000)
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")
    touch(alice, "touchEnd", x, y - 100)
    expect(alice.locator(".upload-item")).to_have_count(0)
    assert audio_rows(app, alice_id) == ([], [])


def test_a_mute_stops_the_recording_and_turns_the_microphone_off(app, new_page, sign_in, make_user, befriend):
    make_user("root", is_admin=True)
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    mic = alice.locator(MIC)
    mic.click()
    expect(alice.locator(".voice-bar .voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)

    # An administrator mutes Alice while she records: the recording is dropped, nothing is sent.
    console = new_page(DESKTOP)
    sign_in_to_console(console, f"/admin/user/details/?id={alice_id}")
    console.fill("form[action$='/mute'] input[name=reason]", "cool down")
    console.get_by_role("button", name="Mute", exact=True).click()
    expect(console.get_by_role("button", name="Unmute", exact=True)).to_be_visible()
    expect(alice.locator(".voice-bar")).to_have_count(0)
    expect(mic).to_be_disabled()
    expect(alice.locator(".composer-input")).to_be_disabled()
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")
    assert audio_rows(app, alice_id) == ([], [])


def test_a_hidden_page_cancels_the_recording(app, new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    bar = alice.locator(".voice-bar")
    alice.locator(MIC).click()
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    # Another tab or app comes to the front: cancelled, as in WeChat, and said so.
    alice.evaluate(HIDE_PAGE)
    expect(bar).to_have_count(0)
    expect(alice.locator(TOAST)).to_have_text("Recording stopped")
    alice.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")

    # Held on a phone: the same.
    phone = voice_page(
        new_page, sign_in, "alice", PHONE, permissions=["microphone"], has_touch=True, is_mobile=True
    )
    open_chat(phone)
    x, y = mic_centre(phone)
    touch(phone, "touchStart", x, y)
    expect(phone.locator(".voice-overlay .voice-time")).to_have_text(
        re.compile(r"^0:0[1-9]$"), timeout=15_000
    )
    phone.evaluate(HIDE_PAGE)
    expect(phone.locator(".voice-overlay")).to_have_count(0)
    expect(phone.locator(TOAST)).to_have_text("Recording stopped")
    touch(phone, "touchEnd", x, y)
    phone.wait_for_function(f"() => ({LIVE_TRACKS})() === 0 && window.__mics.length === 1")
    assert audio_rows(app, alice_id) == ([], [])


def test_a_recording_that_ends_by_itself_stops_and_is_sent(app, new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    bar = alice.locator(".voice-bar")
    alice.locator(MIC).click()
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[2-9]$"), timeout=15_000)
    # The microphone goes away (unplugged): its track ends.
    alice.evaluate(
        "() => window.__mics[0].getTracks().forEach((track) => { track.stop();"
        " track.dispatchEvent(new Event('ended')); })"
    )
    expect(bar).to_have_count(0)
    expect(alice.locator(TOAST)).to_have_text("Recording stopped")
    # What it recorded until then goes.
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(1, timeout=30_000)
    messages, uploads = audio_rows(app, alice_id)
    assert [message.type for message in messages] == ["audio"]
    assert 1.5 <= uploads[0].duration <= 15


def test_recording_stops_the_voice_message_playing_and_none_plays_meanwhile(
    app, new_page, sign_in, make_user, befriend
):
    alice_id, bob_id, conversation_id = friends(make_user, befriend, app)
    seq = send_voice(app, bob_id, conversation_id, 30)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    voice = alice.locator(f'.msg[data-seq="{seq}"] button.voice')
    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")

    alice.locator(MIC).click()
    bar = alice.locator(".voice-bar")
    expect(bar).to_be_visible()
    expect(voice).to_have_attribute("data-state", "idle")
    # Play while recording: refused, said so.
    voice.click()
    expect(alice.locator(TOAST)).to_have_text("Voice messages do not play while you record.")
    expect(voice).to_have_attribute("data-state", "idle")
    expect(bar).to_be_visible()
    alice.keyboard.press("Escape")
    expect(bar).to_have_count(0)
    # Once it ended, it plays again.
    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")
    assert audio_rows(app, alice_id) == ([], [])


def test_a_recording_whose_upload_failed_is_kept_and_sent_again(
    app, new_page, sign_in, make_user, befriend, browser_problems
):
    browser_problems.allow_offline()
    browser_problems.allow_response(r"/api/v1/uploads", 503)
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice = voice_page(new_page, sign_in, "alice", permissions=["microphone"])
    open_chat(alice)
    bar = alice.locator(".voice-bar")
    kept = alice.locator(".upload-item.upload-failed")

    # Offline when it is sent: kept, and sent by itself once the page is back.
    alice.locator(MIC).click()
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    alice.context.set_offline(True)
    bar.locator(".voice-send").click()
    expect(kept).to_have_count(1)
    expect(kept.locator(".upload-name")).to_have_text("Voice message not sent")
    assert audio_rows(app, alice_id) == ([], [])
    alice.context.set_offline(False)
    expect(kept).to_have_count(0)
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(1, timeout=30_000)

    # The server failing: kept with "Send again", which sends it.
    alice.route(
        "**/api/v1/uploads",
        lambda route: route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "Down"}}),
    )
    alice.locator(MIC).click()
    expect(bar.locator(".voice-time")).to_have_text(re.compile(r"^0:0[1-9]$"), timeout=15_000)
    bar.locator(".voice-send").click()
    expect(kept).to_have_count(1)
    assert len(audio_rows(app, alice_id)[1]) == 1
    alice.unroute("**/api/v1/uploads")
    kept.get_by_role("button", name="Send again").click()
    expect(kept).to_have_count(0)
    expect(alice.locator(".msg.mine:not([data-seq='']) button.voice")).to_have_count(2, timeout=30_000)
    messages, uploads = audio_rows(app, alice_id)
    assert [message.type for message in messages] == ["audio", "audio"] and len(uploads) == 2
