"""The installable app: the web app manifest, the service worker and the favicon, all served from
the site's root (a worker controls only the paths under its own URL, so /sw.js controls all of
Parley; the manifest and favicon live where browsers look for them).

The worker's script is app/static/js/sw.js with its first line replaced by the build: a version
(a hash of the worker and every file it precaches) and the list of those files. Any change to the
client's files therefore changes /sw.js byte for byte, which is how browsers notice an update;
the new worker fills a new cache and deletes the old one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from flask import Blueprint, Response, current_app, request, send_from_directory, url_for
from flask_login import current_user

bp = Blueprint("pwa", __name__)

LOCALES = ("en", "zh-CN")
# The names the installed app shows, in the user's language (the product's name stays Parley).
TEXTS = {
    "en": {
        "name": "Parley Chat",
        "short_name": "Parley",
        "description": "Chat with friends and groups, on every device.",
    },
    "zh-CN": {
        "name": "Parley 聊天",
        "short_name": "Parley",
        "description": "和好友、群聊随时畅聊，每台设备都在线。",
    },
}
THEME_COLOR = "#ededed"  # the bars' colour in app/static/css/app.css (light theme)
BACKGROUND_COLOR = "#ededed"
ICONS = [
    {"file": "icon-192.png", "sizes": "192x192", "purpose": "any"},
    {"file": "icon-512.png", "sizes": "512x512", "purpose": "any"},
    {"file": "maskable-512.png", "sizes": "512x512", "purpose": "maskable"},
]
# What the worker keeps for offline use: the client's styles, modules, vendored library and icons.
PRECACHE_GLOBS = ("css/*.css", "js/*.js", "js/*/*.js", "vendor/*.js", "icons/*.png")
WORKER = "js/sw.js"
BUILD_LINE = "const BUILD = "


def manifest_locale() -> str:
    """The signed-in user's language if they chose one, else the browser's (Accept-Language)."""
    if current_user.is_authenticated and current_user.locale in LOCALES:
        return current_user.locale
    best = request.accept_languages.best_match(["en", "zh-CN", "zh"], default="en")
    return "zh-CN" if best.startswith("zh") else "en"


@bp.get("/manifest.webmanifest")
def manifest():
    locale = manifest_locale()
    document = {
        "id": "/",
        "lang": locale,
        "dir": "ltr",
        **TEXTS[locale],
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOR,
        "background_color": BACKGROUND_COLOR,
        "categories": ["social", "communication"],
        "icons": [
            {
                "src": url_for("static", filename=f"icons/{icon['file']}"),
                "sizes": icon["sizes"],
                "type": "image/png",
                "purpose": icon["purpose"],
            }
            for icon in ICONS
        ],
    }
    response = Response(json.dumps(document, ensure_ascii=False), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    response.vary.update(("Accept-Language", "Cookie"))
    return response


def _static_root() -> Path:
    return Path(current_app.static_folder)


def worker_build() -> dict:
    """The worker's version and precache list; computed once per process (each request in debug)."""
    cached = current_app.extensions.get("parley.sw_build")
    if cached is not None and not current_app.debug:
        return cached
    root = _static_root()
    files = sorted(
        {path for pattern in PRECACHE_GLOBS for path in root.glob(pattern) if path.is_file()}
        - {root / WORKER}
    )
    digest = hashlib.sha256((root / WORKER).read_bytes())
    for path in files:
        name = path.relative_to(root).as_posix()
        digest.update(name.encode())
        digest.update(path.read_bytes())
    build = {
        "version": digest.hexdigest()[:16],
        "precache": [url_for("static", filename=path.relative_to(root).as_posix()) for path in files],
    }
    current_app.extensions["parley.sw_build"] = build
    return build


@bp.get("/sw.js")
def service_worker():
    source = (_static_root() / WORKER).read_text(encoding="utf-8")
    first, _, rest = source.partition("\n")
    if first.startswith(BUILD_LINE):
        first = f"{BUILD_LINE}{json.dumps(worker_build())};"
    response = Response(f"{first}\n{rest}", mimetype="text/javascript")
    # Browsers check for a new worker on navigations; never let a cache answer that check.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/"
    return response


@bp.get("/favicon.ico")
def favicon():
    return send_from_directory(
        _static_root() / "icons", "favicon.ico", mimetype="image/x-icon", max_age=7 * 24 * 3600
    )
