"""Building a user's export: the `export.build` job writes the zip.

The zip holds:

- `profile.json`: the account (as `GET /api/v1/auth/me` shows it), its settings, linked sign-in
  identities and live devices;
- `contacts.json`: friends (with the remark you gave them), the people you blocked, and the groups
  you are in with your role;
- `conversations/<id>.json`, one per conversation you are or were in: its kind, name and the
  public names of its members, then the messages you can see there, as the history pages show
  them (app/chat/history.py: within your membership window, recalled ones as recalled, none you
  deleted for yourself);
- `uploads.json` and `uploads/<id>.<ext>`: the files you uploaded.

Memory stays bounded: messages are read a page at a time and each page is written to the zip
before the next is read; files are copied in chunks. The zip is written to `<id>.zip.part` and
renamed when complete. The job is idempotent (an export no longer pending is left alone; a second
run rebuilds from the start). A build that fails marks the export failed with a short error and
removes its file; a build cut off by its time limit is tried again by the queue.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import or_, select

from app import presenters, realtime
from app.chat import history
from app.extensions import db
from app.jobs import queue
from app.media.storage import get_storage
from app.models import (
    Block,
    Conversation,
    ConversationMember,
    DeviceSession,
    Friendship,
    Group,
    GroupMember,
    OAuthIdentity,
    Upload,
    User,
    utcnow,
)
from app.models.operations import UserExport

log = logging.getLogger(__name__)

KIND = "export.build"
FOLDER = "exports"
PAGE = 200
MEMBERS_MAX = 1000


def folder() -> Path:
    return Path(current_app.instance_path) / FOLDER


def zip_path(export_id: int) -> Path:
    return folder() / f"{export_id}.zip"


def remove_files(export_id: int) -> None:
    for path in (zip_path(export_id), folder() / f"{export_id}.zip.part"):
        path.unlink(missing_ok=True)


def placeholder_hash() -> str:
    """A unique stand-in for the token hash until the row has its id."""
    return secrets.token_hex(32)


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()


@queue.kind(KIND, timeout=lambda config: config["EXPORT_TIMEOUT_SECONDS"])
def build(payload: dict) -> None:
    """Build the zip of export `payload["export_id"]` and mark it ready (or failed)."""
    from app.export.services import LINK_LIFETIME, present

    row = db.session.get(UserExport, payload["export_id"])
    if row is None or row.state != "pending":
        return
    export_id, user_id = row.id, row.user_id
    db.session.commit()  # read nothing under a long transaction
    part = folder() / f"{export_id}.zip.part"
    try:
        folder().mkdir(parents=True, exist_ok=True)
        write_zip(user_id, part)
        size = part.stat().st_size
        os.replace(part, zip_path(export_id))
    except Exception as error:
        db.session.rollback()
        log.warning("export %s of user %s failed", export_id, user_id, exc_info=True)
        remove_files(export_id)
        _finish(export_id, "failed", error=f"{type(error).__name__}"[:200])
        db.session.commit()
        return
    row = _finish(export_id, "ready", size=size, lifetime=LINK_LIFETIME)
    if row is not None:
        realtime.emit_after_commit("export:ready", {"export": present(row)}, [user_id])
        db.session.commit()


def _finish(export_id: int, state: str, *, size=None, error=None, lifetime: timedelta | None = None):
    row = db.session.get(UserExport, export_id, with_for_update=True)
    if row is None or row.state != "pending":  # deleted meanwhile (the account went): leave nothing
        db.session.rollback()
        remove_files(export_id)
        return None
    now = utcnow()
    row.state, row.size, row.error, row.finished_at = state, size, error, now
    row.expires_at = now + lifetime if lifetime is not None else None
    db.session.flush()
    return row


def write_zip(user_id: int, path: Path) -> None:
    user = db.session.get(User, user_id)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr("profile.json", _dump(_profile(user)))
        archive.writestr("contacts.json", _dump(_contacts(user_id)))
        for conversation_id in _conversation_ids(user_id):
            _write_conversation(archive, user_id, conversation_id)
        _write_uploads(archive, user_id)


def _profile(user: User) -> dict:
    devices = db.session.scalars(
        select(DeviceSession)
        .where(
            DeviceSession.user_id == user.id,
            DeviceSession.revoked_at.is_(None),
            DeviceSession.expires_at > utcnow(),
        )
        .order_by(DeviceSession.id)
    )
    identities = db.session.scalars(select(OAuthIdentity).where(OAuthIdentity.user_id == user.id))
    return {
        "exported_at": presenters.iso(utcnow()),
        "account": {
            **presenters.user_self(user),
            "external_id": user.external_id,
            "last_seen_at": presenters.iso(user.last_seen_at),
        },
        "settings": {"locale": user.locale, "notification_previews": user.notification_previews},
        "identities": [presenters.identity(row) for row in identities],
        "devices": [
            {
                **presenters.device(row, None),
                "user_agent": row.user_agent,
                "expires_at": presenters.iso(row.expires_at),
            }
            for row in devices
        ],
    }


def _contacts(user_id: int) -> dict:
    friends = db.session.execute(
        select(Friendship, User)
        .join(
            User,
            User.id == (Friendship.user_a_id + Friendship.user_b_id - user_id),
        )
        .where(or_(Friendship.user_a_id == user_id, Friendship.user_b_id == user_id))
        .order_by(User.id)
    ).all()
    blocked = db.session.execute(
        select(Block, User).join(User, User.id == Block.blocked_user_id).where(Block.user_id == user_id)
    ).all()
    groups = db.session.execute(
        select(GroupMember, Group)
        .join(Group, Group.id == GroupMember.group_id)
        .where(GroupMember.user_id == user_id)
        .order_by(Group.id)
    ).all()
    return {
        "friends": [
            {
                "user": presenters.user_public(other),
                "remark": row.remark_a if row.user_a_id == user_id else row.remark_b,
                "since": presenters.iso(row.created_at),
            }
            for row, other in friends
        ],
        "blocked": [
            {"user": presenters.user_public(other), "since": presenters.iso(row.created_at)}
            for row, other in blocked
        ],
        "groups": [
            {
                "group": presenters.group(group),
                "role": member.role,
                "joined_at": presenters.iso(member.joined_at),
            }
            for member, group in groups
        ],
    }


def _conversation_ids(user_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(ConversationMember.conversation_id)
            .where(ConversationMember.user_id == user_id)
            .order_by(ConversationMember.conversation_id)
        )
    )


def _conversation_head(user_id: int, conversation_id: int) -> dict:
    conversation = db.session.get(Conversation, conversation_id)
    member = db.session.get(ConversationMember, (conversation_id, user_id))
    group = db.session.scalar(select(Group).where(Group.conversation_id == conversation_id))
    members = []
    # A group the user left or was removed from: who is in it now is none of their business.
    if member.active or group is None:
        members = db.session.scalars(
            select(User)
            .join(ConversationMember, ConversationMember.user_id == User.id)
            .where(ConversationMember.conversation_id == conversation_id, ConversationMember.active.is_(True))
            .order_by(User.id)
            .limit(MEMBERS_MAX)
        ).all()
    if group is not None:
        name = group.name
    else:
        others = [user for user in members if user.id != user_id]
        name = others[0].nickname if others else ""
    return {
        "id": conversation.id,
        "kind": conversation.kind,
        "name": name,
        "group_id": group.id if group is not None else None,
        "members": [
            {"id": user.id, "username": user.username, "nickname": user.nickname} for user in members
        ],
        "you_are_member": member.active,
        "joined_at": presenters.iso(member.joined_at),
    }


def _write_conversation(archive: zipfile.ZipFile, user_id: int, conversation_id: int) -> None:
    """The conversation's head, then its visible messages, a page at a time."""
    head = _conversation_head(user_id, conversation_id)
    db.session.commit()
    with archive.open(f"conversations/{conversation_id}.json", "w", force_zip64=True) as out:
        out.write(b'{"conversation": ' + json.dumps(head, ensure_ascii=False).encode() + b',\n"messages": [')
        after, first = 0, True
        while True:
            page = history.history(user_id, conversation_id, after_seq=after, limit=PAGE)
            db.session.commit()
            for message in page["messages"]:
                out.write((b"\n" if first else b",\n") + json.dumps(message, ensure_ascii=False).encode())
                first = False
            if not page["messages"] or not page["has_more"]:
                break
            after = page["messages"][-1]["seq"]
        out.write(b"\n]}\n")


def _write_uploads(archive: zipfile.ZipFile, user_id: int) -> None:
    """The user's uploads: an index, and each file (copied in chunks) under `uploads/`."""
    storage = get_storage()
    index = []
    after = ""
    while True:
        rows = list(
            db.session.scalars(
                select(Upload)
                .where(Upload.owner_id == user_id, Upload.id > after)
                .order_by(Upload.id)
                .limit(PAGE)
            )
        )
        db.session.commit()
        for row in rows:
            entry = presenters.upload(row)
            name = f"uploads/{row.id}.{row.ext}" if row.ext else f"uploads/{row.id}"
            try:
                with (
                    storage.open(row.storage_key) as source,
                    archive.open(name, "w", force_zip64=True) as out,
                ):
                    shutil.copyfileobj(source, out, 1024 * 1024)
                entry["file"] = name
            except FileNotFoundError:
                entry["file"] = None  # its file is gone (removed with a purged message)
            index.append(entry)
        if len(rows) < PAGE:
            break
        after = rows[-1].id
    archive.writestr("uploads.json", _dump(index))
