"""What a send may carry besides its body: the message it answers (`reply_to`), the members it
calls (`mentions`) and @all (`mention_all`).

They are checked in the sender's own greenlet, before the message is handed to the writer
(app/chat/pipeline.py) or appended alone (app/chat/send.py), and become columns of the message
row plus `message_mentions` rows, written in the same transaction as the message. A send
without them costs nothing here: no statement is run for it.
"""

from __future__ import annotations

import functools

from sqlalchemy import BigInteger, and_, bindparam, cast, select, tuple_

from app.chat.access import SendContext
from app.errors import ApiError
from app.extensions import db
from app.locales import _l
from app.models import ConversationMember, Group, Message, MessageHide, MessageMention, User

# The first characters of a text message a quote keeps.
REPLY_TEXT_LENGTH = 100

_members = ConversationMember.__table__
_mentions = MessageMention.__table__
_INSERT_MENTIONS = _mentions.insert()


@functools.cache
def _reply_target_query():
    """The message a reply answers, with its sender's nickname, if the sender of the reply may
    see it: inside their window (they are an active member, so up to the last message) and not
    deleted for them. Built once."""
    member = ConversationMember
    hidden = (
        select(MessageHide.message_id)
        .where(MessageHide.user_id == bindparam("user_id"), MessageHide.message_id == Message.id)
        .exists()
    )
    return (
        select(Message, User.nickname)
        .join(
            member,
            and_(member.conversation_id == Message.conversation_id, member.user_id == bindparam("user_id")),
        )
        .outerjoin(User, User.id == Message.sender_id)
        .where(
            Message.conversation_id == bindparam("conversation_id"),
            Message.seq == bindparam("seq"),
            Message.seq > member.joined_seq,
            member.left_seq.is_(None),
            ~hidden,
        )
    )


@functools.cache
def _mention_all_statement():
    """@all: one row per active member but the sender, in one statement. Built once."""
    picked = select(
        _members.c.user_id,
        _members.c.conversation_id,
        cast(bindparam("seq"), BigInteger),
        cast(bindparam("message_id"), BigInteger),
    ).where(
        _members.c.conversation_id == bindparam("conversation_id"),
        _members.c.active.is_(True),
        _members.c.user_id != bindparam("sender_id"),
    )
    return _mentions.insert().from_select(["user_id", "conversation_id", "seq", "message_id"], picked)


def snapshot(message: Message, nickname: str | None) -> dict:
    """The quote a reply keeps of the message it answers: its first 100 characters of text, a
    file's name, a location's title, nothing for other media (clients show a label by type)."""
    body = message.body or {}
    if message.type == "txt":
        text = body.get("msg", "")[:REPLY_TEXT_LENGTH]
    elif message.type == "file":
        text = body.get("name", "")
    elif message.type == "loc":
        text = body.get("title", "")
    else:
        text = ""
    author = None
    if message.sender_id is not None:
        author = {"id": message.sender_id, "nickname": nickname}
    return {"seq": message.seq, "sender": author, "type": message.type, "text": text, "recalled": False}


def prepare_extras(
    context: SendContext,
    user_id: int,
    conversation_id: int,
    reply_to: int | None = None,
    mentions: list[int] | None = None,
    mention_all: bool = False,
) -> dict | None:
    """Check a send's extras for this sender and return the message columns they set
    (`reply_to_seq`, `reply`, `mentions`, `mention_all`), or None when there are none.

    The sender's right to speak is checked already. Refusals: `not_visible` (a reply to a
    message the sender cannot see), `already_recalled`, `invalid_mentions` (not in a group, not
    an active member, or the sender), `mention_all_not_allowed`."""
    if reply_to is None and not mentions and not mention_all:
        return None
    extras: dict = {"reply_to_seq": None, "reply": None, "mentions": None, "mention_all": False}
    if mentions:
        extras["mentions"] = _checked_mentions(context, user_id, conversation_id, mentions)
    if mention_all:
        _check_mention_all(context)
        extras["mention_all"] = True
    if reply_to is not None:
        row = db.session.execute(
            _reply_target_query(), {"user_id": user_id, "conversation_id": conversation_id, "seq": reply_to}
        ).first()
        if row is None:
            raise ApiError(
                "not_visible", "You cannot see this message.", 404, {"reply_to": "not visible to you"}
            )
        target, nickname = row
        if target.recalled_at is not None:
            raise ApiError("already_recalled", "This message was recalled.", 409, {"reply_to": "recalled"})
        extras["reply_to_seq"] = target.seq
        extras["reply"] = snapshot(target, nickname)
    return extras


def settle_replies(execute, replies: list[tuple[int, dict]]) -> None:
    """Bring the quotes of sends checked before their conversation was locked up to date:
    the quoted message may have been recalled, edited or purged (retention) in between, and its
    recall, edit or purge then could not see this reply. `replies`: (conversation id, extras) of
    the sends that quote; call after their conversations' rows are locked (the seq bump), before
    the rows are written."""
    _messages = Message.__table__
    keys = [(conversation_id, extras["reply_to_seq"]) for conversation_id, extras in replies]
    rows = execute(
        select(
            _messages.c.conversation_id,
            _messages.c.seq,
            _messages.c.type,
            _messages.c.body,
            _messages.c.recalled_at,
        ).where(tuple_(_messages.c.conversation_id, _messages.c.seq).in_(keys))
    )
    now = {(row.conversation_id, row.seq): row for row in rows}
    for conversation_id, extras in replies:
        row = now.get((conversation_id, extras["reply_to_seq"]))
        quote = dict(extras["reply"])
        if row is None:
            # Purged by retention in between: the quote as app/retention.py leaves one.
            quote = {key: quote[key] for key in ("seq", "type", "sender") if key in quote}
            quote.update(purged=True, text="")
        elif row.recalled_at is not None:
            quote.update(recalled=True, text="")
        elif row.type == "txt":
            quote["text"] = row.body.get("msg", "")[:REPLY_TEXT_LENGTH]
        extras["reply"] = quote


def _checked_mentions(
    context: SendContext, user_id: int, conversation_id: int, mentions: list[int]
) -> list[int]:
    wanted = list(dict.fromkeys(mentions))
    if context.group is None:
        raise _invalid_mentions("mentions are only for groups")
    if user_id in wanted:
        raise _invalid_mentions("you cannot mention yourself")
    found = set(
        db.session.scalars(
            select(ConversationMember.user_id).where(
                ConversationMember.conversation_id == conversation_id,
                ConversationMember.user_id.in_(wanted),
                ConversationMember.active.is_(True),
            )
        )
    )
    if len(found) != len(wanted):
        missing = next(uid for uid in wanted if uid not in found)
        raise _invalid_mentions(_l("%(user_id)s is not a member", user_id=missing))
    return wanted


def _invalid_mentions(reason: str) -> ApiError:
    return ApiError(
        "invalid_mentions", "Some mentioned users cannot be mentioned here.", 400, {"mentions": reason}
    )


def _check_mention_all(context: SendContext) -> None:
    """@all: the group's owner and admins, or every member when the group allows it."""
    group = context.group
    if group is not None and context.role in ("owner", "admin"):
        return
    if group is not None and db.session.scalar(select(Group.members_mention_all).where(Group.id == group.id)):
        return
    raise ApiError("mention_all_not_allowed", "Only the owner and admins can mention everyone here.", 403)


def store_mentions(execute, rows: list[dict]) -> None:
    """Write the `message_mentions` rows of stored messages, in the transaction that stored them.
    `rows`: each message's `message_id`, `conversation_id`, `seq`, `sender_id`, `mentions` and
    `mention_all` (@all covers every named member too). Explicit mentions of the whole batch go
    in one executemany; each @all is one INSERT … SELECT from the members."""
    named = []
    for row in rows:
        if row["mention_all"]:
            execute(
                _mention_all_statement(),
                {
                    "conversation_id": row["conversation_id"],
                    "seq": row["seq"],
                    "message_id": row["message_id"],
                    "sender_id": row["sender_id"],
                },
            )
        elif row["mentions"]:
            named.extend(
                {
                    "user_id": user_id,
                    "conversation_id": row["conversation_id"],
                    "seq": row["seq"],
                    "message_id": row["message_id"],
                }
                for user_id in row["mentions"]
            )
    if named:
        execute(_INSERT_MENTIONS, named)
