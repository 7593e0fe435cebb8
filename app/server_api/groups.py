"""Server API: groups, managed with the authority of the service rather than of a member.

The company's backend creates groups for an owner with members who need not be friends, adds
and removes members directly (no invitation, no approval), sets roles, settings and mutes, and
dissolves. Each route calls the same group service as the client's route, with
`by_server=True`: the effects are the same (system messages, live events, speak-cache drops,
stream positions), and the system messages name "The administrator" instead of a member.
"""

from __future__ import annotations

from typing import Literal

from flask import jsonify, request
from pydantic import Field

from app import settings as retention_settings
from app.groups import roles as group_roles
from app.groups import services as groups
from app.server_api import bp
from app.server_api.keys import current_key, requires
from app.social.schemas import DissolveIn, GroupUpdateIn, MuteAllIn, MuteMemberIn
from app.validation import Id, Payload, int_arg, parse_json, validate

# The most user ids one call takes (the group's own limit is GROUP_MEMBER_LIMIT: `group_full`).
BATCH_MAX = 500


class ServerGroupCreateIn(GroupUpdateIn):
    """A new group: its owner, name and first members, and optionally any setting PATCH takes."""

    owner_id: Id
    name: str = Field(min_length=1, max_length=64)
    member_ids: list[Id] = Field(default_factory=list, max_length=BATCH_MAX)


class ServerMembersIn(Payload):
    user_ids: list[Id] = Field(min_length=1, max_length=BATCH_MAX)


class ServerRoleIn(Payload):
    # "owner" transfers the group; the old owner stays on as an admin.
    role: Literal["admin", "member", "owner"]


def _limit() -> int:
    return int_arg("limit", minimum=1, maximum=groups.PAGE_MAX, default=20)


@bp.post("/groups")
@requires("groups")
def group_create():
    """Create a group for `owner_id` with `member_ids` (friends or not) and any settings."""
    data = parse_json(ServerGroupCreateIn)
    settings = data.model_dump(exclude_none=True, exclude={"owner_id", "name", "member_ids"})
    group = groups.create_group(data.owner_id, data.name, data.member_ids, by_server=True, settings=settings)
    return jsonify(group=groups.group_detail(None, group.id, by_server=True)), 201


@bp.get("/groups/<int:group_id>")
@requires("read", "groups")
def group_get(group_id: int):
    """A group, dissolved ones included, with its own retention (null: as the deployment)."""
    group = groups.group_detail(None, group_id, by_server=True)
    return jsonify(group={**group, "retention_days": retention_settings.group_retention(group_id)})


class ServerGroupUpdateIn(GroupUpdateIn):
    # The group's own retention in days (app/settings.py): null follows the deployment's, 0 keeps
    # its messages forever. Only the server API and the console set it, never members.
    retention_days: int | None = Field(default=None, ge=0, le=retention_settings.RETENTION_MAX_DAYS)


@bp.patch("/groups/<int:group_id>")
@requires("groups")
def group_update(group_id: int):
    """Change settings; renames and announcements are told in the group as by the administrator.
    `retention_days` (null: as the deployment) is answered back with the group."""
    data = parse_json(ServerGroupUpdateIn)
    changes = data.model_dump(exclude_none=True, exclude={"retention_days"})
    if "avatar_url" in data.model_fields_set:  # null clears it
        changes["avatar_url"] = data.avatar_url
    retention = "retention_days" in data.model_fields_set
    if changes or not retention:
        group = groups.update_group(None, group_id, changes, by_server=True)
    if retention:
        retention_settings.set_group_retention(
            None, group_id, data.retention_days, api_key_id=current_key().id
        )
        group = groups.group_detail(None, group_id, by_server=True)
    return jsonify(group={**group, "retention_days": retention_settings.group_retention(group_id)})


@bp.get("/groups/<int:group_id>/members")
@requires("read", "groups")
def group_members(group_id: int):
    """A page of members by user id (`after`, `limit` ≤ 100), with roles, mutes and presence."""
    return jsonify(groups.list_members(None, group_id, int_arg("after"), _limit(), by_server=True))


@bp.post("/groups/<int:group_id>/members")
@requires("groups")
def group_add_members(group_id: int):
    """Add users at once: no invitation or approval, whatever the join policy; answers who was new."""
    data = parse_json(ServerMembersIn)
    return jsonify(groups.add_by_server(group_id, data.user_ids))


@bp.delete("/groups/<int:group_id>/members/<int:user_id>")
@requires("groups")
def group_remove_member(group_id: int, user_id: int):
    """Remove a member (not the owner: transfer first); they keep the history up to now."""
    groups.kick(None, group_id, user_id, by_server=True)
    return "", 204


@bp.put("/groups/<int:group_id>/members/<int:user_id>/role")
@requires("groups")
def group_set_role(group_id: int, user_id: int):
    """Make a member an admin or a member again; "owner" transfers the group."""
    data = parse_json(ServerRoleIn)
    return jsonify(member=group_roles.set_role(None, group_id, user_id, data.role, by_server=True))


@bp.post("/groups/<int:group_id>/mute")
@requires("groups")
def group_mute_all(group_id: int):
    """Mute or unmute the whole group: while muted only the owner and admins speak."""
    data = parse_json(MuteAllIn)
    return jsonify(group=group_roles.mute_all(None, group_id, data.muted, by_server=True))


@bp.post("/groups/<int:group_id>/members/<int:user_id>/mute")
@requires("groups")
def group_mute_member(group_id: int, user_id: int):
    """Mute one member (any role) for `minutes`; 0 lifts the mute."""
    data = parse_json(MuteMemberIn)
    return jsonify(member=group_roles.mute_member(None, group_id, user_id, data.minutes, by_server=True))


@bp.delete("/groups/<int:group_id>")
@requires("groups")
def group_dissolve(group_id: int):
    """Dissolve the group: read-only for good. The reason comes as `?reason=` (DELETE bodies are
    unusual; proxies may drop them)."""
    data = validate(DissolveIn, {"reason": request.args.get("reason", "")})
    return jsonify(group=groups.dissolve(None, group_id, data.reason, by_server=True))
