"""Uploaded media: images, videos, files and avatars, with the facts the server measured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.chat import BigId
from app.models.types import UTCDateTime, utcnow

UPLOAD_KINDS = ("image", "video", "audio", "file", "avatar")


class Upload(db.Model):
    """One stored upload. `id` is random and is also the public name (`/media/<id>`); the files
    live in the storage under `storage_key` (and `thumb_key`), never under the client's name.

    An upload is bound to at most one message: `conversation_id` and `message_id` are set in the
    transaction that sends it, and from then on the members who can see that message can see it.
    Avatars are never bound; they are public.
    """

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    mime: Mapped[str] = mapped_column(String(100))
    ext: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    storage_key: Mapped[str] = mapped_column(String(100))
    thumb_key: Mapped[str | None] = mapped_column(String(100))
    # The client's file name, cleaned, for display and downloads only.
    original_name: Mapped[str | None] = mapped_column(String(255))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(f"kind IN {UPLOAD_KINDS}", name="kind"),
        Index("ix_uploads_created_at", "created_at"),
    )

    @property
    def url(self) -> str:
        return f"/media/{self.id}"

    @property
    def thumb_url(self) -> str | None:
        return f"/media/{self.id}/thumb" if self.thumb_key else None
