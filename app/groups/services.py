"""Groups: creation and membership, each change a committed service call with its system message."""

from __future__ import annotations

from app.chat import services as chat
from app.errors import ApiError, not_found
from app.extensions import db
from app.models import Conversation, Group, GroupMember, User


def system_body(event: str, actor: User, text: str, **extra) -> dict:
    return {"type": "system", "event": event, "actor_id": actor.id, "text": text, **extra}


def create_group(owner_id: int, name: str, member_ids: list[int] | None = None) -> Group:
    """A new group owned by `owner_id`, with its conversation and a "created" system message."""
    owner = db.session.get(User, owner_id)
    name = name.strip()
    if not name or len(name) > 64:
        raise ApiError("invalid_input", "Some fields are invalid.", 400, {"name": "1 to 64 characters"})
    others = [uid for uid in dict.fromkeys(member_ids or []) if uid != owner_id]
    if len(others) + 1 > _member_limit():
        raise ApiError("group_full", "That is more members than a group may have.", 409)
    for uid in others:
        if db.session.get(User, uid) is None:
            raise not_found("user")
    conversation = Conversation(kind="group")
    db.session.add(conversation)
    db.session.flush()
    group = Group(
        conversation_id=conversation.id,
        name=name,
        owner_id=owner_id,
        member_count=len(others) + 1,
        member_limit=_member_limit(),
    )
    db.session.add(group)
    db.session.flush()
    db.session.add(GroupMember(group_id=group.id, user_id=owner_id, role="owner"))
    for uid in others:
        db.session.add(GroupMember(group_id=group.id, user_id=uid, role="member", invited_by_id=owner_id))
    everyone = [owner_id, *others]
    chat.add_members(conversation.id, everyone)
    chat.append_message(
        conversation.id,
        None,
        system_body("group_created", owner, f"{owner.nickname} created the group", user_ids=others),
    )
    chat.stamp_members(conversation.id, everyone)
    db.session.commit()
    return group


def _member_limit() -> int:
    from flask import current_app

    return current_app.config["GROUP_MEMBER_LIMIT"]
