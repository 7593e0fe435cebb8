"""Avatars in the browser: pick a picture, crop it square, upload it as an avatar and save it;
the profile header, the Me card (on every device) and a friend's chat list show it; a group's
owner does the same for the group; a picture that fails to load falls back to the initials; the
profile header follows a saved nickname."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from app.groups import services as groups
from tests.e2e.conftest import DESKTOP, PHONE

MEDIA = re.compile(r"/media/[0-9a-f]{32}$")
RED, BLUE = (220, 20, 20), (20, 40, 220)


def two_tone() -> dict:
    """300×100: red on the left two thirds, blue on the right third. A square cropped from the
    centre is all red; one moved to the right edge is all blue."""
    image = Image.new("RGB", (300, 100), RED)
    image.paste(BLUE, (200, 0, 300, 100))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return {"name": "two-tone.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def friends(make_user, befriend, *names: str) -> list[int]:
    ids = [make_user(name, nickname=name.capitalize()) for name in names]
    for other in ids[1:]:
        befriend(ids[0], other)
    return ids


def open_me(page: Page) -> None:
    page.click("#tabs a[data-tab=me]")
    expect(page.locator(".me-card")).to_be_visible()


def open_profile(page: Page) -> None:
    page.goto("/#/profile")
    expect(page.locator(".profile-head .change-photo")).to_be_visible()


def back_to_me(page: Page) -> None:
    """Back from the profile to the Me card (on a desktop both show side by side)."""
    back = page.locator(".pane .back")
    if back.is_visible():
        back.click()
    expect(page.locator(".me-card")).to_be_visible()


def crop_to_the_right_edge(page: Page, button: str) -> None:
    """Choose the two-tone picture, move it all the way left (mouse and keys) and zoom in."""
    with page.expect_file_chooser() as chooser:
        page.click(button)
    chooser.value.set_files(two_tone())
    frame = page.locator(".crop-frame")
    expect(frame).to_be_visible()
    box = frame.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] - box["width"], box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    frame.focus()
    for key in ("+", "+", "ArrowLeft", "ArrowLeft", "ArrowLeft"):
        frame.press(key)
    expect(page.locator(".crop-zoom")).not_to_have_value("1")
    page.click(".crop-done")


def pixel(page: Page, selector: str, x: float, y: float) -> list[int]:
    """The colour of a loaded picture at (x, y) as fractions of its size."""
    return page.locator(selector).evaluate(
        """(img, [x, y]) => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            return Array.from(context.getImageData(img.naturalWidth * x, img.naturalHeight * y, 1, 1).data);
        }""",
        [x, y],
    )


def loaded(page: Page, selector: str):
    locator = page.locator(selector)
    expect(locator).to_have_attribute("src", MEDIA)
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth > 0", arg=locator.element_handle(), timeout=10_000
    )
    return locator


def is_blue(rgba: list[int]) -> bool:
    r, g, b, _ = rgba
    return b > 150 and r < 90


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_upload_crop_and_save_shows_everywhere(viewport, new_page, sign_in, make_user, befriend):
    friends(make_user, befriend, "alice", "bob")
    alice, other_device, bob = new_page(viewport), new_page(viewport), new_page(DESKTOP)
    for page, name in ((alice, "alice"), (other_device, "alice"), (bob, "bob")):
        sign_in(page, name)
    open_me(other_device)
    expect(other_device.locator(".me-card .avatar .initial")).to_have_text("A")

    open_profile(alice)
    crop_to_the_right_edge(alice, ".profile-head .change-photo")

    # The header shows the new picture: the square the user chose, made 512×512.
    head = loaded(alice, ".profile-head .avatar img")
    assert head.evaluate("(img) => [img.naturalWidth, img.naturalHeight]") == [512, 512]
    assert is_blue(pixel(alice, ".profile-head .avatar img", 0.1, 0.5))
    assert is_blue(pixel(alice, ".profile-head .avatar img", 0.9, 0.5))
    src = head.get_attribute("src")
    # The Me card here and on the other device (live), and Bob's chat list after a reload.
    back_to_me(alice)
    expect(alice.locator(".me-card .avatar img")).to_have_attribute("src", src)
    expect(other_device.locator(".me-card .avatar img")).to_have_attribute("src", src)
    bob.reload()
    expect(bob.locator(".conv .avatar img")).to_have_attribute("src", src)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_saving_the_nickname_updates_the_header_and_other_devices(viewport, new_page, sign_in, make_user):
    make_user("alice", nickname="Alice")
    alice, other_device = new_page(viewport), new_page(viewport)
    sign_in(alice, "alice")
    sign_in(other_device, "alice")
    open_me(other_device)
    open_profile(alice)
    expect(alice.locator(".profile-head h2")).to_have_text("Alice")
    alice.fill("input[name=nickname]", "Alicia")
    alice.click("form button[type=submit]")
    expect(alice.locator(".profile-head h2")).to_have_text("Alicia")
    expect(other_device.locator(".me-card .me-name")).to_have_text("Alicia")
    back_to_me(alice)
    expect(alice.locator(".me-card .me-name")).to_have_text("Alicia")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_bad_link_is_shown_by_the_field_and_a_broken_one_falls_back_to_initials(
    viewport, new_page, sign_in, make_user, browser_problems
):
    make_user("alice", nickname="Alice")
    alice = new_page(viewport)
    # The refused save (400) and the picture that is not there (404), both on purpose.
    browser_problems.allow_response("/api/v1/auth/me", 400)
    browser_problems.allow_response(r"/broken\.png", 404)
    alice.route("https://pictures.example.test/**", lambda route: route.fulfill(status=404, body=""))
    sign_in(alice, "alice")
    open_profile(alice)
    link = alice.locator("input[name=avatar_url]")
    link.fill("/admin/")
    alice.click("form button[type=submit]")
    expect(alice.locator("#error-avatar_url")).to_contain_text("https://")
    expect(alice.locator(".profile-head .avatar .initial")).to_have_text("A")

    link.fill("https://pictures.example.test/broken.png")
    alice.click("form button[type=submit]")
    expect(alice.locator("#error-avatar_url")).to_be_empty()
    # Saved (the Me card has it), and shown as initials wherever it fails to load.
    expect(alice.locator(".profile-head .avatar .initial")).to_have_text("A")
    expect(alice.locator(".profile-head .avatar img")).to_have_count(0)
    back_to_me(alice)
    expect(alice.locator(".me-card .avatar .initial")).to_have_text("A")
    expect(alice.locator(".me-card .avatar img")).to_have_count(0)
    alice.reload()
    expect(alice.locator(".me-card .avatar .initial")).to_have_text("A")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_owner_sets_the_group_photo_and_members_see_it(
    viewport, app, new_page, sign_in, make_user, befriend
):
    alice_id, bob_id = friends(make_user, befriend, "alice", "bob")
    with app.app_context():
        group_id = groups.create_group(alice_id, "Club", [bob_id]).id
    alice, bob = new_page(viewport), new_page(DESKTOP)
    sign_in(alice, "alice")
    sign_in(bob, "bob")
    bob.goto(f"/#/group/{group_id}")
    expect(bob.locator(".profile-head h2")).to_have_text("Club")
    expect(bob.locator(".change-photo")).to_have_count(0)  # a plain member

    alice.goto(f"/#/group/{group_id}")
    crop_to_the_right_edge(alice, ".profile-head .change-photo")
    head = loaded(alice, ".profile-head .avatar img")
    assert is_blue(pixel(alice, ".profile-head .avatar img", 0.5, 0.5))
    expect(bob.locator(".profile-head .avatar img")).to_have_attribute("src", head.get_attribute("src"))
