"""Conversations and messages: sending, reading, history, the conversation list and sync.

Ordering rules that keep this correct under concurrency:
- A message's `seq` comes from `UPDATE conversations SET last_seq = last_seq + 1 ... RETURNING`,
  so it is assigned under the conversation's row lock, in the same transaction as the insert.
- Every user-visible change also takes the next global stream position (`next_stream_pos`),
  *after* every other row lock of its transaction, so positions commit strictly in order and
  no transaction waits for a lock while holding the counter. Locks are always taken in the
  order conversation row, member rows, stream counter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from blinker import signal
from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app import presenters, realtime
from app.bots.state import shows_online
from app.errors import ApiError, not_found
from app.extensions import db
from app.media import services as media
from app.models import (
    Block,
    Conversation,
    ConversationMember,
    Friendship,
    Group,
    GroupMember,
    Message,
    Sanction,
    StreamCounter,
    User,
    utcnow,
)

HISTORY_PAGE_MAX = 100
SYNC_PAGE_MAX = 500

# Sent with (context, message=...) when send_message has stored a new message, before the
# commit: receivers queue their follow-up work with `realtime.on_commit` (the robot answers).
message_stored = signal("parley.message-stored")


# --- stream positions ----------------------------------------------------------------------


# Built once: it runs for every user-visible change.
_counter = StreamCounter.__table__
_NEXT_STREAM_POS = (
    update(_counter).where(_counter.c.id == 1).values(pos=_counter.c.pos + 1).returning(_counter.c.pos)
)


def next_stream_pos() -> int:
    """Take the next stream position; the row lock is held until this transaction ends."""
    return db.session.connection().execute(_NEXT_STREAM_POS).scalar_one()


def current_stream_pos() -> int:
    """Every change numbered up to the returned position is committed and visible."""
    return db.session.scalar(select(StreamCounter.pos).where(StreamCounter.id == 1))


def parse_cursor(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 19:
        raise ApiError("invalid_cursor", "The sync cursor is malformed.", 400, {"cursor": "not a cursor"})
    return int(raw)


# --- access --------------------------------------------------------------------------------


@dataclass
class SendContext:
    conversation: Conversation
    member: ConversationMember
    sender: User
    group: Group | None
    role: str | None
    member_muted_until: datetime | None
    site_muted: bool
    peer: User | None = None
    friends: bool = False
    blocked: bool = False
    peer_active: bool = False


def _mute_clause(user_id_column, now):
    return (
        select(Sanction.id)
        .where(
            Sanction.user_id == user_id_column,
            Sanction.kind == "mute",
            Sanction.lifted_at.is_(None),
            or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
        )
        .exists()
    )


def require_member(user_id: int, conversation_id: int, *, active: bool = True) -> ConversationMember:
    """The user's membership of the conversation; unknown conversations and strangers get 404."""
    member = db.session.get(ConversationMember, (conversation_id, user_id))
    if member is None:
        raise not_found("conversation")
    if active and not member.active:
        raise ApiError("not_member", "You are no longer a member of this conversation.", 403)
    return member


@functools.cache
def _send_context_query():
    """The statement of `_send_context`, built once: constructing this many-join statement
    costs several times the CPU the database needs to run it, on every message sent."""
    user_id = bindparam("user_id")
    peer_member = aliased(ConversationMember)
    peer = aliased(User)
    friends = (
        select(Friendship.id)
        .where(
            or_(
                and_(Friendship.user_a_id == user_id, Friendship.user_b_id == peer.id),
                and_(Friendship.user_a_id == peer.id, Friendship.user_b_id == user_id),
            )
        )
        .exists()
    )
    blocked = (
        select(Block.user_id)
        .where(
            or_(
                and_(Block.user_id == peer.id, Block.blocked_user_id == user_id),
                and_(Block.user_id == user_id, Block.blocked_user_id == peer.id),
            )
        )
        .exists()
    )
    return (
        select(
            Conversation,
            ConversationMember,
            User,
            Group,
            GroupMember.role,
            GroupMember.muted_until,
            _mute_clause(ConversationMember.user_id, bindparam("now")),
            peer,
            friends,
            blocked,
            peer_member.active,
        )
        .join(Conversation, Conversation.id == ConversationMember.conversation_id)
        .join(User, User.id == ConversationMember.user_id)
        .outerjoin(Group, Group.conversation_id == Conversation.id)
        .outerjoin(
            GroupMember,
            and_(GroupMember.group_id == Group.id, GroupMember.user_id == ConversationMember.user_id),
        )
        .outerjoin(
            peer_member,
            and_(
                Conversation.kind == "direct",
                peer_member.conversation_id == Conversation.id,
                peer_member.user_id != user_id,
            ),
        )
        .outerjoin(peer, peer.id == peer_member.user_id)
        .where(
            ConversationMember.conversation_id == bindparam("conversation_id"),
            ConversationMember.user_id == user_id,
        )
    )


def _send_context(user_id: int, conversation_id: int) -> SendContext:
    """Everything the right to speak depends on, in one query."""
    row = db.session.execute(
        _send_context_query(), {"user_id": user_id, "conversation_id": conversation_id, "now": utcnow()}
    ).first()
    if row is None:
        raise not_found("conversation")
    return SendContext(*row)


def check_can_speak(context: SendContext) -> None:
    if context.site_muted:
        raise ApiError("muted", "You are muted and cannot send messages.", 403)
    group = context.group
    if group is not None and group.dissolved_at is not None:
        raise ApiError("group_dissolved", "This group was dissolved; it is read-only.", 403)
    if not context.member.active:
        raise ApiError("not_member", "You are no longer a member of this conversation.", 403)
    if context.peer is not None and not (context.peer.is_bot or context.sender.is_bot):
        if context.blocked:
            raise ApiError("blocked", "You cannot message this user.", 403)
        if not context.friends:
            raise ApiError("not_friends", "You can only message your friends.", 403)
    if group is not None:
        if group.muted_all and context.role == "member":
            raise ApiError("group_muted", "Only the owner and admins can speak in this group now.", 403)
        if context.member_muted_until is not None and context.member_muted_until > utcnow():
            raise ApiError("member_muted", "You are muted in this group.", 403)


def notify_typing(user_id: int, conversation_id: int) -> None:
    """Tell the other members someone is typing. Only someone who may send there may type
    there, and typing reaches nobody a message would not (members who blocked the typist)."""
    context = _send_context(user_id, conversation_id)
    check_can_speak(context)
    if context.peer is not None:
        others = [context.peer.id] if context.peer_active else []
    else:
        members = [uid for uid in active_member_ids(conversation_id) if uid != user_id]
        others = _without_blockers(members, user_id)
    realtime.emit_to_users("typing", presenters.typing(conversation_id, context.sender), others)


# --- writing messages ----------------------------------------------------------------------


def active_member_ids(conversation_id: int) -> list[int]:
    return list(db.session.connection().scalars(_ACTIVE_MEMBER_IDS, {"conversation_id": conversation_id}))


def append_message(
    conversation_id: int,
    sender: User | None,
    body: dict,
    client_msg_id: str | None = None,
    also_to: list[int] | None = None,
    recipients: list[int] | None = None,
) -> Message:
    """Store a message with the next seq and stream position, and deliver it after commit to
    the active members (and `also_to`, e.g. members being removed, who see their notice).
    `recipients`: the active members, when the caller knows them already.

    The caller has checked the right to speak and commits. The returned message is not in the
    session: it was written with Core statements, which cost a fraction of the ORM's unit of
    work on the path every message takes (docs/PERFORMANCE.md).
    """
    now = utcnow()
    # Core statements on the session's connection: the ORM's execute adds nothing they need.
    execute = db.session.connection().execute
    seq = execute(_BUMP_SEQ, {"c_id": conversation_id, "c_now": now}).scalar_one()
    if sender is not None:
        # Sending reads everything before it: the sender's unread count stays at zero.
        execute(_SENDER_READ, {"c_id": conversation_id, "u_id": sender.id, "c_seq": seq})
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
    message_id = execute(_INSERT_MESSAGE, values).scalar_one()
    execute(_STAMP_CONVERSATION, {"c_id": conversation_id, "c_pos": pos})
    _loaded_rows_changed(conversation_id, sender, seq, pos, now)
    message = Message(id=message_id, **values)
    payload = presenters.message(message, sender)
    if recipients is None:
        recipients = active_member_ids(conversation_id)
    if sender is not None and len(recipients) > 2:
        recipients = _without_blockers(recipients, sender.id)
    realtime.deliver_message_after_commit(conversation_id, seq, payload, [*recipients, *(also_to or [])])
    return message


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
_SENDER_READ = (
    update(_members)
    .where(_members.c.conversation_id == bindparam("c_id"), _members.c.user_id == bindparam("u_id"))
    .values(read_seq=bindparam("c_seq"))
)
_INSERT_MESSAGE = _messages.insert().returning(_messages.c.id)
_STAMP_CONVERSATION = (
    update(_conversations)
    .where(_conversations.c.id == bindparam("c_id"))
    .values(stream_pos=bindparam("c_pos"))
)


def _loaded_rows_changed(
    conversation_id: int, sender: User | None, seq: int, pos: int, now: datetime
) -> None:
    """Core statements bypass the session: rows it has loaded (the conversation, the sender's
    membership) are brought up to date by hand, so later reads in this transaction agree with
    the database."""
    loaded = db.session.identity_map
    conversation = loaded.get(identity_key(Conversation, conversation_id))
    if conversation is not None:
        set_committed_value(conversation, "last_seq", seq)
        set_committed_value(conversation, "stream_pos", pos)
        set_committed_value(conversation, "last_activity_at", now)
    if sender is not None:
        member = loaded.get(identity_key(ConversationMember, (conversation_id, sender.id)))
        if member is not None:
            set_committed_value(member, "read_seq", seq)


def _without_blockers(user_ids: list[int], sender_id: int) -> list[int]:
    """Group members who blocked the sender don't receive their messages live."""
    blockers = set(
        db.session.scalars(
            select(Block.user_id).where(Block.blocked_user_id == sender_id, Block.user_id.in_(user_ids))
        )
    )
    return [user_id for user_id in user_ids if user_id not in blockers]


# Statements run for every message sent, built once (building one costs more CPU than SQLite
# takes to run it); their values are bound at execution.
_EXISTING = select(_messages.c.id).where(
    _messages.c.sender_id == bindparam("sender_id"), _messages.c.client_msg_id == bindparam("client_msg_id")
)
_ACTIVE_MEMBER_IDS = select(_members.c.user_id).where(
    _members.c.conversation_id == bindparam("conversation_id"), _members.c.active.is_(True)
)


def _existing(sender_id: int, client_msg_id: str) -> Message | None:
    """The message this sender already stored under `client_msg_id` (a resend), if any."""
    found = db.session.scalar(_EXISTING, {"sender_id": sender_id, "client_msg_id": client_msg_id})
    return None if found is None else db.session.get(Message, found)


def send_message(user_id: int, conversation_id: int, client_msg_id: str, body: dict) -> tuple[dict, bool]:
    """Send a message; returns its payload and whether it was new.

    A resend of a `client_msg_id` already stored returns the stored message and delivers
    nothing again. A new message, the common case, pays no lookup for that: a resend is caught
    by the unique (sender, client_msg_id) constraint when it is inserted, or looked up when the
    send is refused (a resend of a message stored before its sender was muted still returns it).
    """
    try:
        context = _send_context(user_id, conversation_id)
        check_can_speak(context)
        body, upload = media.resolve_body(user_id, conversation_id, body)
        recipients = None
        if context.peer is not None:
            # A direct conversation's members are known already: no query for them.
            recipients = [user_id, context.peer.id] if context.peer_active else [user_id]
        message = append_message(conversation_id, context.sender, body, client_msg_id, recipients=recipients)
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


def _replay(message: Message, user_id: int, conversation_id: int) -> dict:
    if message.conversation_id != conversation_id:
        raise ApiError(
            "duplicate_client_msg_id",
            "This client_msg_id was already used for another conversation.",
            409,
            {"client_msg_id": "already used"},
        )
    return presenters.message(message, db.session.get(User, user_id))


# --- read state ----------------------------------------------------------------------------


def mark_read(user_id: int, conversation_id: int, seq: int) -> dict:
    """Move the read position up to `seq` (never backwards, never past the last message)."""
    member = require_member(user_id, conversation_id, active=False)
    conversation = db.session.get(Conversation, conversation_id)
    visible_last = member.left_seq if member.left_seq is not None else conversation.last_seq
    target = min(seq, visible_last)
    if target <= member.read_seq:
        return {
            "conversation_id": conversation_id,
            "read_seq": member.read_seq,
            "unread": _unread(member, conversation),
        }
    db.session.execute(
        update(ConversationMember)
        .where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.user_id == user_id,
            ConversationMember.read_seq < target,
        )
        .values(read_seq=target)
    )
    pos = next_stream_pos()
    db.session.execute(
        update(ConversationMember)
        .where(ConversationMember.conversation_id == conversation_id, ConversationMember.user_id == user_id)
        .values(stream_pos=pos)
    )
    db.session.refresh(member)
    state = {
        "conversation_id": conversation_id,
        "read_seq": member.read_seq,
        "unread": _unread(member, conversation),
    }
    receipt = {"conversation_id": conversation_id, "user_id": user_id, "read_seq": member.read_seq}
    # The reader's own devices always learn their read position; the peer gets a receipt only
    # while neither of them blocked the other.
    realtime.emit_after_commit("conversation:read", {**receipt, "unread": state["unread"]}, [user_id])
    if conversation.kind == "direct":
        peers = db.session.scalars(
            select(ConversationMember.user_id).where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.active.is_(True),
                ConversationMember.user_id != user_id,
                ~_blocked_pair_clause(ConversationMember.user_id, user_id),
            )
        ).all()
        realtime.emit_after_commit("receipt:read", receipt, list(peers))
    db.session.commit()
    return state


def _unread(member: ConversationMember, conversation: Conversation) -> int:
    last = member.left_seq if member.left_seq is not None else conversation.last_seq
    return max(0, last - max(member.read_seq, member.joined_seq))


def visible_window(member: ConversationMember, conversation: Conversation) -> tuple[int, int]:
    """The seqs a member may see: after the point they joined, up to the point they left
    (the conversation's last message while they are still in)."""
    highest = member.left_seq if member.left_seq is not None else conversation.last_seq
    return member.joined_seq, highest


def readers(user_id: int, conversation_id: int, seq: int) -> dict:
    """Who has read message `seq`, derived from the members' read positions.

    Only for a message inside the caller's window: a former member learns nothing of what came
    after they left, a new member nothing of what came before they joined."""
    member = require_member(user_id, conversation_id, active=False)
    lowest, highest = visible_window(member, db.session.get(Conversation, conversation_id))
    message = None
    if lowest < seq <= highest:
        message = db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
        )
    if message is None:
        raise not_found("message")
    rows = db.session.execute(
        select(User, ConversationMember.read_seq)
        .join(ConversationMember, ConversationMember.user_id == User.id)
        .where(
            ConversationMember.conversation_id == conversation_id,
            ConversationMember.active.is_(True),
            ConversationMember.joined_seq < seq,
            User.id != message.sender_id,
            # People who blocked each other share no read receipts, either way.
            ~_blocked_pair_clause(User.id, user_id),
        )
        .order_by(User.id)
    ).all()
    read = [presenters.user_public(user) for user, read_seq in rows if read_seq >= seq]
    unread = [presenters.user_public(user) for user, read_seq in rows if read_seq < seq]
    return {"seq": seq, "read_by": read, "unread_by": unread}


# --- conversations -------------------------------------------------------------------------


def open_direct(user_id: int, peer_id: int) -> tuple[dict, bool]:
    """The direct conversation between two users, created (and announced) if it is new."""
    if peer_id == user_id:
        raise ApiError("invalid_peer", "You cannot open a conversation with yourself.", 400)
    peer = db.session.get(User, peer_id)
    if peer is None:
        raise not_found("user")
    me = db.session.get(User, user_id)
    if not (peer.is_bot or me.is_bot):
        if _is_blocked_pair(user_id, peer_id):
            raise ApiError("blocked", "You cannot message this user.", 403)
        if not _are_friends(user_id, peer_id):
            raise ApiError("not_friends", "You can only message your friends.", 403)
    low, high = sorted((user_id, peer_id))
    key = f"{low}:{high}"
    conversation = db.session.scalar(select(Conversation).where(Conversation.direct_key == key))
    created = False
    if conversation is None:
        conversation = Conversation(kind="direct", direct_key=key)
        db.session.add(conversation)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            conversation = db.session.scalar(select(Conversation).where(Conversation.direct_key == key))
        else:
            created = True
            add_members(conversation.id, [user_id, peer_id])
            stamp_members(conversation.id, [user_id, peer_id])
            db.session.commit()
    summary = conversation_summaries([user_id], conversation_ids=[conversation.id])[0]
    return summary, created


def _are_friends(user_id: int, other_id: int) -> bool:
    low, high = sorted((user_id, other_id))
    query = select(Friendship.id).where(Friendship.user_a_id == low, Friendship.user_b_id == high)
    return db.session.scalar(query) is not None


def _is_blocked_pair(user_id: int, other_id: int) -> bool:
    query = select(Block.user_id).where(
        or_(
            and_(Block.user_id == user_id, Block.blocked_user_id == other_id),
            and_(Block.user_id == other_id, Block.blocked_user_id == user_id),
        )
    )
    return db.session.scalar(query) is not None


def _blocked_pair_clause(one, other):
    """True when either of two users (columns or values) blocked the other."""
    return (
        select(Block.user_id)
        .where(
            or_(
                and_(Block.user_id == one, Block.blocked_user_id == other),
                and_(Block.user_id == other, Block.blocked_user_id == one),
            )
        )
        .exists()
    )


def add_members(conversation_id: int, user_ids: list[int]) -> None:
    """Make users members (or members again) from the conversation's current seq on, and
    announce the conversation to their devices after commit.

    Locks the conversation row, then the member rows; the caller takes the stream position
    last (`stamp_members`, or by appending a message) and commits.
    """
    conversation = db.session.scalar(
        select(Conversation).where(Conversation.id == conversation_id).with_for_update()
    )
    now = utcnow()
    for user_id in user_ids:
        member = db.session.get(ConversationMember, (conversation_id, user_id))
        if member is None:
            member = ConversationMember(conversation_id=conversation_id, user_id=user_id)
            db.session.add(member)
        member.active = True
        member.left_seq = None
        member.hidden = False
        member.joined_seq = conversation.last_seq
        member.read_seq = conversation.last_seq
        member.joined_at = now
        member.updated_at = now
    db.session.flush()
    realtime.before_commit(lambda: announce_conversation(conversation_id, user_ids))


def stamp_members(conversation_id: int, user_ids: list[int]) -> None:
    """Mark these members' own state as changed, for sync. Call after their rows are locked."""
    pos = next_stream_pos()
    db.session.execute(
        update(ConversationMember)
        .where(
            ConversationMember.conversation_id == conversation_id, ConversationMember.user_id.in_(user_ids)
        )
        .values(stream_pos=pos)
    )


def announce_conversation(conversation_id: int, user_ids: list[int]) -> None:
    """Send each user their own summary of the conversation once the transaction commits."""
    for summary in conversation_summaries(user_ids, conversation_ids=[conversation_id]):
        user_id = summary.pop("_user_id", user_ids[0])
        realtime.emit_after_commit("conversation:new", summary, [user_id], first=True)


def _columns_of(entity) -> list:
    """The column attributes of a mapped class (or an alias of one), in mapper order."""
    return [getattr(entity, attr.key) for attr in sa_inspect(entity).mapper.column_attrs]


def _plain_entities(row, shape: list[tuple[list[str], int] | None]) -> list:
    """Split a row of plain columns into one attribute object per entity (None where an outer
    join found nothing); a `None` in `shape` passes one column through as it is. Rows this way
    cost a fraction of ORM instances, which the conversation list (hundreds of items, five
    entities each) would otherwise spend most of its time building."""
    values, at, parts = tuple(row), 0, []
    for part in shape:
        if part is None:
            parts.append(values[at])
            at += 1
            continue
        keys, key_index = part
        chunk = values[at : at + len(keys)]
        at += len(keys)
        found = chunk[key_index] is not None
        parts.append(SimpleNamespace(**dict(zip(keys, chunk, strict=True))) if found else None)
    return parts


def _shape_of(*models) -> list[tuple[list[str], int] | None]:
    shape: list[tuple[list[str], int] | None] = []
    for model in models:
        if model is None:
            shape.append(None)
            continue
        keys = [attr.key for attr in sa_inspect(model).column_attrs]
        primary = sa_inspect(model).primary_key[0].key
        shape.append((keys, keys.index(primary)))
    return shape


# member, conversation, group, peer, last message, its sender, the peer's read position, whether
# one of the pair blocked the other
_SUMMARY_SHAPE = _shape_of(ConversationMember, Conversation, Group, User, Message, User, None, None)


@functools.cache
def _summaries_query():
    """The conversation list's statement without its filters, built once (it names about a hundred
    columns, which costs more to build than SQLite takes to run it)."""
    member = ConversationMember
    peer_member = aliased(ConversationMember)
    peer = aliased(User)
    last = aliased(Message)
    last_sender = aliased(User)
    visible_last = case((member.left_seq.is_not(None), member.left_seq), else_=Conversation.last_seq)
    return (
        select(
            *_columns_of(member),
            *_columns_of(Conversation),
            *_columns_of(Group),
            *_columns_of(peer),
            *_columns_of(last),
            *_columns_of(last_sender),
            peer_member.read_seq,
            _blocked_pair_clause(peer.id, member.user_id),
        )
        .join(Conversation, Conversation.id == member.conversation_id)
        .outerjoin(Group, Group.conversation_id == Conversation.id)
        .outerjoin(
            peer_member,
            and_(
                Conversation.kind == "direct",
                peer_member.conversation_id == Conversation.id,
                peer_member.user_id != member.user_id,
            ),
        )
        .outerjoin(peer, peer.id == peer_member.user_id)
        .outerjoin(
            last,
            and_(
                last.conversation_id == Conversation.id,
                last.seq == visible_last,
                last.seq > member.joined_seq,
            ),
        )
        .outerjoin(last_sender, last_sender.id == last.sender_id)
        .where(member.user_id.in_(bindparam("user_ids", expanding=True)), member.hidden.is_(False))
        .order_by(
            member.user_id, member.pinned.desc(), Conversation.last_activity_at.desc(), Conversation.id.desc()
        )
    )


def conversation_summaries(
    user_ids: list[int],
    *,
    conversation_ids: list[int] | None = None,
    changed_after: int | None = None,
    changed_upto: int | None = None,
) -> list[dict]:
    """Conversation list items for `user_ids`, pinned first, then by last activity.

    One query whatever the number of conversations. With several users, each item carries
    `_user_id`, the user it was made for.
    """
    member = ConversationMember
    query = _summaries_query()
    if conversation_ids is not None:
        query = query.where(member.conversation_id.in_(conversation_ids))
    if changed_after is not None:
        upto = changed_upto if changed_upto is not None else 2**62
        query = query.where(
            or_(
                and_(Conversation.stream_pos > changed_after, Conversation.stream_pos <= upto),
                and_(member.stream_pos > changed_after, member.stream_pos <= upto),
            )
        )
    rows = [
        _plain_entities(row, _SUMMARY_SHAPE)
        for row in db.session.connection().execute(query, {"user_ids": user_ids})
    ]
    online = realtime.presence().online({row[3].id for row in rows if row[3] is not None})
    items = []
    for membership, conversation, group, peer_user, last_message, sender, peer_read_seq, blocked in rows:
        item = presenters.conversation(
            membership,
            conversation,
            group,
            peer_user,
            last_message,
            sender,
            unread=_unread(membership, conversation),
            # Presence crosses no block, in either direction (app/presence_service.py).
            online=peer_user is not None
            and not blocked
            and (peer_user.id in online or shows_online(peer_user)),
            # No read receipts between people who blocked each other.
            peer_read_seq=None if blocked else peer_read_seq,
        )
        if len(user_ids) > 1:
            item["_user_id"] = membership.user_id
        items.append(item)
    return items


def conversation_list(user_id: int) -> dict:
    cursor = current_stream_pos()
    return {"conversations": conversation_summaries([user_id]), "cursor": str(cursor)}


def set_member_flags(user_id: int, conversation_id: int, changes: dict) -> dict:
    """Pin, mute notifications of, or hide a conversation for oneself; synced to every device."""
    member = require_member(user_id, conversation_id, active=False)
    for name in ("pinned", "muted", "hidden"):
        if name in changes:
            setattr(member, name, changes[name])
    member.updated_at = utcnow()
    db.session.flush()
    member.stream_pos = next_stream_pos()
    db.session.commit()
    summary_list = conversation_summaries([user_id], conversation_ids=[conversation_id])
    summary = summary_list[0] if summary_list else {"id": conversation_id, "hidden": True}
    realtime.emit_to_users("conversation:update", summary, [user_id])
    return summary


# --- history and sync ----------------------------------------------------------------------


def history(
    user_id: int,
    conversation_id: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> dict:
    """A page of messages by seq, oldest first, within what the member may see."""
    member = require_member(user_id, conversation_id, active=False)
    lowest, highest = visible_window(member, db.session.get(Conversation, conversation_id))
    query = (
        select(Message, User)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Message.conversation_id == conversation_id, Message.seq > lowest, Message.seq <= highest)
    )
    if after_seq is not None:
        query = query.where(Message.seq > after_seq)
        if before_seq is not None:
            query = query.where(Message.seq < before_seq)
        rows = db.session.execute(query.order_by(Message.seq).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = rows[:limit]
    else:
        if before_seq is not None:
            query = query.where(Message.seq < before_seq)
        rows = db.session.execute(query.order_by(Message.seq.desc()).limit(limit + 1)).all()
        has_more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    return {
        "messages": [presenters.message(message, sender) for message, sender in rows],
        "has_more": has_more,
    }


def sync(user_id: int, cursor: int, limit: int = SYNC_PAGE_MAX) -> dict:
    """Everything that changed for the user after `cursor`: new (or changed) messages in their
    conversations in stream order, and the current summary of each conversation touched.

    Replaying pages until `has_more` is false leaves a client in the state a fresh load gives.
    """
    high = current_stream_pos()
    member = ConversationMember
    rows = db.session.execute(
        select(Message, User)
        .join(
            member,
            and_(member.conversation_id == Message.conversation_id, member.user_id == user_id),
        )
        .outerjoin(User, User.id == Message.sender_id)
        .where(
            Message.stream_pos > cursor,
            Message.stream_pos <= high,
            Message.seq > member.joined_seq,
            or_(member.left_seq.is_(None), Message.seq <= member.left_seq),
        )
        .order_by(Message.stream_pos)
        .limit(limit + 1)
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    upto = rows[-1][0].stream_pos if has_more else high
    summaries = conversation_summaries([user_id], changed_after=cursor, changed_upto=upto)
    return {
        "messages": [presenters.message(message, sender) for message, sender in rows],
        "conversations": summaries,
        "cursor": str(upto),
        "has_more": has_more,
    }
