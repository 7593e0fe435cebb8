"""The installable app's server side: the manifest in the user's language, the service worker's
script with its build, the favicon, and the pages that point at them."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

from PIL import Image

from app.pwa import PRECACHE_GLOBS


def manifest_of(response) -> dict:
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    return json.loads(response.data)


def test_the_manifest_has_what_installing_needs(client):
    document = manifest_of(client.get("/manifest.webmanifest"))
    assert document["name"] == "Parley Chat"
    assert document["short_name"] == "Parley"
    assert document["lang"] == "en"
    assert (document["id"], document["start_url"], document["scope"]) == ("/", "/", "/")
    assert document["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", document["theme_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", document["background_color"])
    sizes = {(icon["sizes"], icon["purpose"]) for icon in document["icons"]}
    assert sizes == {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")}
    for icon in document["icons"]:
        with client.get(icon["src"]) as image:
            assert image.status_code == 200
            assert image.mimetype == "image/png" == icon["type"]
            width, height = Image.open(io.BytesIO(image.data)).size
        assert f"{width}x{height}" == icon["sizes"]


def test_the_manifest_speaks_the_browsers_language_or_the_users_choice(client, make_user, login):
    chinese = manifest_of(client.get("/manifest.webmanifest", headers={"Accept-Language": "zh-CN,zh;q=0.9"}))
    assert (chinese["lang"], chinese["name"]) == ("zh-CN", "Parley 聊天")
    taiwan = manifest_of(client.get("/manifest.webmanifest", headers={"Accept-Language": "zh-TW"}))
    assert taiwan["lang"] == "zh-CN"
    english = manifest_of(client.get("/manifest.webmanifest", headers={"Accept-Language": "fr, en;q=0.5"}))
    assert english["lang"] == "en"
    response = client.get("/manifest.webmanifest")
    assert {"Accept-Language", "Cookie"} <= set(response.vary)
    assert response.headers["Cache-Control"] == "no-cache"

    # A signed-in user who chose a language gets it, whatever the browser says.
    make_user("mei")
    mei = login("mei")
    assert mei.patch("/api/v1/auth/me", json={"locale": "zh-CN"}).status_code == 200
    chosen = manifest_of(mei.get("/manifest.webmanifest", headers={"Accept-Language": "en-US"}))
    assert (chosen["lang"], chosen["name"]) == ("zh-CN", "Parley 聊天")


def test_the_worker_is_served_from_the_root_with_its_build(app, client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Service-Worker-Allowed"] == "/"
    first, _, rest = response.get_data(as_text=True).partition("\n")
    build = json.loads(first.removeprefix("const BUILD = ").removesuffix(";"))
    assert re.fullmatch(r"[0-9a-f]{16}", build["version"])
    # Every static file the client needs, and only those; each one is there to fetch.
    static = app.static_folder
    expected = {
        f"/static/{path.relative_to(static).as_posix()}"
        for pattern in PRECACHE_GLOBS
        for path in Path(static).glob(pattern)
    } - {"/static/js/sw.js"}
    assert set(build["precache"]) == expected
    for url in (
        "/static/css/app.css",
        "/static/js/app.js",
        "/static/js/pwa.js",
        "/static/js/views/chat.js",
        "/static/vendor/socket.io.esm.min.js",
        "/static/icons/icon-192.png",
    ):
        assert url in build["precache"]
    for url in build["precache"]:
        with client.get(url) as answer:
            assert answer.status_code == 200, url
    # The rest is the worker itself, unchanged.
    assert (Path(static) / "js/sw.js").read_text(encoding="utf-8").partition("\n")[2] == rest


def test_the_workers_version_follows_the_files_it_caches(app, client, tmp_path, monkeypatch):
    before = json.loads(
        client.get("/sw.js").get_data(as_text=True).partition("\n")[0][len("const BUILD = ") : -1]
    )
    # A copy of the static folder with one module changed gets another version.
    copy = tmp_path / "static"
    shutil.copytree(app.static_folder, copy)
    (copy / "js" / "app.js").write_text((copy / "js" / "app.js").read_text() + "\n// changed\n")
    monkeypatch.setattr(app, "static_folder", str(copy))
    app.extensions.pop("parley.sw_build", None)
    after = json.loads(
        client.get("/sw.js").get_data(as_text=True).partition("\n")[0][len("const BUILD = ") : -1]
    )
    assert after["precache"] == before["precache"]
    assert after["version"] != before["version"]


def test_the_favicon_is_served_with_caching(client):
    with client.get("/favicon.ico") as response:
        assert response.status_code == 200
        assert response.mimetype == "image/x-icon"
        assert "max-age=604800" in response.headers["Cache-Control"]
        icon = Image.open(io.BytesIO(response.data))
    assert icon.format == "ICO"
    assert {(16, 16), (32, 32)} <= icon.ico.sizes()


def test_pages_point_at_the_icon_and_manifest_and_the_policy_admits_them(client, make_user, login):
    make_user("alice")
    pages = [client.get("/login"), client.get("/register"), login("alice").get("/")]
    for page in pages:
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert '<link rel="icon" href="/static/icons/favicon-32.png"' in html
        assert '<link rel="manifest" href="/manifest.webmanifest" crossorigin="use-credentials">' in html
        assert '<meta name="theme-color"' in html
        assert 'href="data:,"' not in html
        policy = page.headers["Content-Security-Policy"]
        assert "worker-src 'self'" in policy
        assert "manifest-src 'self'" in policy
