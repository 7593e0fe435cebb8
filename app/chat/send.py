"""Sending: the path a message walks — right to speak, append (seq, row, stream position),
commit, then delivery — and typing, which needs the same right to speak."""

from __future__ import annotations

from datetime import datetime

from blinker import signal
from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app import presenters, ratelimit, realtime, speak_cache
from app.chat.access import active_member_ids, check_can_speak, send_context
from app.chat.extras import prepare_extras, settle_replies, store_mentions
from app.chat.screen import screen_message
from app.chat.stream import next_stream_pos
from app.errors import ApiError
from app.extensions import db
from app.locales import N_
from app.media import services as media
from app.models import Block, Conversation, ConversationMember, Message, User, utcnow
from app.webhooks import before_send

# Sent with (context, message=...) when send_message has stored a new message, before the
# commit: receivers queue their follow-up work with `realtime.on_commit` (the robot answers).
message_stored = signal("parley.message-stored")


# The shortest time between two typing events of one socket in one conversation, in seconds
# (socket handlers throttle to it; the robot repeats its typing at it while it thinks).
TYPING_INTERVAL = 2.0


_conversations = Conversation.__table__
_members = ConversationMember.__table__
_messages = Message.__table__
# The statements every message takes, built once: building one costs more CPU than SQLite takes
# to run it. Their values are bound at execution.
_BUMP_SEQ = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("c_id"))
    .values(last_seq=_conversations.c.last_seq + 1, last_activity_at=bindparam("c_now"))
    .returning(_conversations.c.last_seq)
)
SENDER_READ = (
    update(_members)
    .where(
        _members.c.conversation_id == bindparam("c_id"),
        _members.c.user_id == bindparam("u_id"),
        # A member who left keeps the read position of their window.
        _members.c.active.is_(True),
    )
    .values(read_seq=bindparam("c_seq"))
)
_INSERT_MESSAGE = _messages.insert().returning(_messages.c.id)
STAMP_CONVERSATION = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("c_id"))
    .values(stream_pos=bindparam("c_pos"))
)
_EXISTING = select(_messages.c.id).where(
    _messages.c.sender_id == bindparam("sender_id"), _messages.c.client_msg_id == bindparam("client_msg_id")
)


def check_send_rate(user_id: int, count: int = 1) -> None:
    """A burst of sends from one user is refused with `rate_limited`, never dropped silently.
    `count` messages stored at once (a forward) count one each, but never more than the rate's
    smallest window holds: any forward fits a window nothing else used."""
    rate = current_app.config["MESSAGE_RATE_LIMIT"]
    cost = 1 if count <= 1 else min(count, *(item.amount for item in ratelimit.parse_many(rate)))
    message = N_("You are sending too fast; wait a moment.")
    ratelimit.require(rate, "send", str(user_id), message=message, cost=cost)


def send_message(
    user_id: int,
    conversation_id: int,
    client_msg_id: str,
    body: dict,
    extras: dict | None = None,
    *,
    screened: bool = False,
) -> tuple[dict, bool]:
    """Send a message; returns its payload and whether it was new. `extras`: the send's
    `reply_to`, `mentions` and `mention_all` as the client gave them (app/chat/extras.py).
    `screened`: the body went through `screen_message` already (the group commit's fallback).

    A resend of a `client_msg_id` already stored returns the stored message and delivers
    nothing again. A new message, the common case, pays no lookup for that: a resend is caught
    by the unique (sender, client_msg_id) constraint when it is inserted, or looked up when the
    send is refused (a resend of a message stored before its sender was muted still returns it).
    """
    generation = speak_cache.generation(user_id, conversation_id)
    try:
        context = send_context(user_id, conversation_id)
        check_can_speak(context)
        if not screened:
            body = screen_message(context, user_id, conversation_id, body, client_msg_id)
            # Waiting for before-send hooks ended the transaction: a kick, a mute or a block may
            # have come in meanwhile (here, or in a process whose drop the generation may not show).
            if before_send.wanted() or speak_cache.generation(user_id, conversation_id) != generation:
                context = send_context(user_id, conversation_id)
                check_can_speak(context)
        stored = prepare_extras(context, user_id, conversation_id, **extras) if extras else None
        body, upload = media.resolve_body(user_id, conversation_id, body)
        recipients = None
        if context.peer is not None:
            # A direct conversation's members are known already: no query for them.
            recipients = [user_id, context.peer.id] if context.peer_active else [user_id]
        message = append_message(
            conversation_id, context.sender, body, client_msg_id, recipients=recipients, extras=stored
        )
        if upload is not None:
            media.bind(upload, message)
        message_stored.send(context, message=message)
        # Built before the commit expires the rows: afterwards it would cost two reloads.
        payload = presenters.message(message, context.sender)
        db.session.commit()
    except (ApiError, IntegrityError):
        # A resend (perhaps racing in from another device or process), or a refused send.
        db.session.rollback()
        existing = _existing(user_id, client_msg_id)
        if existing is None:
            raise
        return _replay(existing, user_id, conversation_id), False
    return payload, True


def replay_of(user_id: int, conversation_id: int, client_msg_id: str) -> tuple[dict, bool] | None:
    """The answer to a resend of a message this sender stored under `client_msg_id`: the stored
    message, not new (None if there is none; `duplicate_client_msg_id` if it went elsewhere)."""
    existing = _existing(user_id, client_msg_id)
    return None if existing is None else (_replay(existing, user_id, conversation_id), False)


def _replay(message: Message, user_id: int, conversation_id: int) -> dict:
    if message.conversation_id != conversation_id:
        raise ApiError(
            "duplicate_client_msg_id",
            "This client_msg_id was already used for another conversation.",
            409,
            {"client_msg_id": "already used"},
        )
    return presenters.message(message, db.session.get(User, user_id))


def _existing(sender_id: int, client_msg_id: str) -> Message | None:
    """The message this sender already stored under `client_msg_id` (a resend), if any."""
    found = db.session.scalar(_EXISTING, {"sender_id": sender_id, "client_msg_id": client_msg_id})
    return None if found is None else db.session.get(Message, found)


def append_message(
    conversation_id: int,
    sender: User | None,
    body: dict,
    client_msg_id: str | None = None,
    also_to: list[int] | None = None,
    recipients: list[int] | None = None,
    extras: dict | None = None,
    forwarded: bool = False,
) -> Message:
    """Store a message with the next seq and stream position, and deliver it after commit to
    the active members (and `also_to`, e.g. members being removed, who see their notice).
    `recipients`: the active members, when the caller knows them already. `extras`: the checked
    reply and mention columns (`prepare_extras`), if the message has any. `forwarded`: a copy
    made by forwarding (app/chat/actions/forward.py).

    The caller has checked the right to speak and commits. The returned message is not in the
    session: it was written with Core statements, which cost a fraction of the ORM's unit of
    work on the path every message takes (docs/PERFORMANCE.md).
    """
    now = utcnow()
    # Core statements on the session's connection: the ORM's execute adds nothing they need.
    execute = db.session.connection().execute
    seq = execute(_BUMP_SEQ, {"c_id": conversation_id, "c_now": now}).scalar_one()
    if extras is not None and extras["reply"]:
        settle_replies(execute, [(conversation_id, extras)])
    # Sending reads everything before it: the sender's unread count stays at zero. A system
    # message reads so for its actor ("You left", "You renamed the group"): nobody's own act is
    # unread. (An actor who is not a member now, a site administrator, matches no row.)
    reader_id = sender.id if sender is not None else body.get("actor_id")
    if reader_id is not None:
        execute(SENDER_READ, {"c_id": conversation_id, "u_id": reader_id, "c_seq": seq})
    pos = next_stream_pos()
    values = {
        "conversation_id": conversation_id,
        "seq": seq,
        "sender_id": sender.id if sender else None,
        "type": body["type"],
        "body": body,
        "client_msg_id": client_msg_id,
        "stream_pos": pos,
        "created_at": now,
    }
    if extras is not None:
        values.update(extras)
    if forwarded:
        values["forwarded"] = True
    message_id = execute(_INSERT_MESSAGE, values).scalar_one()
    if extras is not None:
        store_mentions(execute, [mention_row(values, message_id)])
    execute(STAMP_CONVERSATION, {"c_id": conversation_id, "c_pos": pos})
    _loaded_rows_changed(conversation_id, reader_id, seq, pos, now)
    message = Message(id=message_id, **values)
    payload = presenters.message(message, sender)
    if recipients is None:
        recipients = active_member_ids(conversation_id)
    if sender is not None and len(recipients) > 2:
        recipients = without_blockers(recipients, sender.id)
    realtime.deliver_message_after_commit(conversation_id, seq, payload, [*recipients, *(also_to or [])])
    return message


def mention_row(values: dict, message_id: int) -> dict:
    """What `store_mentions` needs of a message stored with `values`."""
    return {
        "message_id": message_id,
        "conversation_id": values["conversation_id"],
        "seq": values["seq"],
        "sender_id": values["sender_id"],
        "mentions": values.get("mentions"),
        "mention_all": values.get("mention_all"),
    }


def _loaded_rows_changed(
    conversation_id: int, reader_id: int | None, seq: int, pos: int, now: datetime
) -> None:
    """Core statements bypass the session: rows it has loaded (the conversation, the sender's
    or the system message's actor's membership) are brought up to date by hand, so later reads
    in this transaction agree with the database."""
    loaded = db.session.identity_map
    conversation = loaded.get(identity_key(Conversation, conversation_id))
    if conversation is not None:
        set_committed_value(conversation, "last_seq", seq)
        set_committed_value(conversation, "stream_pos", pos)
        set_committed_value(conversation, "last_activity_at", now)
    if reader_id is not None:
        member = loaded.get(identity_key(ConversationMember, (conversation_id, reader_id)))
        if member is not None:
            set_committed_value(member, "read_seq", seq)


def without_blockers(user_ids: list[int], sender_id: int) -> list[int]:
    """Group members who blocked the sender don't receive their messages live."""
    blockers = set(
        db.session.scalars(
            select(Block.user_id).where(Block.blocked_user_id == sender_id, Block.user_id.in_(user_ids))
        )
    )
    return [user_id for user_id in user_ids if user_id not in blockers]


def notify_typing(user_id: int, conversation_id: int) -> None:
    """Tell the other members someone is typing. Only someone who may send there may type
    there, and typing reaches nobody a message would not (members who blocked the typist)."""
    context = send_context(user_id, conversation_id)
    check_can_speak(context)
    if context.peer is not None:
        others = [context.peer.id] if context.peer_active else []
    else:
        members = [uid for uid in active_member_ids(conversation_id) if uid != user_id]
        others = without_blockers(members, user_id)
    realtime.emit_to_users("typing", presenters.typing(conversation_id, context.sender), others)
