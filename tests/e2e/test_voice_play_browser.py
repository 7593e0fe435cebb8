"""Playing voice messages in the browser: the bubble (its length, the unplayed dot), one message
at a time, the next unplayed one after it by itself, the dot cleared on every device of the
listener (live and after a fresh load), told again when the server failed and after a reload,
pause and resume, playback stopped when its chat closes or the message is recalled, a voice
message and a video never sound together, a file that does not play; the list's "[Voice] 0:05" /
"[语音] 2″"; and a received video's poster. (What is checked playing lasts 5 s or more: a shorter
one may end before a loaded machine looks.)"""

from __future__ import annotations

import io
import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from app.chat.actions.forward import forward
from app.chat.send import send_message
from app.extensions import db
from app.media.services import create_upload
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id, open_chat
from tests.media_samples import audio, video

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
VOICE = ".msg.theirs button.voice"

# The page's media elements (the voice player's <audio> is not in the document): every element
# that was asked to play, so a test can tell whether anything still plays, and how many times one
# played to its end (a stop is not an end); and how many /sync answers it had.
WATCH_MEDIA = """
window.__media = new Set();
window.__ended = 0;
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  if (!window.__media.has(this)) this.addEventListener("ended", () => { window.__ended += 1; });
  window.__media.add(this);
  return play.call(this);
};
window.__syncs = 0;
const fetchFirst = window.fetch;
window.fetch = async (...args) => {
  const response = await fetchFirst(...args);
  if (String(args[0]).startsWith("/api/v1/sync")) window.__syncs += 1;
  return response;
};
"""
SOUNDING = "() => [...window.__media].filter((el) => !el.paused && el.getAttribute('src')).length"
# The voice player (the one <audio> asked to play).
PLAYER = "[...window.__media].find((el) => el instanceof HTMLAudioElement)"


def voice_upload(app, user_id: int, seconds: float) -> str:
    with app.app_context():
        row = create_upload(user_id, io.BytesIO(audio(seconds, "webm")), "voice.webm", "voice")
        return row.id


def send(app, sender_id: int, conversation_id: int, body: dict) -> int:
    with app.app_context():
        message, _ = send_message(sender_id, conversation_id, uuid.uuid4().hex, body)
        db.session.commit()
        return message["seq"]


def send_voice(app, sender_id: int, conversation_id: int, seconds: float) -> int:
    return send(
        app, sender_id, conversation_id, {"type": "audio", "upload_id": voice_upload(app, sender_id, seconds)}
    )


def friends(make_user, befriend, app) -> tuple[int, int, int]:
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    return alice_id, bob_id, direct_conversation_id(app, alice_id)


def bubble(page: Page, seq: int):
    return page.locator(f'.msg[data-seq="{seq}"] button.voice')


def dot(page: Page, seq: int):
    return page.locator(f'.msg[data-seq="{seq}"] .voice-unplayed')


def device(new_page, sign_in, viewport: dict, **options) -> Page:
    page = new_page(viewport, **options)
    page.add_init_script(WATCH_MEDIA)
    return sign_in(page, "alice")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_voice_message_plays_and_its_dot_clears_on_every_device(
    new_page, sign_in, make_user, befriend, app, viewport
):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    seq = send_voice(app, bob_id, conversation_id, 5)
    phone = device(new_page, sign_in, viewport)
    laptop = device(new_page, sign_in, DESKTOP)
    expect(phone.locator(".conv-preview")).to_have_text("[Voice] 0:05")
    open_chat(phone)
    open_chat(laptop)
    # The laptop has caught up once (its socket is connected): what it learns next comes live.
    laptop.wait_for_function("() => window.__syncs > 0")

    voice = bubble(phone, seq)
    expect(voice).to_have_text("5″")
    expect(voice).to_have_attribute("aria-label", "Play voice message, 5 seconds, not played yet")
    expect(voice).to_have_attribute("data-state", "idle")
    expect(dot(phone, seq)).to_have_count(1)
    expect(dot(laptop, seq)).to_have_count(1)
    # Its width grows with its length (80 px + 4 px a second).
    assert voice.bounding_box()["width"] == pytest.approx(100, abs=1)

    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")
    expect(voice).to_have_attribute("aria-label", "Pause voice message")
    expect(dot(phone, seq)).to_have_count(0)
    # The other device of Alice's, open all along, loses the dot without a reload.
    expect(dot(laptop, seq)).to_have_count(0)
    expect(bubble(laptop, seq)).to_have_attribute("aria-label", "Play voice message, 5 seconds")
    expect(bubble(laptop, seq)).to_have_attribute("data-state", "idle")
    # Five seconds later it ends by itself.
    expect(voice).to_have_attribute("data-state", "idle", timeout=20_000)
    expect(voice).to_have_attribute("aria-label", "Play voice message, 5 seconds")
    assert phone.evaluate(SOUNDING) == 0
    assert phone.evaluate("window.__ended") == 1

    # A device opened afterwards knows it from the history.
    fresh = device(new_page, sign_in, PHONE)
    open_chat(fresh)
    expect(bubble(fresh, seq)).to_have_text("5″")
    expect(dot(fresh, seq)).to_have_count(0)
    # The sender's own bubble never has a dot.
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(bob)
    expect(bob.locator(f'.msg.mine[data-seq="{seq}"] button.voice')).to_have_text("5″")
    expect(bob.locator(".voice-unplayed")).to_have_count(0)


def test_the_next_unplayed_voice_message_plays_by_itself_and_one_plays_at_a_time(
    new_page, sign_in, make_user, befriend, app
):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    first = send_voice(app, bob_id, conversation_id, 5)
    send(app, bob_id, conversation_id, {"type": "txt", "msg": "and another thing"})
    second = send_voice(app, bob_id, conversation_id, 20)
    third = send_voice(app, bob_id, conversation_id, 20)
    alice = device(new_page, sign_in, DESKTOP)
    open_chat(alice)
    expect(alice.locator(VOICE)).to_have_count(3)
    expect(alice.locator(".voice-unplayed")).to_have_count(3)

    bubble(alice, first).click()
    expect(bubble(alice, first)).to_have_attribute("data-state", "playing")
    # When the first ends, the next unplayed one below it (past the text) starts by itself.
    expect(bubble(alice, second)).to_have_attribute("data-state", "playing", timeout=20_000)
    expect(bubble(alice, first)).to_have_attribute("data-state", "idle")
    expect(dot(alice, second)).to_have_count(0)
    expect(dot(alice, third)).to_have_count(1)

    # Starting another stops the one playing.
    bubble(alice, third).click()
    expect(bubble(alice, third)).to_have_attribute("data-state", "playing")
    expect(bubble(alice, second)).to_have_attribute("data-state", "idle")
    expect(alice.locator('button.voice[data-state="playing"]')).to_have_count(1)
    assert alice.evaluate(SOUNDING) == 1

    # A second click pauses it; nothing plays. Another resumes where it was (not from the start).
    alice.wait_for_function(f"() => {PLAYER}.currentTime > 1.5")
    bubble(alice, third).click()
    expect(bubble(alice, third)).to_have_attribute("data-state", "idle")
    assert alice.evaluate(SOUNDING) == 0
    paused_at = alice.evaluate(f"() => {PLAYER}.currentTime")
    assert paused_at > 1.5
    # (A rewound player would be back near 0 right after the click.)
    bubble(alice, third).click()
    assert alice.evaluate(f"() => {PLAYER}.currentTime") >= paused_at
    expect(bubble(alice, third)).to_have_attribute("data-state", "playing")
    alice.wait_for_function(f"() => {PLAYER}.currentTime > {paused_at}")
    # Its progress is of the file's real length (data-duration), not of the rounded seconds.
    assert float(bubble(alice, third).get_attribute("data-duration")) == pytest.approx(20, abs=0.2)
    bubble(alice, third).click()
    expect(bubble(alice, third)).to_have_attribute("data-state", "idle")
    assert alice.evaluate(SOUNDING) == 0
    assert alice.evaluate("window.__ended") == 1  # only the first played to its end


def test_playback_stops_when_the_chat_closes_or_the_message_is_recalled(
    new_page, sign_in, make_user, befriend, app, browser_problems
):
    # The player reads its file in ranges while it plays: a range asked for after the recall and
    # before the page heard of it is answered 403 (the file of a recalled message is no longer
    # served). The player is stopped and emptied when the row becomes the recalled line.
    browser_problems.allow_response(r"/media/[0-9a-f]+", 403)
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    # Long enough not to end by itself while the test runs: what stops it is the test's doing.
    seq = send_voice(app, bob_id, conversation_id, 30)
    alice = device(new_page, sign_in, PHONE)
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)

    bubble(alice, seq).click()
    expect(bubble(alice, seq)).to_have_attribute("data-state", "playing")
    alice.locator(".chat-bar .back").click()
    expect(alice.locator(".conv-link")).to_be_visible()
    alice.wait_for_function(f"() => ({SOUNDING})() === 0")
    assert alice.evaluate("window.__ended") == 0

    open_chat(alice)
    expect(bubble(alice, seq)).to_have_attribute("data-state", "idle")
    bubble(alice, seq).click()
    expect(bubble(alice, seq)).to_have_attribute("data-state", "playing")
    # Bob takes it back while Alice listens: the row becomes the recalled line, the sound stops.
    recalled = bob.evaluate(
        """async ([cid, seq]) => (await fetch(`/api/v1/conversations/${cid}/messages/${seq}/recall`,
             { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status""",
        [conversation_id, seq],
    )
    assert recalled == 200
    expect(alice.locator(f'.sys.recalled[data-seq="{seq}"]')).to_have_text("Bob recalled a message")
    expect(alice.locator("button.voice")).to_have_count(0)
    alice.wait_for_function(f"() => ({SOUNDING})() === 0")
    assert alice.evaluate("window.__ended") == 0


def test_a_voice_message_that_cannot_be_played_says_so(
    new_page, sign_in, make_user, befriend, app, browser_problems
):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    seq = send_voice(app, bob_id, conversation_id, 2)
    browser_problems.allow_response(r"/media/[0-9a-f]+", 404)
    alice = device(new_page, sign_in, DESKTOP)
    open_chat(alice)
    # Its file is gone (as after a recall the page has not heard of yet).
    alice.route(re.compile(r".*/media/[0-9a-f]+$"), lambda route: route.fulfill(status=404, body="gone"))

    bubble(alice, seq).click()
    expect(bubble(alice, seq)).to_have_class(re.compile(r"\bvoice-failed\b"))
    expect(bubble(alice, seq)).to_have_attribute("data-state", "idle")
    expect(bubble(alice, seq)).to_have_attribute("aria-label", "This voice message cannot be played")
    assert alice.evaluate(SOUNDING) == 0


def test_a_voice_message_in_chinese(new_page, sign_in, make_user, befriend, app):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    seq = send_voice(app, bob_id, conversation_id, 2)
    alice = sign_in(new_page(PHONE, locale="zh-CN"), "alice")
    expect(alice.locator(".conv-preview")).to_have_text("[语音] 2″")
    open_chat(alice)
    expect(bubble(alice, seq)).to_have_text("2″")
    expect(bubble(alice, seq)).to_have_attribute("aria-label", "播放语音消息，2 秒，未播放")
    expect(dot(alice, seq)).to_have_attribute("aria-label", "未播放")


def test_a_received_video_shows_its_poster_before_it_plays(new_page, sign_in, make_user, befriend, app):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    with app.app_context():
        clip = create_upload(bob_id, io.BytesIO(video(1, "webm", size=(160, 120))), "clip.webm", "message").id
    seq = send(app, bob_id, conversation_id, {"type": "video", "upload_id": clip})
    alice = sign_in(new_page(DESKTOP), "alice")
    open_chat(alice)

    player = alice.locator(f'.msg[data-seq="{seq}"] video')
    expect(player).to_have_attribute("poster", f"/media/{clip}/thumb")
    expect(player).to_have_attribute("src", f"/media/{clip}")
    # Its box is reserved from the stored size (4:3) before anything loads.
    expect(player).to_have_class(re.compile(r"\bsized\b"))
    width, height = alice.evaluate(
        "(el) => [el.getBoundingClientRect().width, el.getBoundingClientRect().height]",
        player.element_handle(),
    )
    assert height == pytest.approx(width * 120 / 160, abs=1)
    # The poster is a picture the browser can show.
    size = alice.evaluate(
        """async (src) => { const img = new Image(); img.src = src; await img.decode();
             return [img.naturalWidth, img.naturalHeight]; }""",
        f"/media/{clip}/thumb",
    )
    assert size[0] * 120 == size[1] * 160


def test_a_voice_message_quoted_and_in_a_forwarded_chat_history(new_page, sign_in, make_user, befriend, app):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    seq = send_voice(app, bob_id, conversation_id, 5)
    with app.app_context():
        send_message(
            bob_id, conversation_id, uuid.uuid4().hex, {"type": "txt", "msg": "listen"}, {"reply_to": seq}
        )
        forward(
            bob_id,
            conversation_id,
            [seq, seq + 1],
            "merged",
            [(conversation_id, uuid.uuid4().hex)],
            "Voice notes",
        )
    alice = device(new_page, sign_in, DESKTOP)
    open_chat(alice)

    # The reply's quote names a voice message (the server's quote keeps no length).
    expect(alice.locator(f'.msg[data-seq="{seq + 1}"] .quote-text')).to_have_text("[Voice]")
    card = alice.locator(f'.msg[data-seq="{seq + 2}"] .merged')
    expect(card.locator(".merged-line").first).to_have_text("Bob: [Voice] 0:05")
    card.click()
    # Inside the chat history it plays, and has no played state of its own (no dot).
    inside = alice.locator(".merged-list button.voice")
    expect(inside).to_have_text("5″")
    expect(alice.locator(".merged-list .voice-unplayed")).to_have_count(0)
    inside.click()
    expect(inside).to_have_attribute("data-state", "playing")
    expect(inside).to_have_attribute("data-state", "idle", timeout=20_000)
    # The message itself is still unplayed.
    alice.keyboard.press("Escape")
    expect(dot(alice, seq)).to_have_count(1)


def test_plays_missed_or_told_while_offline_reach_every_device(
    new_page, sign_in, make_user, befriend, app, browser_problems
):
    browser_problems.allow_offline()
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    older = send_voice(app, bob_id, conversation_id, 2)
    newer = send_voice(app, bob_id, conversation_id, 2)
    phone = device(new_page, sign_in, PHONE)
    laptop = device(new_page, sign_in, DESKTOP)
    open_chat(phone)
    open_chat(laptop)
    expect(laptop.locator(".voice-unplayed")).to_have_count(2)

    # The laptop is away while the phone plays one: it learns it from /sync when it is back.
    laptop.context.set_offline(True)
    expect(laptop.locator(".chat-bar .sub")).to_have_text("Connecting…")
    bubble(phone, newer).click()
    expect(dot(phone, newer)).to_have_count(0)
    expect(bubble(phone, newer)).to_have_attribute("data-state", "idle")
    expect(dot(laptop, newer)).to_have_count(1)
    laptop.context.set_offline(False)
    expect(dot(laptop, newer)).to_have_count(0)
    expect(dot(laptop, older)).to_have_count(1)

    # The phone plays one while offline (its file cannot load): the play is told once it is back.
    phone.context.set_offline(True)
    expect(phone.locator(".chat-bar .sub")).to_have_text("Connecting…")
    bubble(phone, older).click()
    expect(dot(phone, older)).to_have_count(0)
    expect(bubble(phone, older)).to_have_attribute("data-state", "idle")
    expect(dot(laptop, older)).to_have_count(1)
    phone.context.set_offline(False)
    expect(dot(laptop, older)).to_have_count(0)


def test_a_voice_message_and_a_video_never_sound_together(new_page, sign_in, make_user, befriend, app):
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    with app.app_context():
        clip = create_upload(
            bob_id, io.BytesIO(video(10, "webm", size=(160, 120))), "clip.webm", "message"
        ).id
    send(app, bob_id, conversation_id, {"type": "video", "upload_id": clip})
    seq = send_voice(app, bob_id, conversation_id, 30)
    alice = device(new_page, sign_in, DESKTOP)
    open_chat(alice)
    voice = bubble(alice, seq)
    player = alice.locator(".msg video")

    # A video starting stops the voice message.
    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")
    player.evaluate("(el) => { el.muted = true; return el.play(); }")
    expect(voice).to_have_attribute("data-state", "idle")
    alice.wait_for_function("() => !document.querySelector('.msg video').paused")
    # A voice message starting pauses the video.
    voice.click()
    expect(voice).to_have_attribute("data-state", "playing")
    alice.wait_for_function("() => document.querySelector('.msg video').paused")
    assert alice.evaluate(SOUNDING) == 1


def test_a_play_the_server_failed_to_take_is_told_again_even_after_a_reload(
    new_page, sign_in, make_user, befriend, app, browser_problems
):
    played = r"/api/v1/conversations/\d+/messages/\d+/played"
    browser_problems.allow_response(played, 503)
    _, bob_id, conversation_id = friends(make_user, befriend, app)
    older = send_voice(app, bob_id, conversation_id, 2)
    newer = send_voice(app, bob_id, conversation_id, 2)
    phone = device(new_page, sign_in, PHONE)
    laptop = device(new_page, sign_in, DESKTOP)
    open_chat(phone)
    open_chat(laptop)
    expect(laptop.locator(".voice-unplayed")).to_have_count(2)
    failing = re.compile(r".*/messages/\d+/played$")
    answers = []

    def fail_once(route):
        answers.append(route.request.url)
        if len(answers) == 1:
            route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "Down"}})
        else:
            route.continue_()

    # The server fails the first time: told again shortly, and the other device hears of it.
    phone.route(failing, fail_once)
    bubble(phone, newer).click()
    expect(dot(phone, newer)).to_have_count(0)
    expect(dot(laptop, newer)).to_have_count(0, timeout=20_000)
    assert len(answers) >= 2
    phone.unroute(failing)

    # The server fails while the page reloads: the play kept in the tab is told after it.
    def fail(route):
        route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "Down"}})

    phone.route(failing, fail)
    bubble(phone, older).click()
    expect(dot(phone, older)).to_have_count(0)
    phone.reload()
    phone.wait_for_function("() => window.__syncs > 0")
    expect(dot(laptop, older)).to_have_count(1)
    phone.unroute(failing)
    expect(dot(laptop, older)).to_have_count(0, timeout=30_000)
    # The reloaded page (which read it as unplayed from the server) hears of it too.
    expect(dot(phone, older)).to_have_count(0)
