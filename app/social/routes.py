"""REST routes for people, friends, blocks and groups: /api/v1/..."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from app.errors import ApiError
from app.groups import requests as asking
from app.groups import roles as group_roles
from app.groups import services as groups
from app.social import schemas
from app.social import services as social
from app.validation import int_arg, parse_json

bp = Blueprint("social_api", __name__, url_prefix="/api/v1")


def _query() -> str:
    text = request.args.get("q", "").strip()
    if not 1 <= len(text) <= 64:
        raise ApiError("invalid_input", "Some fields are invalid.", 400, {"q": "1 to 64 characters"})
    return text


def _limit() -> int:
    return int_arg("limit", minimum=1, maximum=social.PAGE_MAX, default=20)


# --- people and friends --------------------------------------------------------------------


@bp.get("/users/search")
@login_required
def search_users():
    after = request.args.get("after") or None
    return jsonify(social.search_users(current_user.id, _query(), after, _limit()))


@bp.get("/friends")
@login_required
def friends():
    return jsonify(social.list_friends(current_user.id, int_arg("after"), _limit()))


@bp.patch("/friends/<int:friend_id>")
@login_required
def set_remark(friend_id: int):
    data = parse_json(schemas.RemarkIn)
    return jsonify(friend=social.set_remark(current_user.id, friend_id, data.remark))


@bp.delete("/friends/<int:friend_id>")
@login_required
def remove_friend(friend_id: int):
    social.remove_friend(current_user.id, friend_id)
    return "", 204


@bp.get("/friend-requests")
@login_required
def friend_requests():
    direction = request.args.get("direction", "incoming")
    if direction not in {"incoming", "outgoing"}:
        raise ApiError(
            "invalid_input", "Some fields are invalid.", 400, {"direction": "incoming or outgoing"}
        )
    return jsonify(requests=social.list_requests(current_user.id, direction))


@bp.post("/friend-requests")
@login_required
def send_friend_request():
    data = parse_json(schemas.FriendRequestIn)
    payload, created = social.send_friend_request(current_user.id, data.user_id, data.message)
    return jsonify(request=payload), 201 if created else 200


@bp.post("/friend-requests/<int:request_id>/accept")
@login_required
def accept_friend_request(request_id: int):
    return jsonify(request=social.respond_to_request(current_user.id, request_id, accept=True))


@bp.post("/friend-requests/<int:request_id>/reject")
@login_required
def reject_friend_request(request_id: int):
    return jsonify(request=social.respond_to_request(current_user.id, request_id, accept=False))


@bp.delete("/friend-requests/<int:request_id>")
@login_required
def withdraw_friend_request(request_id: int):
    return jsonify(request=social.withdraw_request(current_user.id, request_id))


@bp.get("/blocks")
@login_required
def blocked():
    return jsonify(users=social.list_blocked(current_user.id))


@bp.post("/blocks")
@login_required
def block():
    data = parse_json(schemas.UserIdIn)
    social.block_user(current_user.id, data.user_id)
    return "", 204


@bp.delete("/blocks/<int:user_id>")
@login_required
def unblock(user_id: int):
    social.unblock_user(current_user.id, user_id)
    return "", 204


# --- groups --------------------------------------------------------------------------------


@bp.get("/groups")
@login_required
def my_groups():
    return jsonify(groups=groups.my_groups(current_user.id))


@bp.get("/groups/search")
@login_required
def search_groups():
    return jsonify(groups.search_groups(_query(), int_arg("after"), _limit()))


@bp.post("/groups")
@login_required
def create_group():
    data = parse_json(schemas.GroupCreateIn)
    group = groups.create_group(current_user.id, data.name, data.member_ids)
    return jsonify(group=groups.group_detail(current_user.id, group.id)), 201


@bp.get("/groups/<int:group_id>")
@login_required
def group(group_id: int):
    return jsonify(group=groups.group_detail(current_user.id, group_id))


@bp.patch("/groups/<int:group_id>")
@login_required
def update_group(group_id: int):
    data = parse_json(schemas.GroupUpdateIn)
    changes = data.model_dump(exclude_none=True)
    if "avatar_url" in data.model_fields_set:  # null clears it
        changes["avatar_url"] = data.avatar_url
    return jsonify(group=groups.update_group(current_user.id, group_id, changes))


@bp.get("/groups/<int:group_id>/members")
@login_required
def members(group_id: int):
    return jsonify(groups.list_members(current_user.id, group_id, int_arg("after"), _limit()))


@bp.post("/groups/<int:group_id>/members")
@login_required
def invite(group_id: int):
    data = parse_json(schemas.InviteIn)
    return jsonify(groups.invite(current_user.id, group_id, data.user_ids))


@bp.delete("/groups/<int:group_id>/members/<int:user_id>")
@login_required
def remove_member(group_id: int, user_id: int):
    if user_id == current_user.id:
        groups.leave(current_user.id, group_id)
    else:
        groups.kick(current_user.id, group_id, user_id)
    return "", 204


@bp.get("/groups/<int:group_id>/removed")
@login_required
def removed_members(group_id: int):
    return jsonify(groups.removed_members(current_user.id, group_id, int_arg("after"), _limit()))


@bp.delete("/groups/<int:group_id>/removed/<int:user_id>")
@login_required
def lift_removal(group_id: int, user_id: int):
    groups.lift_removal(current_user.id, group_id, user_id)
    return "", 204


@bp.put("/groups/<int:group_id>/members/<int:user_id>/role")
@login_required
def set_role(group_id: int, user_id: int):
    data = parse_json(schemas.RoleIn)
    return jsonify(member=group_roles.set_role(current_user.id, group_id, user_id, data.role))


@bp.put("/groups/<int:group_id>/members/<int:user_id>/mute")
@login_required
def mute_member(group_id: int, user_id: int):
    data = parse_json(schemas.MuteMemberIn)
    return jsonify(member=group_roles.mute_member(current_user.id, group_id, user_id, data.minutes))


@bp.put("/groups/<int:group_id>/mute")
@login_required
def mute_all(group_id: int):
    data = parse_json(schemas.MuteAllIn)
    return jsonify(group=group_roles.mute_all(current_user.id, group_id, data.muted))


@bp.post("/groups/<int:group_id>/transfer")
@login_required
def transfer(group_id: int):
    data = parse_json(schemas.UserIdIn)
    return jsonify(group=group_roles.transfer(current_user.id, group_id, data.user_id))


@bp.post("/groups/<int:group_id>/dissolve")
@login_required
def dissolve(group_id: int):
    data = parse_json(schemas.DissolveIn)
    return jsonify(group=groups.dissolve(current_user.id, group_id, data.reason))


@bp.post("/groups/<int:group_id>/join-requests")
@login_required
def request_to_join(group_id: int):
    data = parse_json(schemas.JoinIn)
    payload, created = asking.request_to_join(current_user.id, group_id, data.message)
    return jsonify(payload), 201 if created else 200


@bp.get("/groups/<int:group_id>/join-requests")
@login_required
def join_requests(group_id: int):
    return jsonify(requests=asking.pending_join_requests(current_user.id, group_id))


@bp.post("/group-join-requests/<int:request_id>/approve")
@login_required
def approve(request_id: int):
    return jsonify(request=asking.answer_join_request(current_user.id, request_id, approve=True))


@bp.post("/group-join-requests/<int:request_id>/reject")
@login_required
def reject(request_id: int):
    return jsonify(request=asking.answer_join_request(current_user.id, request_id, approve=False))


@bp.delete("/group-join-requests/<int:request_id>")
@login_required
def withdraw_join_request(request_id: int):
    return jsonify(request=asking.withdraw_join_request(current_user.id, request_id))
