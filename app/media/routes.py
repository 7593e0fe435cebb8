"""Uploading (`POST /api/v1/uploads`) and serving media (`GET /media/<id>`, `/media/<id>/thumb`)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask_login import current_user, login_required

from app import presenters
from app.errors import ApiError, not_found
from app.media import services
from app.media.storage import get_storage
from app.models import Upload

bp = Blueprint("media", __name__)

PRIVATE_CACHE = "private, max-age=86400"
PUBLIC_CACHE = "public, max-age=31536000, immutable"
# Opened on its own, a media URL is a sandboxed document that can run nothing.
MEDIA_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"


@bp.post("/api/v1/uploads")
@login_required
def upload():
    """Multipart: `file` (required), `purpose` (`message`, the default, `avatar` or `voice`) and,
    for a voice recording, the client's own `duration` in seconds (checked against the file's).
    Carries `X-CSRFToken` like every non-JSON API write."""
    services.check_upload_rate(current_user.id)
    file = request.files.get("file")
    if file is None:
        raise ApiError("invalid_input", "Some fields are invalid.", 400, {"file": "send the file in `file`"})
    purpose = request.form.get("purpose", "message")
    duration = request.form.get("duration")
    row = services.create_upload(current_user.id, file.stream, file.filename, purpose, duration)
    return jsonify(upload=presenters.upload(row)), 201


@bp.get("/media/<upload_id>")
def media(upload_id: str):
    row = services.viewable_upload(_viewer_id(), upload_id)
    return _send(row, row.storage_key, row.mime, row.original_name or f"{row.id}.{row.ext}")


@bp.get("/media/<upload_id>/thumb")
def thumb(upload_id: str):
    row = services.viewable_upload(_viewer_id(), upload_id)
    if row.thumb_key is None:
        raise not_found("thumbnail")
    return _send(row, row.thumb_key, "image/webp", f"{row.id}-thumb.webp")


def _viewer_id() -> int | None:
    return current_user.id if current_user.is_authenticated else None


def _send(row: Upload, key: str, mimetype: str, name: str) -> Response:
    """The stored bytes with the type Parley decided; files download, never render."""
    response = get_storage().send(
        key, mimetype=mimetype, as_attachment=row.kind == "file", download_name=name
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = MEDIA_CSP
    if row.kind == "avatar":
        response.headers["Cache-Control"] = PUBLIC_CACHE
    else:
        response.headers["Cache-Control"] = PRIVATE_CACHE
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
