"""Accounts, their linked sign-in identities and their device sessions."""

from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.operations import AdminRole
from app.models.types import UTCDateTime, utcnow


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    # The lower-cased username: the unique key, so "Alice" and "alice" are one name.
    username_key: Mapped[str] = mapped_column(String(32), unique=True)
    nickname: Mapped[str] = mapped_column(String(64))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    signature: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # The console role (owner, admin, moderator, support or a custom one); None: no console.
    admin_role_id: Mapped[int | None] = mapped_column(ForeignKey("admin_roles.id"), index=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(16))
    # Whether notifications (in the browser and pushed) show the sender and the text, or only
    # "New message".
    notification_previews: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Indexed for the admin dashboard's sign-ups per day.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The company's own id for this user (server API, sign-in JWTs' `sub`); None for others.
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Deleted through the server API: anonymised, signed out, no sign-in; messages stay.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    identities: Mapped[list[OAuthIdentity]] = relationship(back_populates="user")
    admin_role: Mapped[AdminRole | None] = relationship()

    @hybrid_property
    def is_admin(self) -> bool:
        """Whether the account has a console role at all (what it may do there: its rights,
        app/moderation/rights.py)."""
        return self.admin_role_id is not None

    @is_admin.inplace.expression
    @classmethod
    def _is_admin_expression(cls):
        return cls.admin_role_id.is_not(None)

    __table_args__ = (Index("ix_users_nickname", "nickname"),)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username}>"


class OAuthIdentity(db.Model):
    """A sign-in identity at an outside provider, linked by the provider's own user id."""

    __tablename__ = "oauth_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_user_id: Mapped[str] = mapped_column(String(64))
    provider_login: Mapped[str | None] = mapped_column(String(100))
    token: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="identities")

    __table_args__ = (
        UniqueConstraint("provider", "provider_user_id"),
        UniqueConstraint("user_id", "provider"),
    )


class DeviceSession(db.Model):
    """One signed-in device. The cookie carries a random token; only its hash is stored."""

    __tablename__ = "device_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16), default="password")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    __table_args__ = (Index("ix_device_sessions_user_id_revoked_at", "user_id", "revoked_at"),)
