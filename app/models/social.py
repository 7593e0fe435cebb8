"""Friendships, friend requests, blocks, groups with their members and join requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, utcnow
from app.models.users import User

REQUEST_STATUSES = ("pending", "accepted", "rejected", "withdrawn")
GROUP_ROLES = ("owner", "admin", "member")
JOIN_POLICIES = ("open", "approval", "invite")


class Friendship(db.Model):
    """One row per pair of friends, the lower user id first; each side keeps its own remark."""

    __tablename__ = "friendships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_a_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_b_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    remark_a: Mapped[str | None] = mapped_column(String(64))  # what user A calls user B
    remark_b: Mapped[str | None] = mapped_column(String(64))  # what user B calls user A
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_a_id", "user_b_id"),
        CheckConstraint("user_a_id < user_b_id", name="ordered_pair"),
    )


class FriendRequest(db.Model):
    __tablename__ = "friend_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    from_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"status IN {REQUEST_STATUSES}", name="status"),
        CheckConstraint("from_user_id <> to_user_id", name="not_self"),
        # At most one pending request from one user to another.
        Index(
            "uq_friend_requests_pending_pair",
            "from_user_id",
            "to_user_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_friend_requests_to_user_id_status", "to_user_id", "status"),
    )


class Block(db.Model):
    """`user_id` blocked `blocked_user_id`: no requests or messages from them reach the user."""

    __tablename__ = "blocks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    blocked_user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Group(db.Model):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(64))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    intro: Mapped[str] = mapped_column(String(500), default="")
    announcement: Mapped[str] = mapped_column(Text, default="")
    join_policy: Mapped[str] = mapped_column(String(16), default="approval")
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    member_limit: Mapped[int] = mapped_column(Integer, default=500)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    muted_all: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether every member may @all (else only the owner and admins).
    members_mention_all: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dissolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dissolved_reason: Mapped[str | None] = mapped_column(String(200))
    # The group's own retention in days (0: keep forever); None follows the deployment's policy.
    retention_days: Mapped[int | None] = mapped_column(Integer)

    # For the admin console's lists (loaded with a join there).
    owner: Mapped[User] = relationship(foreign_keys=[owner_id], viewonly=True)

    __table_args__ = (
        CheckConstraint(f"join_policy IN {JOIN_POLICIES}", name="join_policy"),
        Index("ix_groups_name", "name"),
    )


class GroupMember(db.Model):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16), default="member")
    muted_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(f"role IN {GROUP_ROLES}", name="role"),
        # The periodic check for mutes that have ended reads only the muted members.
        Index(
            "ix_group_members_muted_until",
            "muted_until",
            postgresql_where=text("muted_until IS NOT NULL"),
            sqlite_where=text("muted_until IS NOT NULL"),
        ),
    )


class GroupRemoval(db.Model):
    """`user_id` was removed from the group: they cannot join or be invited by a member again
    until an owner or admin lifts the entry (or adds them back themselves)."""

    __tablename__ = "group_removals"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupJoinRequest(db.Model):
    __tablename__ = "group_join_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"status IN {REQUEST_STATUSES}", name="status"),
        Index(
            "uq_group_join_requests_pending",
            "group_id",
            "user_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_group_join_requests_group_id_status", "group_id", "status"),
    )


def counterparts(one, other, user_id: int, candidates) -> set[int]:
    """Which of `candidates` share a row with `user_id` in a table of pairs (`one`, `other`),
    in either order: friends through Friendship's two users, blocks in both directions
    through Block's. One query."""
    candidates = list(candidates)
    if not candidates:
        return set()
    rows = db.session.execute(
        select(one, other).where(
            or_(
                and_(one == user_id, other.in_(candidates)),
                and_(other == user_id, one.in_(candidates)),
            )
        )
    ).all()
    return {b if a == user_id else a for a, b in rows}
