"""Groups: creation, settings, roles and membership.

Every membership change is one committed service call that writes a system message into the
group conversation and emits after commit: a new member's devices get the conversation, a
removed member's devices stop receiving at once (delivery goes to active members only).
"""

from __future__ import annotations

from blinker import signal
from flask import current_app
from sqlalchemy import delete, func, select, update

from app import presenters, realtime, speak_cache, wordfilter
from app.chat.access import active_member_ids
from app.chat.conversations import add_members, conversation_summaries, stamp_members
from app.chat.send import append_message
from app.chat.stream import next_stream_pos
from app.errors import ApiError, not_found
from app.extensions import db
from app.locales import N_
from app.media import avatars
from app.models import (
    Conversation,
    ConversationMember,
    Group,
    GroupJoinRequest,
    GroupMember,
    GroupRemoval,
    User,
    utcnow,
)
from app.paging import keyset_page
from app.presence_service import shows_online, visible_to
from app.social.services import friendship

RANKS = {"member": 0, "admin": 1, "owner": 2}
# Sent with (group, user_ids=..., actor_id=..., how=<the system message's event>) when users join
# a group or leave it, before the commit: the `group.member_joined` / `group.member_left` webhook
# events (app/webhooks/events.py).
members_joined = signal("parley.group-members-joined")
members_left = signal("parley.group-members-left")
PAGE_MAX = 100


def system_body(event: str, actor: User | None, text: str, **extra) -> dict:
    return {"type": "system", "event": event, "actor_id": actor.id if actor else None, "text": text, **extra}


def _names(user_ids: list[int]) -> str:
    users = db.session.scalars(select(User).where(User.id.in_(user_ids)).order_by(User.id))
    return ", ".join(user.nickname for user in users)


# The server API acts as the service, not as a user: services take `by_server=True` with no
# actor (None); its system messages carry no actor_id and name "The administrator".
ADMINISTRATOR = "The administrator"


def _actor(actor_id: int | None) -> User | None:
    return None if actor_id is None else db.session.get(User, actor_id)


def _name(actor: User | None) -> str:
    return ADMINISTRATOR if actor is None else actor.nickname


# --- access --------------------------------------------------------------------------------


def get_group(group_id: int, *, lock: bool = False) -> Group:
    """The group; `lock` takes its row lock first, so changes to one group queue up
    (lock order: group, conversation, members, stream counter)."""
    statement = select(Group).where(Group.id == group_id)
    group = db.session.scalar(statement.with_for_update() if lock else statement)
    if group is None:
        raise not_found("group")
    return group


def membership(group_id: int, user_id: int) -> GroupMember | None:
    return db.session.get(GroupMember, (group_id, user_id))


def require_group_role(
    user_id: int,
    group_id: int,
    role: str = "member",
    *,
    live: bool = True,
    lock: bool = False,
    site_admin: bool = False,
    by_server: bool = False,
) -> tuple:
    """The group and the user's membership, if they hold at least `role`; codes otherwise.

    `site_admin` is for the admin console (its caller has checked the admin role), `by_server`
    for the server API (its caller holds a key with the `groups` scope): both act with the
    owner's rights without being a member, and get no membership back."""
    group = get_group(group_id, lock=lock)
    if site_admin or by_server:
        if live and group.dissolved_at is not None:
            raise ApiError("group_dissolved", "This group was dissolved.", 409)
        return group, None
    member = membership(group_id, user_id)
    if member is None:
        if group.discoverable and group.dissolved_at is None:
            raise ApiError("not_member", "You are not a member of this group.", 403)
        raise not_found("group")
    if live and group.dissolved_at is not None:
        raise ApiError("group_dissolved", "This group was dissolved.", 403)
    if RANKS[member.role] < RANKS[role]:
        raise ApiError("forbidden", ONLY_ROLE[role], 403)
    return group, member


# The refusal for each role an action needs.
ONLY_ROLE = {
    "member": N_("Only the group's members can do that."),
    "admin": N_("Only the group's admins can do that."),
    "owner": N_("Only the group's owners can do that."),
}


def _announce_group(group: Group) -> None:
    """Tell every member's devices the group's settings changed."""
    conversation_id = group.conversation_id

    def prepare():
        realtime.emit_after_commit(
            "group:update",
            presenters.group(db.session.get(Group, group.id)),
            active_member_ids(conversation_id),
        )

    realtime.before_commit(prepare)


def _touch_conversation(conversation_id: int) -> None:
    """Mark the conversation as changed for sync (name, avatar...) when no message does. The
    conversation row is locked before the stream counter, as every writer does (stream.py)."""
    db.session.execute(select(Conversation.id).where(Conversation.id == conversation_id).with_for_update())
    pos = next_stream_pos()
    db.session.execute(update(Conversation).where(Conversation.id == conversation_id).values(stream_pos=pos))


def _member_limit() -> int:
    return current_app.config["GROUP_MEMBER_LIMIT"]


def _require_friends(user_id: int, others: list[int], *, may_add_bots: bool = False) -> None:
    """Only friends may be added; the robot needs no friendship, but only owners and admins add it."""
    for other in others:
        user = db.session.get(User, other)
        if user is None:
            raise not_found("user")
        if user.is_bot:
            if not may_add_bots:
                message = N_("Only the group's owner and admins can add the robot.")
                raise ApiError("forbidden", message, 403, {"user_ids": str(other)})
        elif friendship(user_id, other) is None:
            raise ApiError("not_friends", "You can only add your friends.", 403, {"user_ids": str(other)})


# --- creating and editing ------------------------------------------------------------------


def _require_users(user_ids: list[int], field: str = "user_ids") -> None:
    """The service adds anyone with an account (friendship is the members' rule, not its own)."""
    found = set(db.session.scalars(select(User.id).where(User.id.in_(user_ids), User.deleted_at.is_(None))))
    for uid in user_ids:
        if uid not in found:
            raise ApiError("not_found", "No such user.", 404, {field: str(uid)})


def create_group(
    owner_id: int,
    name: str,
    member_ids: list[int] | None = None,
    *,
    by_server: bool = False,
    settings: dict | None = None,
) -> Group:
    """A new group owned by `owner_id`, with the owner's friends as first members; the server
    (`by_server`) adds anyone and may set the other EDITABLE `settings` at once."""
    name = wordfilter.screen_text("name", name, 64)
    settings = wordfilter.screen_fields(settings or {}, SCREENED, SCREENED_LIMITS)
    if "avatar_url" in settings:
        picture = avatars.check(settings["avatar_url"], actor_id=owner_id, by_server=by_server)
        settings = {**settings, "avatar_url": picture}
    others = [uid for uid in dict.fromkeys(member_ids or []) if uid != owner_id]
    if by_server:
        _require_users([owner_id], "owner_id")
        _require_users(others, "member_ids")
    else:
        _require_friends(owner_id, others, may_add_bots=True)
    owner = db.session.get(User, owner_id)
    if len(others) + 1 > _member_limit():
        raise ApiError("group_full", "That is more members than a group may have.", 409)
    conversation = Conversation(kind="group")
    db.session.add(conversation)
    db.session.flush()
    group = Group(
        conversation_id=conversation.id,
        name=name,
        owner_id=owner_id,
        member_count=len(others) + 1,
        member_limit=_member_limit(),
        **{key: value for key, value in (settings or {}).items() if key in EDITABLE and key != "name"},
    )
    db.session.add(group)
    db.session.flush()
    db.session.add(GroupMember(group_id=group.id, user_id=owner_id, role="owner"))
    for uid in others:
        db.session.add(GroupMember(group_id=group.id, user_id=uid, role="member", invited_by_id=owner_id))
    everyone = [owner_id, *others]
    add_members(conversation.id, everyone)
    append_message(
        conversation.id,
        None,
        system_body(
            "group_created",
            None if by_server else owner,
            f"{ADMINISTRATOR if by_server else owner.nickname} created the group",
            user_ids=others,
        ),
    )
    stamp_members(conversation.id, everyone)
    members_joined.send(
        group, user_ids=everyone, actor_id=None if by_server else owner_id, how="group_created"
    )
    db.session.commit()
    return group


EDITABLE = (
    *("name", "avatar_url", "intro", "announcement", "join_policy", "discoverable"),
    "members_mention_all",
)
# The texts a group shows, screened by the word filter (app/wordfilter), and their column sizes.
SCREENED = ("name", "intro", "announcement")
SCREENED_LIMITS = {"name": 64, "intro": 500, "announcement": 5000}


def update_group(actor_id: int | None, group_id: int, changes: dict, *, by_server: bool = False) -> dict:
    """Owner and admins edit the group's settings; renames and announcements are told in the chat."""
    changes = wordfilter.screen_fields(changes, SCREENED, SCREENED_LIMITS)
    group, _ = require_group_role(actor_id, group_id, "admin", lock=True, by_server=by_server)
    if "avatar_url" in changes:
        picture = avatars.check(
            changes["avatar_url"], actor_id=actor_id, current=group.avatar_url, by_server=by_server
        )
        changes = {**changes, "avatar_url": picture}
    actor = _actor(actor_id)
    notes = []
    for name in EDITABLE:
        if name in changes and changes[name] != getattr(group, name):
            setattr(group, name, changes[name])
            if name == "name":
                notes.append(
                    system_body("group_renamed", actor, f'{_name(actor)} renamed the group to "{group.name}"')
                )
            elif name == "announcement" and group.announcement:
                notes.append(
                    system_body("group_announcement", actor, f"{_name(actor)} posted an announcement")
                )
    db.session.flush()
    for body in notes:
        append_message(group.conversation_id, None, body)
    if not notes:
        _touch_conversation(group.conversation_id)
    _announce_group(group)
    db.session.commit()
    return presenters.group(group)


# --- joining -------------------------------------------------------------------------------


def _join(group: Group, user_ids: list[int], actor: User | None, event: str, text: str) -> None:
    """Add users to the group and its conversation, with one system message; caller commits."""
    new = [uid for uid in user_ids if membership(group.id, uid) is None]
    if not new:
        return
    if group.member_count + len(new) > group.member_limit:
        raise ApiError("group_full", "The group is full.", 409)
    for uid in new:
        by = actor.id if actor else None
        db.session.add(GroupMember(group_id=group.id, user_id=uid, role="member", invited_by_id=by))
    group.member_count += len(new)
    db.session.flush()
    add_members(group.conversation_id, new)
    message = append_message(group.conversation_id, None, system_body(event, actor, text, user_ids=new))
    if event == "member_joined":  # they asked to join: "… joined the group" is their own act
        db.session.execute(
            update(ConversationMember)
            .where(
                ConversationMember.conversation_id == group.conversation_id,
                ConversationMember.user_id.in_(new),
            )
            .values(read_seq=message.seq)
            .execution_options(synchronize_session=False)
        )
    stamp_members(group.conversation_id, new)
    members_joined.send(group, user_ids=new, actor_id=actor.id if actor else None, how=event)
    speak_cache.drop_conversation(group.conversation_id)
    _announce_group(group)


def invite(actor_id: int, group_id: int, user_ids: list[int]) -> dict:
    """Members add their friends (in an invite-only group, only owner and admins may)."""
    group, member = require_group_role(actor_id, group_id, lock=True)
    if group.join_policy == "invite" and member.role == "member":
        raise ApiError("forbidden", "Only the owner and admins can invite to this group.", 403)
    others = [uid for uid in dict.fromkeys(user_ids) if uid != actor_id]
    _require_friends(actor_id, others, may_add_bots=member.role != "member")
    actor = db.session.get(User, actor_id)
    new = [uid for uid in others if membership(group_id, uid) is None]
    removed = _removed_among(group_id, new)
    if removed and member.role == "member":
        raise _removed_error({"user_ids": str(removed[0])})
    if removed:
        # An owner or admin adding someone back is the decision the removal list waits for.
        _lift(group_id, removed)
    if new:
        _join(group, new, actor, "members_invited", f"{actor.nickname} invited {_names(new)}")
        _resolve_requests(group.id, new, actor_id)
    db.session.commit()
    return {"added": new}


def add_by_server(group_id: int, user_ids: list[int]) -> dict:
    """The service adds users at once, friends or not, whatever the join policy: no invitation,
    no approval; it takes them off the removal list and answers their pending requests."""
    group, _ = require_group_role(None, group_id, lock=True, by_server=True)
    wanted = list(dict.fromkeys(user_ids))
    _require_users(wanted)
    new = [uid for uid in wanted if membership(group_id, uid) is None]
    if new:
        _lift(group_id, new)
        _join(group, new, None, "members_added", f"{ADMINISTRATOR} added {_names(new)}")
        _resolve_requests(group.id, new, None)
    db.session.commit()
    return {"added": new}


def _resolve_requests(group_id: int, user_ids: list[int], actor_id: int) -> None:
    db.session.execute(
        update(GroupJoinRequest)
        .where(
            GroupJoinRequest.group_id == group_id,
            GroupJoinRequest.user_id.in_(user_ids),
            GroupJoinRequest.status == "pending",
        )
        .values(status="accepted", handled_by_id=actor_id, responded_at=utcnow())
    )


# --- leaving -------------------------------------------------------------------------------


def _remove(group: Group, user_ids: list[int], body: dict, *, hide: bool = False) -> None:
    """Take users out of the group; they keep the history up to (and including) the notice.
    Removed members keep the chat in their list, read-only, with the notice; `hide` (leaving)
    takes it off the leaver's list on every device at once, as WeChat does (PROTOCOL.md).

    The caller holds the group's row lock."""
    for uid in user_ids:
        row = membership(group.id, uid)
        if row is not None:
            db.session.delete(row)
    group.member_count -= len(user_ids)
    db.session.execute(
        select(Conversation.id).where(Conversation.id == group.conversation_id).with_for_update()
    )
    leaving = (
        update(ConversationMember)
        .where(
            ConversationMember.conversation_id == group.conversation_id,
            ConversationMember.user_id.in_(user_ids),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        leaving.values(active=False, hidden=hide, updated_at=utcnow())
    )  # member rows locked before the counter
    message = append_message(group.conversation_id, None, body, also_to=None if hide else user_ids)
    db.session.execute(leaving.values(left_seq=message.seq))
    stamp_members(group.conversation_id, user_ids)
    conversation_id = group.conversation_id

    def prepare():
        told = set()
        for summary in conversation_summaries(user_ids, conversation_ids=[conversation_id]):
            user_id = summary.pop("_user_id", user_ids[0])
            told.add(user_id)
            realtime.emit_after_commit("conversation:update", summary, [user_id])
        gone = [user_id for user_id in user_ids if user_id not in told]
        if gone:  # hidden: the same answer as deleting a chat from the list
            realtime.emit_after_commit("conversation:update", {"id": conversation_id, "hidden": True}, gone)

    realtime.before_commit(prepare)
    members_left.send(group, user_ids=list(user_ids), actor_id=body.get("actor_id"), how=body.get("event"))
    speak_cache.drop_conversation(conversation_id)
    _announce_group(group)


def leave(user_id: int, group_id: int) -> None:
    group, member = require_group_role(user_id, group_id, lock=True)
    if member.role == "owner":
        raise ApiError("owner_cannot_leave", "Transfer the group or dissolve it before you leave.", 409)
    user = db.session.get(User, user_id)
    _remove(
        group,
        [user_id],
        system_body("member_left", user, f"{user.nickname} left the group", user_ids=[user_id]),
        hide=True,
    )
    db.session.commit()


def kick(
    actor_id: int | None, group_id: int, user_id: int, *, site_admin: bool = False, by_server: bool = False
) -> None:
    """Admins remove members; the owner (the admin console, the server) removes anyone but the owner."""
    group, actor_member = require_group_role(
        actor_id, group_id, "admin", lock=True, site_admin=site_admin, by_server=by_server
    )
    target = membership(group_id, user_id)
    if target is None:
        raise not_found("member")
    if target.role == "owner":
        raise ApiError("cannot_kick_owner", "The owner cannot be removed.", 403)
    if actor_member is not None and RANKS[target.role] >= RANKS[actor_member.role]:
        raise ApiError("forbidden", "Only the owner can remove an admin.", 403)
    actor = _actor(actor_id)
    user = db.session.get(User, user_id)
    _remove(
        group,
        [user_id],
        system_body("member_removed", actor, f"{_name(actor)} removed {user.nickname}", user_ids=[user_id]),
    )
    db.session.add(GroupRemoval(group_id=group_id, user_id=user_id, removed_by_id=actor_id))
    db.session.commit()


# --- the removal list ----------------------------------------------------------------------


def _removed_error(fields: dict | None = None) -> ApiError:
    return ApiError(
        "removed_from_group",
        "Removed from this group; only its owner or an admin can add them back.",
        403,
        fields,
    )


def _removed_among(group_id: int, user_ids: list[int]) -> list[int]:
    """Which of these users are on the group's removal list."""
    if not user_ids:
        return []
    return list(
        db.session.scalars(
            select(GroupRemoval.user_id)
            .where(GroupRemoval.group_id == group_id, GroupRemoval.user_id.in_(user_ids))
            .order_by(GroupRemoval.user_id)
        )
    )


def _lift(group_id: int, user_ids: list[int]) -> None:
    db.session.execute(
        delete(GroupRemoval).where(GroupRemoval.group_id == group_id, GroupRemoval.user_id.in_(user_ids))
    )


def removed_members(actor_id: int, group_id: int, after: int | None, limit: int) -> dict:
    """The removal list, for the owner and admins: who was removed, by whom, when."""
    require_group_role(actor_id, group_id, "admin", live=False)
    statement = (
        select(GroupRemoval, User)
        .join(User, User.id == GroupRemoval.user_id)
        .where(GroupRemoval.group_id == group_id)
    )
    rows, cursor = keyset_page(statement, User.id, after, limit, lambda row: row[1].id)
    return {
        "removed": [presenters.group_removal(removal, user) for removal, user in rows],
        "next": cursor,
    }


def lift_removal(actor_id: int, group_id: int, user_id: int) -> None:
    """Owner and admins take someone off the removal list: they may join or be invited again."""
    require_group_role(actor_id, group_id, "admin", lock=True)
    removal = db.session.get(GroupRemoval, (group_id, user_id))
    if removal is None:
        raise not_found("removal")
    db.session.delete(removal)
    db.session.commit()


# --- roles ---------------------------------------------------------------------------------


def dissolve(
    actor_id: int | None,
    group_id: int,
    reason: str = "",
    *,
    site_admin: bool = False,
    by_server: bool = False,
) -> dict:
    """Close the group for good: the conversation becomes read-only and says why."""
    group, _ = require_group_role(
        actor_id, group_id, "owner", lock=True, site_admin=site_admin, by_server=by_server
    )
    actor = _actor(actor_id)
    group.dissolved_at = utcnow()
    group.dissolved_reason = reason or None
    speak_cache.drop_conversation(group.conversation_id)
    text = "The group was dissolved" + (f": {reason}" if reason else "")
    append_message(group.conversation_id, None, system_body("group_dissolved", actor, text, reason=reason))
    _announce_group(group)
    db.session.commit()
    return presenters.group(group)


# --- reading -------------------------------------------------------------------------------


def group_detail(viewer_id: int | None, group_id: int, *, by_server: bool = False) -> dict:
    group = get_group(group_id)
    if by_server:
        return presenters.group(group)
    member = membership(group_id, viewer_id)
    if member is None and not (group.discoverable and group.dissolved_at is None):
        raise not_found("group")
    return {**presenters.group(group), "my_role": member.role if member else None}


def list_members(
    viewer_id: int | None, group_id: int, after: int | None, limit: int, *, by_server: bool = False
) -> dict:
    """A page of members; the server (`by_server`) sees every member's presence."""
    require_group_role(viewer_id, group_id, live=False, by_server=by_server)
    statement = (
        select(GroupMember, User)
        .join(User, User.id == GroupMember.user_id)
        .where(GroupMember.group_id == group_id)
    )
    rows, cursor = keyset_page(statement, User.id, after, limit, lambda row: row[1].id)
    # Sharing a group shows no presence: only friends and direct peers, minus blocks.
    ids = [user.id for _, user in rows]
    visible = set(ids) if by_server else visible_to(viewer_id, ids)
    online = realtime.presence().online(visible)
    return {
        "members": [
            presenters.group_member(
                member, user, online=user.id in visible and (user.id in online or shows_online(user))
            )
            for member, user in rows
        ],
        "next": cursor,
    }


def my_groups(user_id: int) -> list[dict]:
    groups = db.session.scalars(
        select(Group)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user_id)
        .order_by(Group.id)
    )
    return [presenters.group(group) for group in groups]


def search_groups(query: str, after: int | None, limit: int) -> dict:
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    statement = (
        select(Group)
        .where(
            func.lower(Group.name).like(f"%{escaped}%", escape="\\"),
            Group.discoverable.is_(True),
            Group.dissolved_at.is_(None),
        )
        .order_by(Group.id)
        .limit(limit + 1)
    )
    if after is not None:
        statement = statement.where(Group.id > after)
    groups = list(db.session.scalars(statement))
    has_more = len(groups) > limit
    groups = groups[:limit]
    return {
        "groups": [presenters.group(group) for group in groups],
        "next": groups[-1].id if has_more else None,
    }
