"""A chat that stays where you read: it opens at the bottom once its photos have loaded, follows
what arrives while the reader is at the bottom, never moves what they read when they are scrolled
up (a photo arriving, an older page loading above), and every photo and video has its final box
before it loads (its size comes with the message)."""

from __future__ import annotations

import io
import uuid

import av
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.chat.read import mark_read
from app.chat.send import send_message
from app.extensions import db
from app.media.services import create_upload
from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import direct_conversation_id, open_chat

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
SIZES = [(600, 400), (300, 500), (800, 800), (1000, 300)]

# The first message row on screen and its top in the page (as the reader sees it).
FIRST_VISIBLE = """() => {
  const top = document.querySelector('.msgs').getBoundingClientRect().top;
  const row = [...document.querySelectorAll('.msg-list > .msg[data-seq]')]
    .find((item) => item.dataset.seq && item.getBoundingClientRect().bottom > top);
  return { seq: row.dataset.seq, top: row.getBoundingClientRect().top };
}"""
TOP_OF = "(seq) => document.querySelector(`.msg-list > [data-seq='${seq}']`).getBoundingClientRect().top"
FROM_BOTTOM = "(el) => el.scrollHeight - el.scrollTop - el.clientHeight"
# Every photo near the screen (what lazy loading fetches) has loaded.
NEAR_IMAGES_LOADED = """() => {
  const box = document.querySelector('.msgs').getBoundingClientRect();
  const near = [...document.querySelectorAll('.msg img.thumb')].filter((img) => {
    const rect = img.getBoundingClientRect();
    return rect.bottom > box.top - 200 && rect.top < box.bottom + 200;
  });
  return near.length > 0 && near.every((img) => img.complete && img.naturalWidth > 0);
}"""


def png(size: tuple[int, int], color: str = "#3a7bd5") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def webm(size: tuple[int, int] = (160, 120)) -> bytes:
    """A one-second VP8 clip (WebM plays in every Chromium build)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as output:
        stream = output.add_stream("libvpx", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(12):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (index * 20, 120, 200)))
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def stored_upload(app, user_id: int, data: bytes, name: str) -> str:
    with app.app_context():
        row = create_upload(user_id, io.BytesIO(data), name, "message")
        db.session.commit()
        return row.id


def seed_history(app, make_user, befriend, count: int) -> tuple[int, int, int]:
    """Bob sent Alice `count` messages, every other one a photo of one of SIZES; all read."""
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    conversation_id = direct_conversation_id(app, alice_id)
    # An upload goes in one message: each photo is an upload of its own.
    photos = [
        stored_upload(app, bob_id, png(SIZES[index % len(SIZES)]), f"p{index}.png")
        for index in range(count // 2)
    ]
    with app.app_context():
        for number in range(count):
            if number % 2:
                body = {"type": "txt", "msg": f"line {number}"}
            else:
                body = {"type": "img", "upload_id": photos[number // 2]}
            send_message(bob_id, conversation_id, uuid.uuid4().hex, body)
        mark_read(alice_id, conversation_id, count)
        db.session.commit()
    return alice_id, bob_id, conversation_id


def at_bottom(page: Page) -> None:
    """The list is scrolled to its end (within 2 px), waiting for layout to settle."""
    page.wait_for_function(
        "() => { const el = document.querySelector('.msgs');"
        " return el.scrollHeight - el.scrollTop - el.clientHeight <= 2; }"
    )


def send_photo(page: Page, size: tuple[int, int], name: str) -> None:
    page.click(".attach-btn")
    page.set_input_files(
        ".tile[data-kind=img] input[type=file]",
        files=[{"name": name, "mimeType": "image/png", "buffer": png(size, "#e0642b")}],
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_chat_with_photos_opens_at_the_bottom_and_stays_there_as_photos_arrive(
    new_page, sign_in, make_user, befriend, app, viewport
):
    seed_history(app, make_user, befriend, 24)
    alice = sign_in(new_page(viewport), "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    expect(alice.locator(".msg.theirs")).to_have_count(24)
    alice.wait_for_function(NEAR_IMAGES_LOADED)
    at_bottom(alice)
    scroller = alice.locator(".msgs")
    assert scroller.evaluate(FROM_BOTTOM) <= 2

    # Bob sends a photo while Alice is at the bottom: once it has loaded she is still there.
    open_chat(bob)
    send_photo(bob, (640, 480), "arrives.png")
    arrived = alice.locator(".msg.theirs img.thumb").last
    expect(alice.locator(".msg.theirs img.thumb")).to_have_count(13)
    alice.wait_for_function(
        "() => { const imgs = document.querySelectorAll('.msg.theirs img.thumb');"
        " const img = imgs[imgs.length - 1]; return img.complete && img.naturalWidth > 0; }"
    )
    at_bottom(alice)
    assert arrived.evaluate("(img) => img.getBoundingClientRect().height") > 40


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_reader_scrolled_up_is_not_moved_by_arrivals_or_older_pages(
    new_page, sign_in, make_user, befriend, app, viewport
):
    seed_history(app, make_user, befriend, 60)
    alice = sign_in(new_page(viewport), "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    expect(alice.locator(".msg.theirs")).to_have_count(40)
    alice.wait_for_function(NEAR_IMAGES_LOADED)
    at_bottom(alice)
    scroller = alice.locator(".msgs")

    # Scrolled up a few screens (not near the top, where the older page would load).
    scroller.evaluate("(el) => { el.scrollTop = Math.max(400, el.scrollHeight / 2); }")
    alice.wait_for_function(NEAR_IMAGES_LOADED)
    before = alice.evaluate(FIRST_VISIBLE)

    # A photo arrives below: what Alice reads does not move, and the "newest" button counts it.
    open_chat(bob)
    send_photo(bob, (500, 700), "below.png")
    expect(alice.locator(".msg.theirs")).to_have_count(41)
    expect(alice.locator(".jump-bottom .jump-count")).to_have_text("1")
    assert abs(alice.evaluate(TOP_OF, before["seq"]) - before["top"]) <= 2
    assert scroller.evaluate(FROM_BOTTOM) > 100

    # Near the top the older page loads above (with its photos): the first message read stays put.
    before = alice.evaluate(
        f"() => {{ document.querySelector('.msgs').scrollTop = 120; return ({FIRST_VISIBLE})(); }}"
    )
    expect(alice.locator(".msg.theirs")).to_have_count(61)
    expect(alice.locator(".older")).to_have_text("Beginning of the conversation")
    alice.wait_for_function(NEAR_IMAGES_LOADED)
    # Photos of the older page above the screen load as well; none of them moves the reader.
    alice.wait_for_function(
        "(seq) => [...document.querySelectorAll('.msg img.thumb')].filter((img) =>"
        " img.getBoundingClientRect().bottom < document.querySelector(`[data-seq='${seq}']`)"
        ".getBoundingClientRect().top).some((img) => img.complete && img.naturalWidth > 0)",
        arg=before["seq"],
    )
    assert abs(alice.evaluate(TOP_OF, before["seq"]) - before["top"]) <= 2

    # The newest button brings her back to the end, and the view follows arrivals again.
    alice.click(".jump-bottom")
    at_bottom(alice)
    send_photo(bob, (300, 300), "again.png")
    expect(alice.locator(".msg.theirs")).to_have_count(62)
    at_bottom(alice)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_photos_and_videos_have_their_final_box_before_they_load(
    new_page, sign_in, make_user, befriend, app, viewport
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    conversation_id = direct_conversation_id(app, alice_id)
    sizes = [(600, 400), (300, 500), (1000, 300)]
    bodies = [{"type": "img", "upload_id": stored_upload(app, bob_id, png(size), "p.png")} for size in sizes]
    bodies.append({"type": "video", "upload_id": stored_upload(app, bob_id, webm((160, 120)), "clip.webm")})
    with app.app_context():
        for body in bodies:
            send_message(bob_id, conversation_id, uuid.uuid4().hex, body)
        mark_read(alice_id, conversation_id, len(bodies))
        db.session.commit()

    alice = sign_in(new_page(viewport), "alice")
    # Every media answer is held until the boxes were measured.
    held = []
    alice.route("**/media/**", lambda route: held.append(route))
    open_chat(alice)
    images = alice.locator(".msg.theirs img.thumb")
    expect(images).to_have_count(3)
    expect(alice.locator(".msg.theirs video")).to_have_count(1)
    boxes = alice.evaluate(
        "() => [...document.querySelectorAll('.msg.theirs img.thumb, .msg.theirs video')].map((el) => {"
        " const rect = el.getBoundingClientRect();"
        " const loaded = el.tagName === 'IMG' ? el.complete : el.readyState > 0;"
        " return { w: rect.width, h: rect.height, loaded }; })"
    )
    assert not any(box["loaded"] for box in boxes)
    for box, (width, height) in zip(boxes, [*sizes, (160, 120)], strict=True):
        assert box["w"] >= 40
        assert abs(box["h"] - box["w"] * height / width) <= 1, (box, width, height)
    # The 160-px video is shown at its own size, not stretched.
    assert abs(boxes[-1]["w"] - 160) <= 1
    at_bottom(alice)

    for route in held:
        route.continue_()
    alice.unroute("**/media/**")
    alice.wait_for_function(
        "() => [...document.querySelectorAll('.msg.theirs img.thumb')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    after = alice.evaluate(
        "() => [...document.querySelectorAll('.msg.theirs img.thumb, .msg.theirs video')].map((el) => {"
        " const rect = el.getBoundingClientRect(); return { w: rect.width, h: rect.height }; })"
    )
    for box, final in zip(boxes, after, strict=True):
        assert abs(box["w"] - final["w"]) <= 1 and abs(box["h"] - final["h"]) <= 1
    at_bottom(alice)
