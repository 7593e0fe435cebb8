"""The chat app's shell page: served at / to signed-in users, with their profile as inert JSON."""

from __future__ import annotations

import json
import re


def test_home_needs_a_session(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_home_renders_the_app_with_the_user_as_json(make_user, login):
    make_user("alice", nickname="</script><script>alert(1)</script>")
    response = login("alice").get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'name="csrf-token"' in page
    assert "/static/js/app.js" in page
    assert "<script>alert(1)" not in page
    boot = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)
    me = json.loads(boot.group(1))
    assert me["username"] == "alice"
    assert me["nickname"] == "</script><script>alert(1)</script>"
