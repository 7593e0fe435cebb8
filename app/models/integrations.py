"""What a company's backend uses Parley through: API keys, sign-in tokens for its users, webhooks
with their durable outbox, and the sensitive-word lists every message and name is screened by."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.chat import BigId
from app.models.types import UTCDateTime, utcnow

API_SCOPES = ("users", "messages", "groups", "moderation", "read")
WORD_LIST_ACTIONS = ("reject", "mask")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class ApiKey(db.Model):
    """A server API key. The key itself is shown once when made; only its SHA-256 is stored.
    `prefix` (the key's first characters) names it in lists and logs."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # A subset of API_SCOPES.
    scopes: Mapped[list] = mapped_column(JSON)
    # Addresses or networks (CIDR) the key may be used from; None: anywhere.
    allowed_ips: Mapped[list | None] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_ip: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.prefix}>"


class SignInToken(db.Model):
    """A short-lived, single-use ticket a company's backend asked for on behalf of one of its
    users; the Parley client exchanges it for a device session. Only its SHA-256 is stored."""

    __tablename__ = "sign_in_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsedJwt(db.Model):
    """A company-signed sign-in JWT already used (its `jti`), kept until it expires: a replay
    is refused."""

    __tablename__ = "used_jwts"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Webhook(db.Model):
    """Where a company's backend hears of events (`events`), and the synchronous
    `message.before_send` check, configured in the admin console."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    # The HMAC-SHA256 key of X-Parley-Signature.
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # message.before_send: how long a send waits for the answer, and what an unanswered or
    # failed check does (True: the message goes out as it is; False: it is refused).
    timeout_ms: Mapped[int] = mapped_column(Integer, default=2000, server_default="2000")
    fail_open: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The last delivery's outcome, for the console.
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return f"<Webhook {self.id} {self.name}>"


class WebhookDelivery(db.Model):
    """One event for one webhook: the durable outbox and the delivery log. Written in the
    transaction of what it reports (so it exists exactly when the event does), delivered
    after by whichever process claims it (`lease_until`), retried with backoff."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # The event's id, the same in every webhook's delivery of it (receivers de-duplicate by it).
    event_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A process claimed it until then (another may take it over after).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    )


class WordList(db.Model):
    """A list of sensitive words (one per line), and what a hit does: refuse the text
    (`content_blocked`) or mask each hit with ***."""

    __tablename__ = "word_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(8), default="reject")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    words: Mapped[str] = mapped_column(Text, default="")
    hits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"action IN {WORD_LIST_ACTIONS}", name="action"),)
