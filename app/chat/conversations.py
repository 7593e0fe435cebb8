"""Conversations: opening direct ones, membership changes, and the conversation list (one query
for any number of items) with each member's own flags."""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import Boolean, Integer, and_, bindparam, case, func, or_, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import presenters, realtime
from app.chat.access import are_friends, blocked_pair_clause, is_blocked_pair, require_member
from app.chat.read import unread_count
from app.chat.stream import current_stream_pos, next_stream_pos
from app.errors import ApiError, not_found
from app.extensions import db
from app.models import (
    Conversation,
    ConversationMember,
    Group,
    GroupMember,
    Message,
    MessageHide,
    MessageMention,
    User,
    utcnow,
)
from app.models.types import UTCDateTime
from app.presence_service import shows_online
from app.validation import MAX_ID

# The conversation list's pages: the default size and the largest a client may ask for.
LIST_PAGE_SIZE = 50
LIST_PAGE_MAX = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_CURSOR_KEY = re.compile(r"([01])\.(-?[0-9]{1,18})\.([0-9]{1,10})")


def seen_seq(member, conversation=Conversation):
    """Up to where nothing counts as unread, as SQL: the member's read position, the point they
    joined, or what the retention policy purged, whichever is highest."""
    base = case((member.read_seq > member.joined_seq, member.read_seq), else_=member.joined_seq)
    return case((conversation.purged_seq > base, conversation.purged_seq), else_=base)


def listed(member, conversation=Conversation):
    """On the member's conversation list: never deleted from it, or deleted and a message came
    since (as in WeChat, a new message brings a deleted chat back; deleting marks it read, and
    reading it again clears the flag). A group the member left stays off the list."""
    seen = seen_seq(member, conversation)
    return or_(member.hidden.is_(False), and_(member.active.is_(True), conversation.last_seq > seen))


def open_direct(user_id: int, peer_id: int, *, commit: bool = True) -> tuple[dict, bool]:
    """The direct conversation between two users, created (and announced) if it is new.
    `commit=False`: a new one is left in the transaction, announced only if the caller commits
    (the server API sends a first message in the same transaction: a refusal leaves nothing)."""
    if peer_id == user_id:
        raise ApiError("invalid_peer", "You cannot open a conversation with yourself.", 400)
    peer = db.session.get(User, peer_id)
    if peer is None:
        raise not_found("user")
    me = db.session.get(User, user_id)
    if not (peer.is_bot or me.is_bot):
        if is_blocked_pair(user_id, peer_id):
            raise ApiError("blocked", "You cannot message this user.", 403)
        if not are_friends(user_id, peer_id):
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
            if commit:
                db.session.commit()
    member = None if created else db.session.get(ConversationMember, (conversation.id, user_id))
    reopened = member is not None and member.hidden
    if reopened:
        # Opening a chat deleted from the list puts it back there, on every device of the user.
        member.hidden = False
        member.updated_at = utcnow()
        db.session.flush()
        member.stream_pos = next_stream_pos()
        db.session.flush()
    summary = conversation_summaries([user_id], conversation_ids=[conversation.id])[0]
    if reopened:
        realtime.emit_after_commit("conversation:update", summary, [user_id])
        if commit:
            db.session.commit()
    return summary, created


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


def announce_update(conversation_id: int, user_ids: list[int]) -> None:
    """After commit, send each user their summary of the conversation (`conversation:update`):
    their own state in it changed (a group mute or role: who may speak). Call before the commit."""

    def prepare():
        for summary in conversation_summaries(user_ids, conversation_ids=[conversation_id]):
            realtime.emit_after_commit("conversation:update", summary, [summary.pop("_user_id", user_ids[0])])

    realtime.before_commit(prepare)


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
# one of the pair blocked the other, the member's unread mentions and the first of them, whether
# the member deleted the last message for themselves, and in a group the member's role and the
# end of their mute there
_SUMMARY_SHAPE = _shape_of(ConversationMember, Conversation, Group, User, Message, User, *[None] * 7)


def _unread_mentions(member, visible_last):
    """The member's unread mentions (count, first seq) as correlated subqueries on the mention
    rows' key: after their read position, up to the last message they may see. A recalled
    message's mention rows are deleted at recall, so no message is read for this."""
    mention = MessageMention
    seen = seen_seq(member)
    unread = (
        mention.user_id == member.user_id,
        mention.conversation_id == member.conversation_id,
        mention.seq > seen,
        mention.seq <= visible_last,
    )
    count = select(func.count()).select_from(mention).where(*unread).scalar_subquery()
    first = select(func.min(mention.seq)).where(*unread).scalar_subquery()
    return count, first


def _hidden_for(member, message):
    """Whether the member deleted `message` for themselves (false when there is none)."""
    hidden = MessageHide
    return (
        select(hidden.message_id)
        .where(hidden.user_id == member.user_id, hidden.message_id == message.id)
        .exists()
    )


def _previews_not_hidden(rows: list[list]) -> None:
    """Give each item whose last message its member deleted for themselves the newest message of
    their window they did not delete (or none), in place. The list's statement finds only the
    last message (a join on its seq); this second statement runs only when a page has such items,
    for those conversations only."""
    wanted = {(row[0].user_id, row[0].conversation_id): row for row in rows if row[10]}
    if not wanted:
        return
    member = ConversationMember
    shown = aliased(Message)
    hidden = (
        select(MessageHide.message_id)
        .where(MessageHide.user_id == member.user_id, MessageHide.message_id == shown.id)
        .correlate(member, shown)
    )
    newest = (
        select(func.max(shown.seq))
        .where(
            shown.conversation_id == member.conversation_id,
            shown.seq > member.joined_seq,
            shown.seq <= func.coalesce(member.left_seq, Conversation.last_seq),
            ~hidden.exists(),
        )
        .correlate(member, Conversation)
        .scalar_subquery()
    )
    found = db.session.execute(
        select(member.user_id, member.conversation_id, Message, User)
        .join(Conversation, Conversation.id == member.conversation_id)
        .join(Message, and_(Message.conversation_id == member.conversation_id, Message.seq == newest))
        .outerjoin(User, User.id == Message.sender_id)
        .where(tuple_(member.user_id, member.conversation_id).in_(list(wanted)))
    ).all()
    for row in wanted.values():
        row[4] = row[5] = None
    for user_id, conversation_id, message, sender in found:
        wanted[user_id, conversation_id][4:6] = [message, sender]


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
            blocked_pair_clause(peer.id, member.user_id),
            *_unread_mentions(member, visible_last),
            _hidden_for(member, last),
            GroupMember.role,
            GroupMember.muted_until,
        )
        .join(Conversation, Conversation.id == member.conversation_id)
        .outerjoin(Group, Group.conversation_id == Conversation.id)
        .outerjoin(GroupMember, and_(GroupMember.group_id == Group.id, GroupMember.user_id == member.user_id))
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
        .where(member.user_id.in_(bindparam("user_ids", expanding=True)), listed(member))
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
    after: tuple[bool, datetime, int] | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Conversation list items for `user_ids`, pinned first, then by last activity, then by id
    (newest first).

    One query whatever the number of conversations (a second one only when members deleted the
    last message for themselves: `_previews_not_hidden`). With several users, each item carries
    `_user_id`, the user it was made for. `after` (a list key, see `_list_key`) and `limit` cut
    one page out of a single user's list with a keyset condition that follows that order.
    """
    member = ConversationMember
    query, params = _summaries_query(), {"user_ids": user_ids}
    if limit is not None:
        query = _page_query(after is not None)
        params |= {"page_user": user_ids[0], "page_size": limit}
        if after is not None:
            params |= dict(zip(("after_pinned", "after_activity", "after_id"), after, strict=True))
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
    rows = [_plain_entities(row, _SUMMARY_SHAPE) for row in db.session.connection().execute(query, params)]
    _previews_not_hidden(rows)
    online = realtime.presence().online({row[3].id for row in rows if row[3] is not None})
    now = utcnow()
    items = []
    for row in rows:
        membership, conversation, group, peer_user, last_message, sender, peer_read_seq, blocked = row[:8]
        unread_mentions, mention_seq = row[8:10]
        role, muted_until = row[11:13]
        item = presenters.conversation(
            membership,
            conversation,
            group,
            peer_user,
            last_message,
            sender,
            unread=unread_count(membership, conversation),
            # Presence crosses no block, in either direction (app/presence_service.py).
            online=peer_user is not None
            and not blocked
            and (peer_user.id in online or shows_online(peer_user)),
            # No read receipts between people who blocked each other.
            peer_read_seq=None if blocked else peer_read_seq,
            unread_mentions=unread_mentions or 0,
            mention_seq=mention_seq,
            my_role=role,
            my_muted_until=muted_until if muted_until is not None and muted_until > now else None,
        )
        if len(user_ids) > 1:
            item["_user_id"] = membership.user_id
        items.append(item)
    return items


@functools.cache
def _page_query(keyset: bool):
    """One page of one user's list: the page's conversations are picked first (members and
    conversations only, in the list's order, after the cursor's key with `keyset`), and only
    they get the list's other joins. Built once per variant; the values are bound per call."""
    member = ConversationMember
    page = (
        select(member.conversation_id)
        .join(Conversation, Conversation.id == member.conversation_id)
        .where(member.user_id == bindparam("page_user"), listed(member))
    )
    if keyset:
        pinned = bindparam("after_pinned", type_=Boolean)
        activity = bindparam("after_activity", type_=UTCDateTime)
        conversation_id = bindparam("after_id", type_=Integer)
        page = page.where(
            or_(
                member.pinned < pinned,
                and_(
                    member.pinned == pinned,
                    or_(
                        Conversation.last_activity_at < activity,
                        and_(Conversation.last_activity_at == activity, Conversation.id < conversation_id),
                    ),
                ),
            )
        )
    page = page.order_by(
        member.pinned.desc(), Conversation.last_activity_at.desc(), Conversation.id.desc()
    ).limit(bindparam("page_size", type_=Integer))
    return _summaries_query().where(member.conversation_id.in_(page))


def _list_key(item: dict) -> tuple[bool, datetime, int]:
    return bool(item["pinned"]), datetime.fromisoformat(item["last_activity_at"]), item["id"]


def encode_list_cursor(key: tuple[bool, datetime, int]) -> str:
    """An opaque cursor: the last item's place in the list's order."""
    pinned, activity, conversation_id = key
    micros = (activity - _EPOCH) // timedelta(microseconds=1)
    raw = f"{int(pinned)}.{micros}.{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_list_cursor(raw: str) -> tuple[bool, datetime, int]:
    invalid = ApiError("invalid_cursor", "The list cursor is malformed.", 400, {"cursor": "not a cursor"})
    if not raw or len(raw) > 64 or not _CURSOR_TEXT.fullmatch(raw):
        raise invalid
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    found = _CURSOR_KEY.fullmatch(text)
    if found is None or not 1 <= int(found[3]) <= MAX_ID:
        raise invalid
    try:
        activity = _EPOCH + timedelta(microseconds=int(found[2]))
    except OverflowError:
        raise invalid from None
    return found[1] == "1", activity, int(found[3])


def conversation_list(user_id: int, *, cursor: str | None = None, limit: int = LIST_PAGE_SIZE) -> dict:
    """One page of the conversation list and the next page's cursor (None on the last page).

    The first page also carries the stream cursor to catch up from, and the unread counts the tab
    badge needs beyond the page: `unread_total` over every conversation of the list that is not
    muted, and `unread_elsewhere`, those counts for the conversations not on this page. Later
    pages are cut after the cursor's place in the list: an item whose activity moved between two
    requests may be seen on neither or both, which the client's live updates and sync cover."""
    after = parse_list_cursor(cursor) if cursor is not None else None
    stream = current_stream_pos()
    rows = conversation_summaries([user_id], after=after, limit=limit + 1)
    items, following = rows[:limit], None
    if len(rows) > limit:
        following = encode_list_cursor(_list_key(items[-1]))
    page = {"conversations": items, "cursor": str(stream), "next": following}
    if after is None:
        unread = _unread_counts(user_id)
        on_page = {item["id"] for item in items}
        page["unread_total"] = sum(unread.values())
        page["unread_elsewhere"] = {
            str(conversation_id): count
            for conversation_id, count in unread.items()
            if conversation_id not in on_page
        }
    return page


def _unread_counts(user_id: int) -> dict[int, int]:
    """Unread counts of the user's listed, un-muted conversations that have any (one query)."""
    rows = db.session.connection().execute(_unread_query(), {"user_id": user_id})
    return {conversation_id: count for conversation_id, count in rows}


@functools.cache
def _unread_query():
    """What `unread_count` computes per item, for every listed un-muted conversation at once."""
    member = ConversationMember
    last = case((member.left_seq.is_not(None), member.left_seq), else_=Conversation.last_seq)
    seen = seen_seq(member)
    return (
        select(member.conversation_id, last - seen)
        .join(Conversation, Conversation.id == member.conversation_id)
        .where(
            member.user_id == bindparam("user_id"),
            listed(member),
            member.muted.is_(False),
            last > seen,
        )
    )


def set_member_flags(user_id: int, conversation_id: int, changes: dict) -> dict:
    """Pin, mute notifications of, or hide a conversation for oneself; synced to every device."""
    member = require_member(user_id, conversation_id, active=False)
    for name in ("pinned", "muted", "hidden"):
        if name in changes:
            setattr(member, name, changes[name])
    if changes.get("hidden"):
        # Deleting a chat from the list reads it: it comes back with the next message only.
        last_seq = db.session.scalar(select(Conversation.last_seq).where(Conversation.id == conversation_id))
        visible_last = member.left_seq if member.left_seq is not None else last_seq
        member.read_seq = max(member.read_seq, visible_last)
    member.updated_at = utcnow()
    db.session.flush()
    member.stream_pos = next_stream_pos()
    db.session.commit()
    summary_list = conversation_summaries([user_id], conversation_ids=[conversation_id])
    summary = summary_list[0] if summary_list else {"id": conversation_id, "hidden": True}
    realtime.emit_to_users("conversation:update", summary, [user_id])
    return summary
