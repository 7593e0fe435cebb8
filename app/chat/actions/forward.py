"""Forwarding: messages of one conversation copied into others, one by one ("separate") or as
one chat history ("merged").

The sources are checked once, for the whole call. Each target is then a send of its own: its own
right to speak, its own transaction and its own idempotent client_msg_id, so a target where the
user may not speak gets its own error and the others are sent. Media are not copied: the new
message shares the upload (an `upload_shares` row), which lets the target's members see it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from blinker import signal
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import presenters, wordfilter
from app.chat.access import active_member_ids, check_can_speak, require_member, send_context, visible_window
from app.chat.actions.common import lock_conversation, present, require_not_recalled
from app.chat.schemas import MAX_FORWARD_TITLE
from app.chat.send import append_message, check_send_rate, replay_of
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.media import services as media
from app.models import Conversation, Message, MessageHide, User

DEFAULT_TITLE = "Chat history"
# A chat history may hold chat histories, three levels deep at most, and at most this many
# characters of JSON: forwarding histories of histories cannot grow a message without bound.
MAX_MERGED_DEPTH = 3
MAX_MERGED_CHARS = 600_000
# Separate copies are numbered "<client_msg_id>-0" … "-99" (schemas.MAX_FORWARD_MESSAGES).
MAX_COPIES = 100
# Sent with (context, messages=[...]) when a forward stored its copies in one target, before the
# commit: as `message_stored` for a send (which forwards do not send: the robot does not answer
# them). Web Push queues the target's push with it (app/push/sender.py).
message_forwarded = signal("parley.message-forwarded")


@dataclass(frozen=True, slots=True)
class Copy:
    """One message to store in each target: its body and the uploads it carries."""

    body: dict
    uploads: frozenset[str]


def forward(
    user_id: int,
    source_conversation_id: int,
    seqs: list[int],
    mode: str,
    targets: list[tuple[int, str]],
    title: str | None = None,
) -> dict:
    """Forward messages `seqs` of the source conversation to each target (conversation id,
    client_msg_id). The whole call fails when a source is not visible to the user (404
    `not_visible`), recalled (409 `already_recalled`) or a system message (400
    `not_forwardable`) or the user sends too fast (429 `rate_limited`); otherwise each target gets
    a result of its own."""
    # A merged forward's title is the sender's own text: screened like a message's.
    title = wordfilter.screen_text("title", title, MAX_FORWARD_TITLE)
    copies = _copies(user_id, source_conversation_id, seqs, mode, title)
    db.session.rollback()  # the sources were only read: each target starts a fresh transaction
    # One forward is one action: it counts against the send rate once, for every copy it makes
    # (capped at the rate's smallest window, so any forward fits a window nothing else used).
    check_send_rate(user_id, len(copies) * len(targets))
    results = []
    for conversation_id, client_msg_id in targets:
        try:
            messages, created = _forward_to(user_id, conversation_id, client_msg_id, copies, mode)
        except ApiError as error:
            db.session.rollback()
            results.append({"conversation_id": conversation_id, "ok": False, "error": error.to_dict()})
        else:
            results.append(
                {
                    "conversation_id": conversation_id,
                    "ok": True,
                    "messages": messages,
                    "duplicate": not created,
                }
            )
    return {"results": results}


# --- the sources -----------------------------------------------------------------------------


def _copies(user_id: int, conversation_id: int, seqs: list[int], mode: str, title: str | None) -> list[Copy]:
    rows = _sources(user_id, conversation_id, seqs)
    for message, _ in rows:
        require_not_recalled(message)
        if message.type == "system":
            raise ApiError(
                "not_forwardable",
                "System messages cannot be forwarded.",
                400,
                {"seqs": _l("%(seq)s is a system message", seq=message.seq)},
            )
    if mode == "separate":
        return _existing(
            [
                Copy(copy.deepcopy(message.body), frozenset(media.uploads_in(message.body)))
                for message, _ in rows
            ]
        )
    body = {
        "type": "merged",
        "title": title or DEFAULT_TITLE,
        "items": [
            {
                "sender": None if author is None else {"id": author.id, "nickname": author.nickname},
                "type": message.type,
                "body": copy.deepcopy(message.body),
                "created_at": presenters.iso(message.created_at),
            }
            for message, author in rows
        ],
    }
    if _depth(body) > MAX_MERGED_DEPTH or len(json.dumps(body, ensure_ascii=False)) > MAX_MERGED_CHARS:
        raise ApiError(
            "forward_too_large",
            "This chat history would be too large or nested too deeply; forward fewer messages.",
            400,
            {
                "seqs": _l(
                    "at most %(depth)s nested chat histories and %(chars)s characters",
                    depth=MAX_MERGED_DEPTH,
                    chars=MAX_MERGED_CHARS,
                )
            },
        )
    return _existing([Copy(body, frozenset(media.uploads_in(body)))])


def _existing(copies: list[Copy]) -> list[Copy]:
    """The copies with the uploads they carry that exist now (one gone before, e.g. with an
    original the site's administrators removed, is not shared): each target checks that these
    still exist when it shares them (`_forward_to`)."""
    existing = media.existing_uploads(frozenset().union(*(item.uploads for item in copies)))
    return [Copy(item.body, item.uploads & existing) for item in copies]


def _purged_meanwhile() -> ApiError:
    """A source's upload was deleted (by the retention purge) after the sources were read."""
    return ApiError(
        "not_visible",
        "You cannot see these messages.",
        404,
        {"seqs": _l("deleted while they were being forwarded")},
    )


def _sources(user_id: int, conversation_id: int, seqs: list[int]) -> list[tuple[Message, User | None]]:
    """The messages `seqs` with their authors, in seq order, if the user sees every one of them:
    inside their window (a former member keeps what they saw) and not deleted for them."""
    member = require_member(user_id, conversation_id, active=False)
    lowest, highest = visible_window(member, db.session.get(Conversation, conversation_id))
    wanted = sorted(set(seqs))
    hidden = (
        select(MessageHide.message_id)
        .where(MessageHide.user_id == user_id, MessageHide.message_id == Message.id)
        .exists()
    )
    rows = db.session.execute(
        select(Message, User)
        .outerjoin(User, User.id == Message.sender_id)
        .where(
            Message.conversation_id == conversation_id,
            Message.seq.in_(wanted),
            Message.seq > lowest,
            Message.seq <= highest,
            ~hidden,
        )
        .order_by(Message.seq)
    ).all()
    if len(rows) != len(wanted):
        raise ApiError("not_visible", "You cannot see these messages.", 404, {"seqs": "not visible to you"})
    return [(message, author) for message, author in rows]


def _depth(body: dict) -> int:
    """How many chat histories are nested in a body (0 for any other message)."""
    if body.get("type") != "merged":
        return 0
    return 1 + max((_depth(item.get("body") or {}) for item in body.get("items", [])), default=0)


# --- one target ------------------------------------------------------------------------------


def _forward_to(
    user_id: int, conversation_id: int, client_msg_id: str, copies: list[Copy], mode: str
) -> tuple[list[dict], bool]:
    """Store the copies in one target, in one transaction; a resend of its client_msg_id
    returns what was stored for it then, and stores and delivers nothing again."""
    ids = [client_msg_id] if mode == "merged" else [f"{client_msg_id}-{i}" for i in range(len(copies))]
    stored = _stored(user_id, conversation_id, client_msg_id, mode)
    if stored is not None:
        return stored, False
    try:
        context = send_context(user_id, conversation_id)
        check_can_speak(context)
        recipients = active_member_ids(conversation_id)
        uploads = frozenset().union(*(item.uploads for item in copies))
        if uploads:
            # Held until the commit, so the retention purge keeps them for these copies — taken
            # after the target's row (the lock order of app/chat/stream.py: the purge too locks
            # its conversation, then the uploads), before the stream counter. Gone: the purge
            # deleted them since the sources were read.
            lock_conversation(conversation_id)
            if media.existing_uploads(uploads, hold=True) != uploads:
                raise _purged_meanwhile()
        payloads, messages = [], []
        for item, message_client_id in zip(copies, ids, strict=True):
            message = append_message(
                conversation_id,
                context.sender,
                item.body,
                message_client_id,
                recipients=recipients,
                forwarded=True,
            )
            # Checked again after the first write: SQLite takes no row locks, only turns.
            if media.share(item.uploads, message.id) != item.uploads:
                raise _purged_meanwhile()
            # Built before the commit expires the rows.
            payloads.append(presenters.message(message, context.sender))
            messages.append(message)
        message_forwarded.send(context, messages=messages)
        db.session.commit()
    except IntegrityError:
        # The same forward racing in from another device or process stored it first.
        db.session.rollback()
        stored = _stored(user_id, conversation_id, client_msg_id, mode)
        if stored is None:
            raise
        return stored, False
    return payloads, True


def _stored(user_id: int, conversation_id: int, client_msg_id: str, mode: str) -> list[dict] | None:
    """The messages a forward with this client_msg_id stored in the target, if it did (send's
    `replay_of` answers, `duplicate_client_msg_id` included, for the first of them)."""
    first = replay_of(user_id, conversation_id, client_msg_id if mode == "merged" else f"{client_msg_id}-0")
    if first is None:
        return None
    if mode == "merged":
        return [first[0]]
    rest = db.session.scalars(
        select(Message)
        .where(
            Message.sender_id == user_id,
            Message.conversation_id == conversation_id,
            Message.client_msg_id.in_([f"{client_msg_id}-{i}" for i in range(1, MAX_COPIES)]),
        )
        .order_by(Message.seq)
    )
    return [first[0], *(present(message) for message in rest)]
