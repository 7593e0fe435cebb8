"""Users' data exports: asking for one, listing them, serving the zip, sweeping the expired.

A user asks (`request_export`): one `user_exports` row, pending, and an `export.build` job in the
same transaction (app/export/archive.py builds the zip under `<instance>/exports/<id>.zip`). At
most one export of a user is pending at a time (`export_pending`) and at most `EXPORTS_PER_DAY`
are asked for in 24 hours (`too_many_exports`).

The link is `/export/<secret>`. The secret is an HMAC of the export's id, owner and creation time
under SECRET_KEY: the server can show the link again to its owner (list, `export:ready`) without
keeping it; the table holds only its sha256 (`token_hash`), by which the link is looked up. The
link serves the zip to its owner alone, signed in (anyone else: 404, as for an unknown link),
until `expires_at`, a day after it was built (then 410 `export_expired`). The periodic sweep
(`remove_expired`) deletes the files and rows of expired and failed exports, and marks failed
the pending ones whose build never finished.

A build runs for at most `EXPORT_TIMEOUT_SECONDS` (the job's time limit), and it starts as soon
as its request commits. So a pending export older than that plus `STALE_MARGIN` (the job's end,
the clocks of several servers) has no build still at work on it: its process died, or its time
ran out. It is taken as failed both by the sweep and by the user's next request, which marks it
failed and goes on (a stale export never blocks a new one with `export_pending`). Should the
queue's next attempt at that build (after a time limit, or a dead process's lease) still be at
work then, its result is dropped: it finds the export no longer pending (app/export/archive.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app, send_file
from sqlalchemy import delete, or_, select, text

from app.errors import ApiError
from app.export import archive
from app.extensions import db
from app.jobs import queue
from app.models import utcnow
from app.models.operations import UserExport
from app.presenters import iso

log = logging.getLogger(__name__)

LINK_LIFETIME = timedelta(hours=24)
RATE_WINDOW = timedelta(hours=24)
# A build still pending this long after EXPORT_TIMEOUT_SECONDS is taken as failed (see above).
STALE_MARGIN = timedelta(minutes=1)
FAILED_BUILD = "The build did not finish."
LISTED = 10


def stale_before(now: datetime) -> datetime:
    """Exports pending since before this moment have no build at work any more."""
    timeout = timedelta(seconds=current_app.config["EXPORT_TIMEOUT_SECONDS"])
    return now - timeout - STALE_MARGIN


def _fail_stale(rows: list[UserExport], now: datetime) -> list[int]:
    """Mark these stale pending exports failed (in the caller's transaction); their ids."""
    for row in rows:
        row.state, row.error, row.finished_at = "failed", FAILED_BUILD, now
    return [row.id for row in rows]


def secret_of(row: UserExport) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    stamp = int(row.created_at.timestamp() * 1_000_000)
    mac = hmac.new(key, f"user-export:{row.id}:{row.user_id}:{stamp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def present(row: UserExport, now: datetime | None = None) -> dict:
    """An export as its owner sees it; `url` only while it can be downloaded."""
    now = now or utcnow()
    live = row.state == "ready" and row.expires_at is not None and row.expires_at > now
    return {
        "id": row.id,
        "state": row.state,
        "size": row.size,
        "error": row.error,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
        "expires_at": iso(row.expires_at),
        "expired": row.state == "ready" and not live,
        "url": f"/export/{secret_of(row)}" if live else None,
    }


def request_export(user_id: int, now: datetime | None = None) -> UserExport:
    """Ask for an export of the user's data: the row and its build job commit together."""
    now = now or utcnow()
    # The user's row, locked with a write: two requests at once are counted one after the other,
    # and SQLite takes its write lock now rather than failing to upgrade a read later.
    db.session.execute(text("UPDATE users SET id = id WHERE id = :id"), {"id": user_id})
    pending = list(
        db.session.scalars(
            select(UserExport).where(UserExport.user_id == user_id, UserExport.state == "pending")
        )
    )
    if any(row.created_at >= stale_before(now) for row in pending):
        raise ApiError("export_pending", "Your data is being prepared already; wait for it to finish.", 409)
    # Those left have no build at work: failed (committed with the new one, or not at all).
    stale = _fail_stale(pending, now)
    recent = list(
        db.session.scalars(
            select(UserExport.created_at)
            .where(UserExport.user_id == user_id, UserExport.created_at > now - RATE_WINDOW)
            .order_by(UserExport.created_at)
        )
    )
    if len(recent) >= current_app.config["EXPORTS_PER_DAY"]:
        wait = recent[0] + RATE_WINDOW - now
        raise ApiError(
            "too_many_exports",
            "You asked for your data too many times today; try again later.",
            429,
            retry_after=max(1, int(wait.total_seconds()) + 1),
        )
    row = UserExport(user_id=user_id, state="pending", created_at=now, token_hash=archive.placeholder_hash())
    db.session.add(row)
    db.session.flush()
    row.token_hash = hash_secret(secret_of(row))
    queue.enqueue(archive.KIND, {"export_id": row.id})
    db.session.commit()
    for export_id in stale:
        archive.remove_files(export_id)
    return row


def list_exports(user_id: int) -> list[UserExport]:
    """The user's latest exports, newest first."""
    return list(
        db.session.scalars(
            select(UserExport)
            .where(UserExport.user_id == user_id)
            .order_by(UserExport.created_at.desc(), UserExport.id.desc())
            .limit(LISTED)
        )
    )


def download(user_id: int, secret: str, now: datetime | None = None):
    """The zip behind a link, for its owner: 404 for an unknown link or someone else's, 409 while
    it is being built (or failed), 410 once expired."""
    now = now or utcnow()
    row = None
    if 20 <= len(secret) <= 100:
        row = db.session.scalar(select(UserExport).where(UserExport.token_hash == hash_secret(secret)))
    if row is None or row.user_id != user_id:
        raise ApiError("not_found", "No such export.", 404)
    if row.state != "ready":
        raise ApiError("export_not_ready", "This export is not ready.", 409)
    path = archive.zip_path(row.id)
    if row.expires_at is None or row.expires_at <= now or not path.is_file():
        raise ApiError("export_expired", "This download link has expired; ask for your data again.", 410)
    stamp = row.created_at.strftime("%Y%m%d")
    return send_file(
        path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"parley-data-{stamp}-{row.id}.zip",
        conditional=True,
        etag=True,
    )


def remove_user_exports(user_id: int) -> int:
    """Delete every export of the user, files first; returns how many (account deletion)."""
    ids = list(db.session.scalars(select(UserExport.id).where(UserExport.user_id == user_id)))
    for export_id in ids:
        archive.remove_files(export_id)
    db.session.execute(delete(UserExport).where(UserExport.user_id == user_id))
    db.session.commit()
    return len(ids)


def remove_expired(now: datetime | None = None) -> int:
    """The sweep: stale builds (pending past EXPORT_TIMEOUT_SECONDS and STALE_MARGIN) are marked
    failed; expired exports and those failed a day ago lose their file and row. Returns how many
    rows were deleted."""
    now = now or utcnow()
    stale = list(
        db.session.scalars(
            select(UserExport).where(UserExport.state == "pending", UserExport.created_at < stale_before(now))
        )
    )
    failed = _fail_stale(stale, now)
    db.session.commit()
    for export_id in failed:
        archive.remove_files(export_id)
    gone = list(
        db.session.scalars(
            select(UserExport.id).where(
                or_(
                    UserExport.expires_at <= now,
                    (UserExport.state == "failed") & (UserExport.finished_at <= now - LINK_LIFETIME),
                )
            )
        )
    )
    for export_id in gone:
        archive.remove_files(export_id)
    if gone:
        db.session.execute(delete(UserExport).where(UserExport.id.in_(gone)))
        db.session.commit()
    _remove_orphans()
    return len(gone)


def _remove_orphans() -> None:
    """Files of exports whose rows are gone (a user deleted meanwhile, a sweep cut short)."""
    folder = archive.folder()
    if not folder.is_dir():
        return
    known = {str(export_id) for export_id in db.session.scalars(select(UserExport.id))}
    for path in folder.iterdir():
        if path.name.split(".", 1)[0] not in known and _old(path):
            path.unlink(missing_ok=True)


def _old(path: Path) -> bool:
    """A file not written to for an hour (a build in progress keeps writing to its own)."""
    try:
        return path.stat().st_mtime < utcnow().timestamp() - 3600
    except FileNotFoundError:
        return False
