"""What members do to messages after they are sent: edits kept, reactions, mentions, messages
hidden for one user, and uploads shared by forwarded messages (app/chat/actions/)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.chat import BigId
from app.models.types import UTCDateTime, utcnow


class MessageEdit(db.Model):
    """A previous version of an edited message: version 0 is what was sent."""

    __tablename__ = "message_edits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    # When this version was written (the send, or the edit that made it).
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_message_edits_message_id_version", "message_id", "version", unique=True),)


class MessageReaction(db.Model):
    """One user's one emoji on one message."""

    __tablename__ = "message_reactions"

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    emoji: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageMention(db.Model):
    """A user called by a message (one row per member for @all), for their unread mention count."""

    __tablename__ = "message_mentions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True)


class MessageHide(db.Model):
    """A message one user deleted for themselves (on all their devices, not for others)."""

    __tablename__ = "message_hides"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    stream_pos: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_message_hides_user_id_stream_pos", "user_id", "stream_pos"),)


class MessagePlay(db.Model):
    """A voice message one user has played (on any of their devices): no row = unplayed.

    Like a hide, it takes a stream position, so /sync carries it to the user's other devices.
    """

    __tablename__ = "message_plays"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    stream_pos: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_message_plays_user_id_stream_pos", "user_id", "stream_pos"),)


class UploadShare(db.Model):
    """A forwarded message that carries an upload sent before: members who can see the message
    can see the upload, as with the message it was first sent in."""

    __tablename__ = "upload_shares"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, index=True
    )
