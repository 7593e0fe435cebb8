"""Payloads of the friends and groups routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.media.avatars import AvatarUrl
from app.validation import Id, Payload


class FriendRequestIn(Payload):
    user_id: Id
    message: str = Field(default="", max_length=200)


class RemarkIn(Payload):
    remark: str | None = Field(default=None, max_length=64)


class UserIdIn(Payload):
    user_id: Id


class GroupCreateIn(Payload):
    name: str = Field(min_length=1, max_length=64)
    member_ids: list[Id] = Field(default_factory=list, max_length=500)


class GroupUpdateIn(Payload):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    # The rule (app/media/avatars.py) is checked by the group service: `invalid_avatar`.
    avatar_url: AvatarUrl | None = None
    intro: str | None = Field(default=None, max_length=500)
    announcement: str | None = Field(default=None, max_length=5000)
    join_policy: Literal["open", "approval", "invite"] | None = None
    discoverable: bool | None = None
    # Whether every member may mention everyone (@all), not only the owner and admins.
    members_mention_all: bool | None = None


class InviteIn(Payload):
    user_ids: list[Id] = Field(min_length=1, max_length=100)


class JoinIn(Payload):
    message: str = Field(default="", max_length=200)


class RoleIn(Payload):
    role: Literal["admin", "member"]


class MuteAllIn(Payload):
    muted: bool


class MuteMemberIn(Payload):
    minutes: int = Field(ge=0, le=60 * 24 * 30)


class DissolveIn(Payload):
    reason: str = Field(default="", max_length=200)
