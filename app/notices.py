"""System notices: messages with no sender that a company's backend sends through the server API.

A notice to users lands in each user's **notice conversation** (kind `notice`, `direct_key`
`notice:<user id>`, the user its only member, made on first use). It is read-only for everyone
(`check_can_speak` refuses `read_only`), so only this module writes there. A notice to a group
is one system message in the group's conversation.

Up to `MAX_NOTICE_USERS` users take one call and one transaction, with a fixed number of
statements whatever their number (as the group commit does, app/chat/pipeline.py): the missing
conversations and their members are inserted in one statement each, every conversation's seq
is raised by one statement, the stream positions are taken at once, and the messages are one
multi-row INSERT. Deliveries leave after the commit; `/sync` carries the same messages (and the
new conversations' summaries) to devices that were away.

Idempotency: `client_msg_id` names a notice. The unique (sender, client_msg_id) does not hold
for messages with no sender, so a resend is found by looking: a user (or group) whose
conversation already holds a senderless message with that id is answered with it, not sent
another. The conversations are locked (a write on SQLite) before that look, so two calls with
the same id cannot both store.
"""

from __future__ import annotations

from sqlalchemy import JSON, bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from app import presenters, realtime
from app.chat.conversations import conversation_summaries
from app.chat.send import STAMP_CONVERSATION, append_message
from app.chat.stream import take_stream_positions
from app.errors import ApiError
from app.extensions import db
from app.groups.services import get_group, system_body
from app.locales import _l
from app.models import Conversation, ConversationMember, Message, User, utcnow
from app.models.types import UTCDateTime
from app.push import sender as push

MAX_NOTICE_USERS = 500
MAX_NOTICE_TEXT = 2000
NOTICE_EVENT = "notice"

_conversations = Conversation.__table__
_members = ConversationMember.__table__
_messages = Message.__table__
_INSERT_MESSAGES = _messages.insert().returning(_messages.c.conversation_id, _messages.c.seq, _messages.c.id)
# The same on PostgreSQL as three arrays: a 500-row VALUES list is a statement psycopg parses anew
# each time (too long for its cache), which cost ten times the database's own work.
_INSERT_MESSAGES_PG = text(
    "INSERT INTO messages"
    " (conversation_id, seq, sender_id, type, body, client_msg_id, stream_pos, created_at)"
    " SELECT c, s, NULL, 'system', :body, :client_msg_id, p, :now"
    " FROM unnest(CAST(:cs AS bigint[]), CAST(:ss AS bigint[]), CAST(:ps AS bigint[])) AS t(c, s, p)"
    " RETURNING conversation_id, seq, id"
).bindparams(bindparam("body", type_=JSON), bindparam("now", type_=UTCDateTime))
# Every conversation of the call raised by one, in one statement.
_BUMP_ALL = (
    update(_conversations)
    .where(_conversations.c.id.in_(bindparam("ids", expanding=True)))
    .values(last_seq=_conversations.c.last_seq + 1, last_activity_at=bindparam("now"))
    .returning(_conversations.c.id, _conversations.c.last_seq)
)
# The lock taken before the look for resends: rows in id order on PostgreSQL (the order the
# group commit takes them in); on SQLite, any write takes the database's one write lock.
_LOCK_PG = (
    select(_conversations.c.id)
    .where(_conversations.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_conversations.c.id)
    .with_for_update()
)
_LOCK_SQLITE = (
    update(_conversations)
    .where(_conversations.c.id.in_(bindparam("ids", expanding=True)))
    .values(last_seq=_conversations.c.last_seq)
)
# A user who took their notice conversation off their list gets it back with the next notice.
_UNHIDE = (
    update(_members)
    .where(_members.c.conversation_id.in_(bindparam("ids", expanding=True)), _members.c.hidden.is_(True))
    .values(hidden=False, updated_at=bindparam("now"))
)
_RESENT = select(_messages).where(
    _messages.c.conversation_id.in_(bindparam("ids", expanding=True)),
    _messages.c.sender_id.is_(None),
    _messages.c.client_msg_id == bindparam("client_msg_id"),
)


def notice_key(user_id: int) -> str:
    return f"notice:{user_id}"


def notice_body(text: str) -> dict:
    return system_body(NOTICE_EVENT, None, text)


def send_user_notices(user_ids: list[int], text: str, client_msg_id: str | None = None) -> list[dict]:
    """One notice in each user's notice conversation, all in one transaction; returns
    `[{"user_id", "conversation_id", "message", "new"}]` in the order of `user_ids`.

    Unknown or deleted users refuse the whole call (`invalid_input`, their ids in `fields`):
    nothing is written, so a corrected call can simply be repeated."""
    user_ids = list(dict.fromkeys(user_ids))
    found = set(db.session.scalars(select(User.id).where(User.id.in_(user_ids), User.deleted_at.is_(None))))
    missing = [user_id for user_id in user_ids if user_id not in found]
    if missing:
        listed = ", ".join(str(user_id) for user_id in missing[:20])
        raise ApiError(
            "invalid_input",
            "Some users do not exist or were deleted; nothing was sent.",
            400,
            {"user_ids": _l("unknown users: %(ids)s", ids=listed)},
        )
    now = utcnow()
    execute = db.session.connection().execute
    conversation_of, created = _notice_conversations(user_ids, now)
    ids = sorted(conversation_of.values())
    execute(_LOCK_PG if db.engine.dialect.name == "postgresql" else _LOCK_SQLITE, {"ids": ids})
    resent: dict[int, dict] = {}
    if client_msg_id is not None:
        for row in execute(_RESENT, {"ids": ids, "client_msg_id": client_msg_id}):
            resent[row.conversation_id] = presenters.message(row, None)
    fresh = [user_id for user_id in user_ids if conversation_of[user_id] not in resent]
    if fresh:
        # Member rows after the conversations, before the stream counter (app/chat/stream.py).
        execute(_UNHIDE, {"ids": [conversation_of[user_id] for user_id in fresh], "now": now})
    stored = _append_notices([conversation_of[user_id] for user_id in fresh], text, client_msg_id, now)
    for user_id in fresh:
        payload = stored[conversation_of[user_id]]
        realtime.deliver_message_after_commit(payload["conversation_id"], payload["seq"], payload, [user_id])
    push.queue_notices([stored[conversation_of[user_id]] for user_id in fresh])
    if created:
        new = {user_id: conversation_of[user_id] for user_id in created}
        realtime.before_commit(lambda: _announce(new))
    db.session.commit()
    answers = []
    for user_id in user_ids:
        conversation_id = conversation_of[user_id]
        is_new = conversation_id not in resent
        message = stored[conversation_id] if is_new else resent[conversation_id]
        answers.append(
            {"user_id": user_id, "conversation_id": conversation_id, "message": message, "new": is_new}
        )
    return answers


def send_group_notice(group_id: int, text: str, client_msg_id: str | None = None) -> dict:
    """One system notice in a group's conversation, delivered to its active members; returns
    `{"group_id", "conversation_id", "message", "new"}`. A dissolved group is read-only."""
    group = get_group(group_id, lock=True)
    if group.dissolved_at is not None:
        raise ApiError("group_dissolved", "This group was dissolved; it is read-only.", 409)
    conversation_id = group.conversation_id
    execute = db.session.connection().execute
    if db.engine.dialect.name != "postgresql":
        execute(_LOCK_SQLITE, {"ids": [conversation_id]})  # the group row lock does it on PostgreSQL
    if client_msg_id is not None:
        row = execute(_RESENT, {"ids": [conversation_id], "client_msg_id": client_msg_id}).first()
        if row is not None:
            db.session.rollback()
            return {
                "group_id": group_id,
                "conversation_id": conversation_id,
                "message": presenters.message(row, None),
                "new": False,
            }
    message = append_message(conversation_id, None, notice_body(text), client_msg_id)
    payload = presenters.message(message, None)
    push.queue_notices([payload], direct=False)
    db.session.commit()
    return {"group_id": group_id, "conversation_id": conversation_id, "message": payload, "new": True}


def _notice_conversations(user_ids: list[int], now) -> tuple[dict[int, int], list[int]]:
    """Each user's notice conversation id, made (with its one member) where missing; and the
    users whose conversation this call made. A conversation made meanwhile by another call
    is taken as found (the unique direct_key).

    Locks are taken in one global order on this path: the new keys in user id order (an insert
    waits on a key another call inserted and has not committed), then the conversation rows in
    id order (`_LOCK_PG`), then the stream counter."""
    keys = {notice_key(user_id): user_id for user_id in user_ids}
    execute = db.session.connection().execute
    found = execute(
        select(_conversations.c.direct_key, _conversations.c.id).where(
            _conversations.c.direct_key.in_(list(keys))
        )
    ).all()
    conversation_of = {keys[key]: conversation_id for key, conversation_id in found}
    # In user id order, whatever the request's: two calls inserting the same users' keys in
    # opposite orders would each wait for a key the other holds (a deadlock on PostgreSQL).
    wanted = sorted(user_id for user_id in user_ids if user_id not in conversation_of)
    if not wanted:
        return conversation_of, []
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    rows = [
        {
            "kind": "notice",
            "direct_key": notice_key(user_id),
            "last_seq": 0,
            "stream_pos": 0,
            "last_activity_at": now,
            "created_at": now,
        }
        for user_id in wanted
    ]
    inserted = execute(
        dialect.insert(_conversations)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["direct_key"])
        .returning(_conversations.c.direct_key, _conversations.c.id)
    ).all()
    created = sorted(keys[key] for key, _ in inserted)
    conversation_of.update({keys[key]: conversation_id for key, conversation_id in inserted})
    if len(inserted) < len(wanted):  # made by a call running alongside
        late = [notice_key(user_id) for user_id in wanted if user_id not in conversation_of]
        for key, conversation_id in execute(
            select(_conversations.c.direct_key, _conversations.c.id).where(
                _conversations.c.direct_key.in_(late)
            )
        ):
            conversation_of[keys[key]] = conversation_id
    if created:
        execute(
            _members.insert(),
            [
                {
                    "conversation_id": conversation_of[user_id],
                    "user_id": user_id,
                    "read_seq": 0,
                    "joined_seq": 0,
                    "left_seq": None,
                    "active": True,
                    "muted": False,
                    "pinned": False,
                    "hidden": False,
                    "stream_pos": 0,
                    "joined_at": now,
                    "updated_at": now,
                }
                for user_id in created
            ],
        )
    return conversation_of, created


def _append_notices(
    conversation_ids: list[int], text: str, client_msg_id: str | None, now
) -> dict[int, dict]:
    """One notice message at the end of each conversation (locked already), in a fixed number of
    statements; returns each one's payload by conversation id. The caller queues the deliveries."""
    if not conversation_ids:
        return {}
    execute = db.session.connection().execute
    seqs = dict(execute(_BUMP_ALL, {"ids": sorted(conversation_ids), "now": now}).all())
    pos = take_stream_positions(len(conversation_ids))
    body = notice_body(text)
    rows = []
    for offset, conversation_id in enumerate(conversation_ids):
        rows.append(
            {
                "conversation_id": conversation_id,
                "seq": seqs[conversation_id],
                "sender_id": None,
                "type": "system",
                "body": body,
                "client_msg_id": client_msg_id,
                "stream_pos": pos + offset,
                "created_at": now,
            }
        )
    if db.engine.dialect.name == "postgresql":
        arrays = {
            "cs": [row["conversation_id"] for row in rows],
            "ss": [row["seq"] for row in rows],
            "ps": [row["stream_pos"] for row in rows],
        }
        result = execute(
            _INSERT_MESSAGES_PG, {**arrays, "body": body, "client_msg_id": client_msg_id, "now": now}
        )
    else:
        result = execute(_INSERT_MESSAGES, rows)
    inserted = {(c_id, seq): m_id for c_id, seq, m_id in result}
    execute(
        STAMP_CONVERSATION, [{"c_id": row["conversation_id"], "c_pos": row["stream_pos"]} for row in rows]
    )
    payloads = {}
    for row in rows:
        message = Message(id=inserted[row["conversation_id"], row["seq"]], **row)
        payloads[row["conversation_id"]] = presenters.message(message, None)
    return payloads


def _announce(conversation_of: dict[int, int]) -> None:
    """The new notice conversations' summaries to their users' devices, ahead of the notices."""
    user_ids = list(conversation_of)
    for summary in conversation_summaries(user_ids, conversation_ids=list(conversation_of.values())):
        user_id = summary.pop("_user_id", user_ids[0])
        realtime.emit_after_commit("conversation:new", summary, [user_id], first=True)
