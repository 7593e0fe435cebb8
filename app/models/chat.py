"""Conversations, their members' read state, and messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

# "notice": one per user (direct_key "notice:<user id>"), where the server API's system notices
# to that user are stored; read-only, its only member is the user.
CONVERSATION_KINDS = ("direct", "group", "notice")
MESSAGE_TYPES = ("txt", "img", "video", "audio", "loc", "file", "system", "merged")

# SQLite only auto-increments INTEGER primary keys; PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Conversation(db.Model):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    # "<low user id>:<high user id>" for a direct conversation, so a pair has exactly one;
    # "notice:<user id>" for a user's notices.
    direct_key: Mapped[str | None] = mapped_column(String(41), unique=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Stream position of the last change to the conversation itself (a message, a rename...).
    stream_pos: Mapped[int] = mapped_column(BigInteger, default=0)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Pinned messages, newest first (at most MAX_PINS): [{"seq", "by", "at"}] (app/chat/actions/pins.py).
    pins: Mapped[list | None] = mapped_column(JSON)
    # Messages up to this seq were purged by the retention policy (app/retention.py): history,
    # catch-up and search start after it.
    purged_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (CheckConstraint(f"kind IN {CONVERSATION_KINDS}", name="kind"),)


class ConversationMember(db.Model):
    """A user's place in a conversation: what they have read and what they can see."""

    __tablename__ = "conversation_members"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    read_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # History is visible from joined_seq + 1 on; up to left_seq once the member has left.
    joined_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    left_seq: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # Stream position of the last change to this member's own state (read, pin, join, leave).
    stream_pos: Mapped[int] = mapped_column(BigInteger, default=0)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_conversation_members_user_id_active", "user_id", "active"),)


class Message(db.Model):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(8))
    body: Mapped[dict] = mapped_column(JSON)
    client_msg_id: Mapped[str | None] = mapped_column(String(64))
    stream_pos: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recalled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who recalled it, as the payload says: "sender", "group_admin" (the group's owner or an
    # admin) or "admin" (the site's console).
    recalled_as: Mapped[str | None] = mapped_column(String(16))
    # A reply: the seq it answers and a snapshot of it ({"seq", "sender": {"id", "nickname"},
    # "type", "text"}), kept so the quote renders whatever happens to the original.
    reply_to_seq: Mapped[int | None] = mapped_column(BigInteger)
    reply: Mapped[dict | None] = mapped_column(JSON)
    # Mentioned user ids (validated against the members when sent), and @all.
    mentions: Mapped[list | None] = mapped_column(JSON)
    mention_all: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    edit_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Reactions in the order they first appeared: [{"emoji", "user_ids"}] (the rows of
    # message_reactions are the truth; this is what every payload shows).
    reactions: Mapped[list | None] = mapped_column(JSON)
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    # For the admin console's lists (loaded with a join there); chat code selects users itself.
    sender: Mapped[User | None] = relationship(foreign_keys=[sender_id], viewonly=True)

    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        # A resend of the same client message id is the same message.
        UniqueConstraint("sender_id", "client_msg_id"),
        CheckConstraint(f"type IN {MESSAGE_TYPES}", name="type"),
        Index("ix_messages_created_at", "created_at"),
        Index("ix_messages_conversation_id_stream_pos", "conversation_id", "stream_pos"),
        # The replies to a message (their quotes follow it); only replies are in it.
        Index(
            "ix_messages_conversation_id_reply_to_seq",
            "conversation_id",
            "reply_to_seq",
            postgresql_where=text("reply_to_seq IS NOT NULL"),
            sqlite_where=text("reply_to_seq IS NOT NULL"),
        ),
    )


class StreamCounter(db.Model):
    """The one row whose `pos` numbers every user-visible change, in commit order.

    A transaction takes the next position with `UPDATE ... RETURNING` and holds the
    row lock until it commits, so positions become visible strictly in order: a
    reader that sees `pos = N` knows every change numbered up to N is committed.
    That is what makes the sync cursor gap-free on PostgreSQL as well as SQLite.
    """

    __tablename__ = "stream_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    pos: Mapped[int] = mapped_column(BigInteger, default=0)
