"""Uploads as a service: receiving one, sending it in a message, deciding who may see it, and
removing the ones nobody used.

An upload is received into a scratch folder, inspected (`inspect.py`, in a media worker
process: decoding an image is CPU work on hostile input, bounded in memory and CPU time there),
moved into the storage under keys made from its random id, and only then recorded; a refusal or
an error removes whatever was written. Sending a message that refers to it binds it to that
message in the message's own transaction, which is what lets the conversation's members see it.

Processing is bounded twice: a user has at most `MEDIA_UPLOADS_PER_USER` uploads in processing at
once (counted in Redis across processes when REDIS_URL is set, else in this process), and a
process queues at most `MEDIA_QUEUE` of them for its `MEDIA_WORKERS` workers (beyond:
`server_busy`).
"""

from __future__ import annotations

import atexit
import logging
import re
import secrets
import shutil
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import IO

from flask import current_app
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import aliased

from app import metrics, ratelimit
from app.concurrency import PoolBusy, TaskTimeout, WorkerDied, WorkerPool
from app.errors import ApiError, not_found, text_from_wire
from app.extensions import db
from app.locales import _l
from app.media.inspect import FileType, Limits, Media, unsupported
from app.media.storage import get_storage
from app.models import ConversationMember, Group, Message, Upload, UploadShare, User, utcnow
from config import BASE_DIR

log = logging.getLogger(__name__)

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
PURPOSES = ("message", "avatar", "voice")
# A voice recording's length as the client measured it: seconds, a decimal number.
CLAIMED_DURATION = re.compile(r"^\d{1,5}(?:\.\d{1,6})?$")
# Message body type -> the kind of upload it carries.
BODY_KINDS = {"img": "image", "video": "video", "audio": "audio", "file": "file"}
MAX_NAME = 200
# Endings refused whatever the content: they would make a browser or a desktop run the file.
DANGEROUS_ENDINGS = {
    "htm", "html", "xhtml", "shtml", "mht", "mhtml", "svg", "svgz", "xml", "xsl", "js", "mjs", "swf",
    "hta", "exe", "com", "scr", "bat", "cmd", "msi", "ps1", "vbs", "wsf", "jar", "lnk",
}  # fmt: skip
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MEDIA_URL = re.compile(r"/media/([0-9a-f]{32})")
CLEANUP_BATCH = 500
# Seconds a refused client is asked to wait (the Retry-After header) before trying again.
RETRY_AFTER = 5
WORKER_CODE = re.compile(r"^[a-z_]{1,40}$")


# --- receiving -----------------------------------------------------------------------------


def check_upload_rate(user_id: int) -> None:
    rate = current_app.config["UPLOAD_RATE_LIMIT"]
    ratelimit.require(rate, "upload", str(user_id), message="You are uploading too fast; wait a moment.")


def clean_name(raw: str | None) -> str | None:
    """The client's file name, for display only; a name that tries to be a path is refused."""
    if raw is None:
        return None
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        return None
    if (
        "/" in name
        or "\\" in name
        or name in (".", "..")
        or len(name) > MAX_NAME
        or BIDI_CONTROLS.search(name)
        or any(unicodedata.category(char) == "Cc" for char in name)
    ):
        raise ApiError(
            "invalid_filename",
            "The file name must be a plain name, not a path.",
            400,
            {
                "file": _l(
                    "a name of at most %(max)s characters without slashes or control characters", max=MAX_NAME
                )
            },
        )
    if _ending(name) in DANGEROUS_ENDINGS:
        raise unsupported("Web pages, SVG, scripts and programs are not accepted.")
    return name


def _ending(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _display_name(name: str | None, file_type: FileType) -> str:
    """The name shown and downloaded: the client's, ending as its real type does."""
    if name is None:
        return f"{file_type.kind}.{file_type.ext}"
    return name if _ending(name) in file_type.names() else f"{name}.{file_type.ext}"


class RetryLater(ApiError):
    """A refusal for lack of capacity: the answer carries `Retry-After: retry_after`."""

    def __init__(self, code: str, message: str, status: int, retry_after: int = RETRY_AFTER):
        super().__init__(code, message, status, retry_after=retry_after)


def server_busy() -> RetryLater:
    return RetryLater("server_busy", "The server is busy processing other files; try again shortly.", 503)


def create_upload(
    user_id: int, stream: IO[bytes], filename: str | None, purpose: str, duration: str | None = None
) -> Upload:
    """Receive, inspect and store one upload for `user_id`; nothing is left behind on refusal.

    `duration` is a voice recording's length as the client measured it (seconds, as sent in
    the form): the server measures the file itself and refuses one that disagrees."""
    if purpose not in PURPOSES:
        raise ApiError(
            "invalid_input", "Some fields are invalid.", 400, {"purpose": "message, avatar or voice"}
        )
    claimed = _claimed_duration(duration, purpose)
    name = clean_name(filename)
    with processing_slot(user_id):
        return _create_upload(user_id, stream, name, purpose, claimed)


def _claimed_duration(raw: str | None, purpose: str) -> float | None:
    if raw is None:
        return None
    if purpose != "voice":
        raise ApiError(
            "invalid_input", "Some fields are invalid.", 400, {"duration": "only with purpose voice"}
        )
    if not CLAIMED_DURATION.match(raw.strip()):
        raise ApiError("invalid_input", "Some fields are invalid.", 400, {"duration": "a number of seconds"})
    return float(raw)


def _check_claim(claimed: float | None, measured: float | None) -> None:
    """The client's measure of a recording may differ from the server's by max(1 s, 10 %)."""
    if claimed is None or measured is None:
        return
    if abs(claimed - measured) > max(1.0, 0.1 * measured):
        raise ApiError(
            "duration_mismatch",
            "The recording's length is not the duration sent with it.",
            400,
            {"duration": _l("the recording lasts %(seconds)s s", seconds=round(measured, 1))},
        )


def _create_upload(
    user_id: int, stream: IO[bytes], name: str | None, purpose: str, claimed: float | None = None
) -> Upload:
    limits = Limits.from_config(current_app.config)
    storage = get_storage()
    upload_id = secrets.token_hex(16)
    main_key = f"{upload_id[:2]}/{upload_id}"
    placed: list[str] = []
    workdir = storage.scratch()
    try:
        received = workdir / "received"
        with open(received, "wb") as target:
            shutil.copyfileobj(stream, target)
        media = inspect_in_worker(received, purpose, limits, workdir)
        _check_claim(claimed, media.duration)
        upload = Upload(
            id=upload_id,
            owner_id=user_id,
            kind=media.kind,
            mime=media.type.mime,
            ext=media.type.ext,
            size=media.path.stat().st_size,
            width=media.width,
            height=media.height,
            duration=media.duration,
            storage_key=main_key,
            thumb_key=f"{main_key}.thumb" if media.thumb else None,
            original_name=None if media.kind == "avatar" else _display_name(name, media.type),
        )
        storage.put(main_key, media.path)
        placed.append(main_key)
        if media.thumb is not None:
            storage.put(upload.thumb_key, media.thumb)
            placed.append(upload.thumb_key)
        db.session.add(upload)
        db.session.commit()
        metrics.upload_stored(upload.kind, upload.size)
        return upload
    except BaseException:
        db.session.rollback()
        for key in placed:
            storage.delete(key)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- processing ----------------------------------------------------------------------------


def media_pool() -> WorkerPool:
    """This process's media workers, started on first use, stopped when the process ends."""
    pool = current_app.extensions.get("parley.media_pool")
    if pool is None:
        config = current_app.config
        pool = WorkerPool(
            "app.media.worker",
            config["MEDIA_WORKERS"],
            config["MEDIA_QUEUE"],
            args=[
                f"--memory-mb={config['MEDIA_WORKER_MEMORY_MB']}",
                f"--cpu-seconds={config['MEDIA_CPU_SECONDS']}",
            ],
            cwd=str(BASE_DIR),
        )
        current_app.extensions["parley.media_pool"] = pool
        atexit.register(pool.close)
    return pool


def inspect_in_worker(source: Path, purpose: str, limits: Limits, workdir: Path) -> Media:
    """`inspect.inspect` run by a media worker; its refusals come back as the same ApiErrors."""
    config = current_app.config
    task = {"source": str(source), "purpose": purpose, "limits": asdict(limits), "workdir": str(workdir)}
    timeout = config["MEDIA_TIMEOUT"]
    try:
        answer = media_pool().run(task, timeout=timeout, wait=timeout)
    except PoolBusy:
        raise server_busy() from None
    except TaskTimeout:
        raise RetryLater(
            "media_timeout",
            _l("Processing this file took longer than %(seconds)s seconds.", seconds=timeout),
            503,
        ) from None
    except WorkerDied:
        raise media_too_complex() from None
    if answer.get("ok") is True:
        try:
            return Media.from_answer(answer.get("media") or {}, workdir)
        except ValueError:
            log.error("a media worker answered nonsense for %s", source, exc_info=True)
            raise media_too_complex() from None
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    code, status, fields = error.get("code"), error.get("status"), error.get("fields")
    if not (isinstance(code, str) and WORKER_CODE.match(code) and status in (400, 413, 415, 422)):
        raise media_too_complex()
    fields = {str(k): text_from_wire(v) for k, v in fields.items()} if isinstance(fields, dict) else {}
    raise ApiError(code, text_from_wire(error.get("message", "")), status, fields)


def media_too_complex() -> ApiError:
    return ApiError(
        "media_too_complex",
        "This file needs more memory or time to process than the server allows.",
        422,
        {"file": "too complex to process"},
    )


class MemorySlots:
    """Uploads in processing per user, counted in this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}

    def take(self, user_id: int, limit: int, ttl: int) -> bool:
        with self._lock:
            if self._counts.get(user_id, 0) >= limit:
                return False
            self._counts[user_id] = self._counts.get(user_id, 0) + 1
            return True

    def give_back(self, user_id: int) -> None:
        with self._lock:
            left = self._counts.get(user_id, 0) - 1
            if left > 0:
                self._counts[user_id] = left
            else:
                self._counts.pop(user_id, None)


class RedisSlots:
    """Uploads in processing per user, counted in Redis by every process of the deployment.
    A counter expires `ttl` seconds after its last upload started, so a process that died
    mid-upload frees its slots."""

    # Give back one slot, never below zero (the counter may have expired meanwhile).
    GIVE_BACK = (
        "local n = tonumber(redis.call('GET', KEYS[1]) or '0') if n > 0 then redis.call('DECR', KEYS[1]) end"
    )

    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self._give_back = self.redis.register_script(self.GIVE_BACK)

    def _key(self, user_id: int) -> str:
        return f"{self.prefix}:{user_id}"

    def take(self, user_id: int, limit: int, ttl: int) -> bool:
        pipe = self.redis.pipeline()
        pipe.incr(self._key(user_id))
        pipe.expire(self._key(user_id), ttl)
        count, _ = pipe.execute()
        if count > limit:
            self._give_back(keys=[self._key(user_id)])
            return False
        return True

    def give_back(self, user_id: int) -> None:
        self._give_back(keys=[self._key(user_id)])


def _slots() -> MemorySlots | RedisSlots:
    slots = current_app.extensions.get("parley.media_slots")
    if slots is None:
        url = current_app.config["REDIS_URL"]
        namespace = current_app.config["REDIS_NAMESPACE"]
        slots = RedisSlots(url, f"{namespace}:media:busy") if url else MemorySlots()
        current_app.extensions["parley.media_slots"] = slots
    return slots


@contextmanager
def processing_slot(user_id: int):
    """Hold one of the user's `MEDIA_UPLOADS_PER_USER` processing slots, or refuse."""
    config = current_app.config
    limit = config["MEDIA_UPLOADS_PER_USER"]
    # Long enough for a wait for a worker and a task, both bounded by MEDIA_TIMEOUT.
    ttl = 2 * config["MEDIA_TIMEOUT"] + 60
    slots = _slots()
    if not slots.take(user_id, limit, ttl):
        raise RetryLater(
            "too_many_uploads",
            _l("You have %(count)s uploads in processing; wait for one to finish.", count=limit),
            429,
        )
    try:
        yield
    finally:
        slots.give_back(user_id)


# --- sending -------------------------------------------------------------------------------


def resolve_body(user_id: int, conversation_id: int, body: dict) -> tuple[dict, Upload | None]:
    """The body to store for a message: an `img`, `video` or `file` body names one of the
    sender's uploads by id, and gets the facts the server measured. The upload is claimed for
    the conversation (a second message cannot take it); `bind` ties it to the message.

    Other bodies are returned as they are. Call inside the sending transaction, before the
    conversation's row is locked (the upload row is locked first).
    """
    kind = BODY_KINDS.get(body["type"])
    if kind is None:
        return body, None
    upload = db.session.get(Upload, body["upload_id"])
    if upload is None:
        raise ApiError("upload_not_found", "No such upload.", 404, {"upload_id": "no such upload"})
    if upload.owner_id != user_id:
        raise ApiError(
            "not_your_upload", "You can only send your own uploads.", 403, {"upload_id": "not yours"}
        )
    # A picture, video or recording may also go as a file (the attach menu's "File"), as in WeChat.
    as_file = kind == "file" and upload.kind in ("image", "video", "audio")
    if upload.kind != kind and not as_file:
        raise ApiError(
            "upload_wrong_kind",
            _l("A %(type)s message needs an upload of kind %(kind)s.", type=body["type"], kind=kind),
            400,
            {"upload_id": _l("is of kind %(kind)s", kind=upload.kind)},
        )
    claimed = db.session.execute(
        update(Upload)
        .where(Upload.id == upload.id, Upload.conversation_id.is_(None), Upload.message_id.is_(None))
        .values(conversation_id=conversation_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise ApiError("upload_in_use", "This upload was sent already; upload it again.", 409)
    return message_body(upload, body["type"]), upload


def message_body(upload: Upload, body_type: str) -> dict:
    common = {
        "type": body_type,
        "upload_id": upload.id,
        "url": upload.url,
        "ext": upload.ext,
        "size": upload.size,
    }
    if body_type in ("img", "video"):
        picture = {**common, "w": upload.width, "h": upload.height}
        if body_type == "img":
            return {**picture, "thumb": upload.thumb_url}
        return {**picture, "duration": upload.duration, "mime": upload.mime, "thumb": upload.thumb_url}
    if body_type == "audio":
        return {**common, "duration": upload.duration, "mime": upload.mime}
    return {**common, "name": upload.original_name, "mime": upload.mime}


def bind(upload: Upload, message: Message) -> None:
    """Tie a claimed upload to the message that carries it (its row is locked already)."""
    db.session.execute(
        update(Upload)
        .where(Upload.id == upload.id)
        .values(conversation_id=message.conversation_id, message_id=message.id)
        .execution_options(synchronize_session=False)
    )


def uploads_in(body: dict) -> set[str]:
    """The uploads a message body carries: a media body's own (named by its url), and those of
    the media inside a forwarded chat history (`merged`), however deep."""
    kind = body.get("type")
    if kind in BODY_KINDS:
        found = MEDIA_URL.fullmatch(str(body.get("url", "")))
        return {found.group(1)} if found else set()
    if kind == "merged":
        return set().union(*(uploads_in(item.get("body") or {}) for item in body.get("items", [])))
    return set()


def existing_uploads(upload_ids: set[str] | frozenset[str], *, hold: bool = False) -> set[str]:
    """Which of these uploads exist. `hold`: and none of them may be deleted until this transaction
    ends (FOR KEY SHARE on PostgreSQL: the retention purge's FOR UPDATE waits for it, and a hold
    waits for a purge that took its lock first, then finds what it deleted gone, app/retention.py).
    SQLite has no row locks: its writers take turns, so a forward checks again in `share`, after its
    first write."""
    if not upload_ids:
        return set()
    query = select(Upload.id).where(Upload.id.in_(sorted(upload_ids)))
    if hold:
        query = query.order_by(Upload.id).with_for_update(read=True, key_share=True)
    return set(db.session.scalars(query).all())


def share(upload_ids: set[str] | frozenset[str], message_id: int) -> set[str]:
    """Let a forwarded message carry uploads sent before, without copying them: the members who
    can see it can see them (`viewable_upload`). Uploads that no longer exist are skipped; the ids
    shared."""
    if not upload_ids:
        return set()
    existing = db.session.scalars(select(Upload.id).where(Upload.id.in_(sorted(upload_ids)))).all()
    if existing:
        db.session.execute(
            UploadShare.__table__.insert(),
            [{"upload_id": upload_id, "message_id": message_id} for upload_id in existing],
        )
    return set(existing)


# --- viewing -------------------------------------------------------------------------------


def viewable_upload(viewer_id: int | None, upload_id: str) -> Upload:
    """The upload, if the viewer may see it: avatars are public; anything else is seen by its
    owner, and by the members of a conversation whose history covers a message carrying it —
    the one it was sent in or a forwarded copy sharing it — unless that message was recalled (a
    copy keeps its file when its original is recalled by its sender or a group admin, as a
    forwarded message stays forwarded; not when the site's administrators removed the original)."""
    upload = db.session.get(Upload, upload_id) if UPLOAD_ID.match(upload_id) else None
    if upload is None:
        raise not_found("upload")
    if upload.kind == "avatar":
        return upload
    if viewer_id is None:
        raise ApiError("unauthenticated", "Sign in first.", 401)
    if upload.owner_id == viewer_id:
        return upload
    # Unbound but shared: retention purged the message it was sent in, a forwarded copy stays.
    shared = select(UploadShare.upload_id).where(UploadShare.upload_id == upload.id).exists()
    if upload.message_id is not None or db.session.scalar(select(shared)):
        member = ConversationMember
        shared_in = select(UploadShare.message_id).where(UploadShare.upload_id == upload.id)
        original = aliased(Message)
        # Removed by the site's administrators: not served through forwarded copies either.
        removed = (
            select(original.id)
            .where(original.id == upload.message_id, original.recalled_as == "admin")
            .exists()
        )
        sees = db.session.scalar(
            select(member.user_id)
            .join(Message, Message.conversation_id == member.conversation_id)
            .where(
                or_(Message.id == upload.message_id, Message.id.in_(shared_in)),
                ~removed,
                Message.recalled_at.is_(None),
                member.user_id == viewer_id,
                Message.seq > member.joined_seq,
                or_(member.left_seq.is_(None), Message.seq <= member.left_seq),
            )
            .limit(1)
        )
        if sees is not None:
            return upload
    raise ApiError("forbidden", "You cannot see this file.", 403)


# --- cleaning up ---------------------------------------------------------------------------


def _avatars_in_use() -> set[str]:
    """Upload ids named by a user's or a group's avatar URL."""
    used: set[str] = set()
    for column in (User.avatar_url, Group.avatar_url):
        for url in db.session.scalars(select(column).where(column.like("%/media/%"))):
            used.update(MEDIA_URL.findall(url))
    return used


def cleanup_uploads(older_than: timedelta = timedelta(days=1)) -> int:
    """Remove uploads older than `older_than` that no message carries or shares and no avatar URL names,
    and scratch files of uploads that never finished. Returns how many uploads went."""
    cutoff = utcnow() - older_than
    # A forwarded copy still carries it (its original was purged by retention): in use.
    shared = select(UploadShare.upload_id).where(UploadShare.upload_id == Upload.id).exists()
    storage = get_storage()
    avatars = _avatars_in_use()
    removed = 0
    after = ""
    while True:
        rows = db.session.execute(
            select(Upload.id, Upload.kind)
            .where(Upload.id > after, Upload.created_at < cutoff, Upload.message_id.is_(None), ~shared)
            .order_by(Upload.id)
            .limit(CLEANUP_BATCH)
        ).all()
        if not rows:
            break
        after = rows[-1].id
        ids = [row.id for row in rows if not (row.kind == "avatar" and row.id in avatars)]
        # A message may have claimed one since it was read: the condition is checked again.
        gone = db.session.execute(
            delete(Upload)
            .where(Upload.id.in_(ids), Upload.message_id.is_(None), ~shared)
            .returning(Upload.storage_key, Upload.thumb_key)
        ).all()
        db.session.commit()
        for storage_key, thumb_key in gone:
            storage.delete(storage_key)
            if thumb_key:
                storage.delete(thumb_key)
        removed += len(gone)
    storage.sweep_scratch(older_than)
    return removed
