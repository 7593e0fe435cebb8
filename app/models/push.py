"""Web Push subscriptions: one per device session that allowed notifications (app/push/)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow


class PushSubscription(db.Model):
    """A browser's push endpoint and the keys its payloads are encrypted for (RFC 8291), bound to
    the device session that made it: revoking the device removes it."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_session_id: Mapped[int] = mapped_column(
        ForeignKey("device_sessions.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000))
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failures in a row (timeouts, 5xx); a 404 or 410 removes the subscription at once.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
