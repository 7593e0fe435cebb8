"""The sender's own media: a photo or video just sent shows the picked file (a blob: URL) while it
is pending and until the server's copy has loaded, never a URL that does not exist; the photo then
switches to the server's thumbnail and the local URL is revoked. And file names use the width
there is: in full on a wide screen, shortened in the middle (ending kept) only when too long."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE
from tests.e2e.test_chat_client import open_chat
from tests.e2e.test_scroll_browser import webm

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
WIDE = {"width": 1440, "height": 900}

# Every src a photo or video of mine ever had, with its row's state at that moment; and every
# object URL the page revoked.
RECORD = """
window.__srcs = [];
window.__revoked = [];
const revoke = URL.revokeObjectURL.bind(URL);
URL.revokeObjectURL = (url) => { window.__revoked.push(url); revoke(url); };
const seen = (el) => {
  const row = el.closest && el.closest('.msg.mine');
  if (!row || !el.matches('img.thumb, video')) return;
  window.__srcs.push({ tag: el.tagName, src: el.getAttribute('src'), seq: row.dataset.seq,
    pending: row.classList.contains('sending') });
};
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === 'attributes') seen(record.target);
    for (const node of record.addedNodes) {
      if (node.nodeType !== 1) continue;
      seen(node);
      node.querySelectorAll('img.thumb, video').forEach(seen);
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['src'] });
"""
STORED = ".msg.mine:not([data-seq=''])"
# The box of the element on screen now (a row is rebuilt when its receipt changes: a locator's
# element may just have left the page).
BOX = """(selector) => {
  const rect = document.querySelector(selector).getBoundingClientRect();
  return [rect.width, rect.height];
}"""


def png(size: tuple[int, int]) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", size, "#2b8a3e").save(buffer, "PNG")
    return {"name": "mine.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def recording_page(new_page, sign_in, viewport: dict, username: str) -> tuple[Page, list[str]]:
    page = new_page(viewport)
    page.add_init_script(RECORD)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return sign_in(page, username), requests


def attach(page: Page, kind: str, file: dict) -> None:
    page.click(".attach-btn")
    page.set_input_files(f".tile[data-kind={kind}] input[type=file]", files=[file])


def no_guessed_urls(requests: list[str]) -> None:
    assert not [url for url in requests if re.search(r"/api/v1/uploads/[^/?]+", url)]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_my_photo_shows_the_local_file_until_the_server_copy_has_loaded(
    new_page, sign_in, make_user, befriend, viewport
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice, requests = recording_page(new_page, sign_in, viewport, "alice")
    bob = sign_in(new_page(DESKTOP), "bob")
    open_chat(alice)
    open_chat(bob)
    # The server's copies are held back: the photo is stored, its thumbnail not loaded yet.
    held = []
    alice.route("**/media/**", lambda route: held.append(route))
    attach(alice, "img", png((600, 400)))

    photo = alice.locator(f"{STORED} img.thumb")
    # The first upload starts the server's media workers: it may take a while on a busy machine.
    expect(photo).to_have_count(1, timeout=30_000)
    expect(photo).to_have_attribute("src", re.compile(r"^blob:"))
    local = photo.get_attribute("src")
    # Its box is the final one at once (from the upload's measured size).
    width, height = alice.evaluate(BOX, f"{STORED} img.thumb")
    assert width > 100 and abs(height - width * 400 / 600) <= 1
    srcs = alice.evaluate("window.__srcs")
    pending = [item for item in srcs if item["tag"] == "IMG" and item["seq"] == ""]
    assert pending and all(item["src"] == local for item in pending)
    assert pending[0]["pending"]

    for route in held:
        route.continue_()
    alice.unroute("**/media/**")
    expect(photo).to_have_attribute("src", re.compile(r"^/media/[0-9a-f]+/thumb$"))
    alice.wait_for_function(
        "() => { const img = document.querySelector(\".msg.mine:not([data-seq='']) img.thumb\");"
        " return img.complete && img.naturalWidth > 0; }"
    )
    alice.wait_for_function("(url) => window.__revoked.includes(url)", arg=local)
    assert alice.evaluate(BOX, f"{STORED} img.thumb")[1] == pytest.approx(height, abs=1)
    # Only the local file and the server's thumbnail were ever shown; no URL was guessed.
    assert {item["src"] for item in alice.evaluate("window.__srcs")} == {local, photo.get_attribute("src")}
    no_guessed_urls(requests)

    # Bob gets the server's copy.
    theirs = bob.locator(".msg.theirs img.thumb")
    expect(theirs).to_have_attribute("src", re.compile(r"^/media/[0-9a-f]+/thumb$"))
    bob.wait_for_function("() => document.querySelector('.msg.theirs img.thumb').naturalWidth > 0")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_my_video_plays_from_the_local_file_and_later_from_the_server(
    new_page, sign_in, make_user, befriend, viewport
):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice, requests = recording_page(new_page, sign_in, viewport, "alice")
    open_chat(alice)
    attach(alice, "video", {"name": "clip.webm", "mimeType": "video/webm", "buffer": webm((160, 120))})

    video = alice.locator(f"{STORED} video")
    expect(video).to_have_count(1, timeout=30_000)
    # While the chat is open it keeps playing the picked file (switching a video reloads it).
    expect(video).to_have_attribute("src", re.compile(r"^blob:"))
    local = video.get_attribute("src")
    box = alice.evaluate(BOX, f"{STORED} video")
    assert box == [pytest.approx(160, abs=1), pytest.approx(120, abs=1)]
    pending = [
        item for item in alice.evaluate("window.__srcs") if item["tag"] == "VIDEO" and item["seq"] == ""
    ]
    assert pending and all(item["src"] == local for item in pending)
    alice.wait_for_function("() => document.querySelector('.msg.mine video').readyState > 0")

    # Leaving the chat revokes the local URL; back in it the server's copy plays.
    alice.evaluate("() => { window.location.hash = '#/chats'; }")
    alice.wait_for_function("(url) => window.__revoked.includes(url)", arg=local)
    open_chat(alice)
    expect(video).to_have_attribute("src", re.compile(r"^/media/[0-9a-f]+$"))
    alice.wait_for_function("() => document.querySelector('.msg.mine video').readyState > 0")
    no_guessed_urls(requests)


def file_name_state(page: Page, row: str) -> dict:
    return page.evaluate(
        """(selector) => {
          const card = document.querySelector(selector);
          const head = card.querySelector('.file-name-head');
          const rect = card.getBoundingClientRect();
          return {
            text: card.querySelector('.file-name').textContent,
            title: card.querySelector('.file-name').title,
            cut: head.scrollWidth > head.clientWidth,
            tail: card.querySelector('.file-name-tail')?.getBoundingClientRect().width || 0,
            right: rect.right,
            width: rect.width,
            size: card.querySelector('.file-size').textContent,
          };
        }""",
        f"{row} .bubble.file",
    )


def test_file_names_use_the_width_there_is(new_page, sign_in, make_user, befriend):
    alice_id, bob_id = make_user("alice", nickname="Alice"), make_user("bob", nickname="Bob")
    befriend(alice_id, bob_id)
    alice, requests = recording_page(new_page, sign_in, WIDE, "alice")
    bob = sign_in(new_page(PHONE), "bob")
    open_chat(alice)
    name = "quarterly-report-2026-final-version.txt"
    attach(alice, "file", {"name": name, "mimeType": "text/plain", "buffer": b"Figures\n" * 200})

    # On a 1440-px screen the whole name shows, with the size and the download link.
    expect(alice.locator(f"{STORED} .bubble.file")).to_have_count(1, timeout=30_000)
    wide = file_name_state(alice, STORED)
    assert wide["text"] == name and wide["title"] == name
    assert not wide["cut"]
    assert wide["size"] == "1.6 KB"
    assert wide["width"] > 300
    expect(alice.locator(f"{STORED} .file-download")).to_have_attribute("download", name)
    no_guessed_urls(requests)

    # On a phone it is shortened in the middle: the ending stays, the card stays on screen.
    open_chat(bob)
    expect(bob.locator(".msg.theirs .bubble.file")).to_have_count(1)
    narrow = file_name_state(bob, ".msg.theirs")
    assert narrow["text"] == name and narrow["title"] == name
    assert narrow["cut"] and narrow["tail"] > 0
    assert narrow["right"] <= PHONE["width"]
