"""Pinned messages of a conversation: at most MAX_PINS, newest first, kept on the conversation
row (`Conversation.pins`, `[{"seq", "by", "at"}]`). In a group the owner and admins pin; in a
direct conversation either side. A change re-stamps the conversation (its summary carries the
pins) and every active member gets `conversation:pins` with the pins they may see."""

from __future__ import annotations

from sqlalchemy import select

from app import presenters, realtime
from app.chat.access import check_can_speak, require_member, send_context, visible_window
from app.chat.actions.common import require_not_recalled, visible_message
from app.chat.plays import mark_played
from app.chat.stream import next_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import (
    Conversation,
    ConversationMember,
    Group,
    GroupMember,
    Message,
    MessageHide,
    User,
    utcnow,
)

MAX_PINS = 10


def drop_pin_of(conversation: Conversation, message: Message) -> bool:
    """Remove the pin of `message` (a recall unpins it). The caller holds the conversation lock,
    re-stamps the conversation and commits; answers whether there was a pin to remove."""
    pins = conversation.pins or []
    kept = [pin for pin in pins if pin["seq"] != message.seq]
    if len(kept) == len(pins):
        return False
    conversation.pins = kept
    return True


def pin(user_id: int, conversation_id: int, seq: int, pinned: bool) -> dict:
    """Pin (or unpin) message `seq`. Idempotent: pinning a pinned message, or unpinning one that
    is not, changes nothing and tells nobody. Answers the pins the caller sees."""
    member, conversation, message = visible_message(user_id, conversation_id, seq, lock=True)
    _require_right_to_pin(user_id, conversation)
    pins = list(conversation.pins or ())
    if pinned == any(entry["seq"] == seq for entry in pins):
        db.session.commit()  # nothing to change: release the conversation lock
        return {"pins": _pins_seen_by(member, conversation)}
    if pinned:
        require_not_recalled(message)
        if len(pins) >= MAX_PINS:
            raise ApiError(
                "too_many_pins",
                _l("A conversation keeps at most %(count)s pinned messages.", count=MAX_PINS),
                409,
            )
        conversation.pins = [{"seq": seq, "by": user_id, "at": presenters.iso(utcnow())}, *pins]
    else:
        drop_pin_of(conversation, message)
    # The stream counter last, after the conversation's lock: sync hands the new pins over in
    # the conversation's summary.
    conversation.stream_pos = next_stream_pos()
    db.session.flush()
    announce_pins(conversation)
    answer = _pins_seen_by(member, conversation)
    db.session.commit()
    return {"pins": answer}


def list_pins(user_id: int, conversation_id: int) -> dict:
    """The conversation's pins the user may see (in their window, not deleted for them), newest
    first, with the messages. Former members see those of what they saw."""
    member = require_member(user_id, conversation_id, active=False)
    conversation = db.session.get(Conversation, conversation_id)
    return {"pins": _pins_seen_by(member, conversation)}


def announce_pins(conversation: Conversation) -> None:
    """Queue `conversation:pins` for every active member once the transaction commits, each with
    the pins they may see: one emit per distinct list (usually one for everybody)."""
    pins = conversation.pins or []
    members = db.session.execute(
        select(ConversationMember.user_id, ConversationMember.joined_seq).where(
            ConversationMember.conversation_id == conversation.id, ConversationMember.active.is_(True)
        )
    ).all()
    messages = _pinned_messages(conversation.id, [entry["seq"] for entry in pins])
    hidden = _hidden_pairs([user_id for user_id, _ in members], messages)
    audiences: dict[tuple[int, ...], list[int]] = {}
    for user_id, joined_seq in members:
        seqs = tuple(
            entry["seq"]
            for entry in pins
            if entry["seq"] in messages
            and entry["seq"] > joined_seq
            and (user_id, entry["seq"]) not in hidden
        )
        audiences.setdefault(seqs, []).append(user_id)
    by_seq = {entry["seq"]: entry for entry in pins}
    for seqs, user_ids in audiences.items():
        payload = {
            "conversation_id": conversation.id,
            "pins": [{**by_seq[seq], "message": messages[seq][1]} for seq in seqs],
        }
        realtime.emit_after_commit("conversation:pins", payload, user_ids)


def _require_right_to_pin(user_id: int, conversation: Conversation) -> None:
    if conversation.kind == "direct":
        # Either side, while they may speak to each other.
        check_can_speak(send_context(user_id, conversation.id))
        return
    group = db.session.scalar(select(Group).where(Group.conversation_id == conversation.id))
    if group is not None and group.dissolved_at is not None:
        raise ApiError("group_dissolved", "This group was dissolved; it is read-only.", 403)
    mine = db.session.get(GroupMember, (group.id, user_id)) if group is not None else None
    if mine is None or mine.role not in ("owner", "admin"):
        raise ApiError("not_allowed", "Only the group's owner and admins pin messages.", 403)


def _pins_seen_by(member: ConversationMember, conversation: Conversation) -> list[dict]:
    lowest, highest = visible_window(member, conversation)
    pins = [entry for entry in conversation.pins or () if lowest < entry["seq"] <= highest]
    messages = _pinned_messages(conversation.id, [entry["seq"] for entry in pins])
    hidden = _hidden_pairs([member.user_id], messages)
    seen = [
        {**entry, "message": messages[entry["seq"]][1]}
        for entry in pins
        if entry["seq"] in messages and (member.user_id, entry["seq"]) not in hidden
    ]
    mark_played(member.user_id, [item["message"] for item in seen])  # the reader's own `played`
    return seen


def _pinned_messages(conversation_id: int, seqs: list[int]) -> dict[int, tuple[int, dict]]:
    """seq -> (message id, payload) for the pinned messages, with their senders, in one query."""
    if not seqs:
        return {}
    rows = db.session.execute(
        select(Message, User)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Message.conversation_id == conversation_id, Message.seq.in_(seqs))
    ).all()
    return {message.seq: (message.id, presenters.message(message, author)) for message, author in rows}


def _hidden_pairs(user_ids: list[int], messages: dict[int, tuple[int, dict]]) -> set[tuple[int, int]]:
    """(user id, seq) of the pinned messages these users deleted for themselves."""
    if not user_ids or not messages:
        return set()
    rows = db.session.execute(
        select(MessageHide.user_id, MessageHide.seq).where(
            MessageHide.user_id.in_(user_ids),
            MessageHide.message_id.in_([message_id for message_id, _ in messages.values()]),
        )
    )
    return {(user_id, seq) for user_id, seq in rows}
