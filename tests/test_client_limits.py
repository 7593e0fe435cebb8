"""The chat page tells the browser client the recall and edit windows the server enforces, so the
message menu offers Recall and Edit only while they would be accepted, and the upload sizes."""

from __future__ import annotations

import json
import re


def limits_of(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="limits">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def test_the_page_carries_the_configured_windows(app, make_user, login):
    make_user("alice")
    names = ("RECALL_WINDOW_SECONDS", "EDIT_WINDOW_SECONDS", "VOICE_MAX_SECONDS")
    saved = {name: app.config[name] for name in names}
    try:
        app.config.update(RECALL_WINDOW_SECONDS=30, EDIT_WINDOW_SECONDS=600, VOICE_MAX_SECONDS=45)
        response = login("alice").get("/")
    finally:
        app.config.update(saved)
    assert response.status_code == 200
    assert limits_of(response.get_data(as_text=True)) == {
        "recall_seconds": 30,
        "edit_seconds": 600,
        # The upload sizes, so a pasted or dropped file over them is refused before it is sent.
        "max_image_bytes": app.config["MAX_IMAGE_BYTES"],
        "max_video_bytes": app.config["MAX_VIDEO_BYTES"],
        "max_file_bytes": app.config["MAX_FILE_BYTES"],
        "max_audio_bytes": app.config["MAX_AUDIO_BYTES"],
        # A voice recording is sent by itself at this length.
        "voice_max_seconds": 45,
    }
    assert "/static/css/actions.css" in response.get_data(as_text=True)
