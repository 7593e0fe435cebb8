"""What the people who run Parley set and ask for: console roles and their rights, deployment
settings (the retention policy...), and users' data exports."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

EXPORT_STATES = ("pending", "ready", "failed")


class AdminRole(db.Model):
    """A console role: a name and its rights (app/moderation/rights.py lists them). The built-in
    roles (owner, admin, moderator, support) cannot be renamed, changed or deleted."""

    __tablename__ = "admin_roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    rights: Mapped[list] = mapped_column(JSON, default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<AdminRole {self.id} {self.name}>"


class Setting(db.Model):
    """One deployment setting changed in the console (`key` → JSON `value`); a key with no row
    keeps its default (app/settings.py)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class UserExport(db.Model):
    """A user's download of their own data: built by a queued job into a zip under the
    instance's exports folder, served by its random `token` until `expires_at`."""

    __tablename__ = "user_exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # sha256 of the link's secret (the secret itself is only in the link).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (
        CheckConstraint(f"state IN {EXPORT_STATES}", name="state"),
        Index("ix_user_exports_user_id_created_at", "user_id", "created_at"),
    )
