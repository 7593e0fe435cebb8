"""The after-events: what each one's data is, and where it is queued.

Each listens to a signal its service sends before committing (the service knows nothing of
webhooks) and queues the event in that transaction (app/webhooks/outbox.py); the data is built
just before the commit. docs/INTEGRATION.md documents every event's data.

| event                 | signal (sent by)                                                      |
|-----------------------|-----------------------------------------------------------------------|
| message.sent          | message_stored (app/chat/send.py, the group commit), message_forwarded |
| message.recalled      | parley.message-recalled (app/chat/actions/recall.py, members and console) |
| message.edited        | parley.message-edited (app/chat/actions/edit.py)                       |
| user.registered       | parley.user-registered (app/auth/services.py create_user, not the robot) |
| friend.added          | parley.friends-made (app/social/services.py, a request accepted)       |
| group.member_joined   | parley.group-members-joined (app/groups/services.py create and join paths) |
| group.member_left     | parley.group-members-left (app/groups/services.py leave, removal)      |
| user.banned           | parley.user-banned (app/moderation/services.py ban_user)                |
"""

from __future__ import annotations

from blinker import signal
from sqlalchemy import select

from app import presenters
from app.chat.access import SendContext
from app.chat.actions.forward import message_forwarded
from app.chat.send import message_stored
from app.extensions import db
from app.models import Group, Message
from app.presenters import iso
from app.webhooks import outbox, registry
from app.webhooks.signing import conversation_ref


def _group_of(conversation_id: int, kind: str) -> int | None:
    if kind != "group":
        return None
    return db.session.scalar(select(Group.id).where(Group.conversation_id == conversation_id))


def _message_event(name: str, payload: dict, conversation: dict, sender_id: int | None, **extra) -> None:
    actor_id = extra.pop("actor_id", None)

    def build(users: dict[int, dict]) -> dict:
        data = {"message": payload, "conversation": conversation, "sender": users.get(sender_id)}
        if name == "message.recalled":
            data["actor"] = users.get(actor_id)
        return data

    outbox.enqueue(name, build, (sender_id, actor_id))


def _sent(context: SendContext, message: Message) -> None:
    group_id = context.group.id if context.group is not None else None
    conversation = conversation_ref(context.conversation.id, context.conversation.kind, group_id)
    payload = presenters.message(message, context.sender)
    _message_event("message.sent", payload, conversation, message.sender_id)


@message_stored.connect
def _on_message_stored(context: SendContext, message: Message) -> None:
    if registry.subscribed("message.sent"):
        _sent(context, message)


@message_forwarded.connect
def _on_message_forwarded(context: SendContext, messages: list[Message]) -> None:
    if registry.subscribed("message.sent"):
        for message in messages:
            _sent(context, message)


def _changed(name: str):
    def listener(conversation, message: Message, payload: dict, actor_id: int | None = None) -> None:
        if not registry.subscribed(name):
            return
        ref = conversation_ref(
            conversation.id, conversation.kind, _group_of(conversation.id, conversation.kind)
        )
        _message_event(name, payload, ref, message.sender_id, actor_id=actor_id)

    return listener


_on_recalled = _changed("message.recalled")
_on_edited = _changed("message.edited")
signal("parley.message-recalled").connect(_on_recalled)
signal("parley.message-edited").connect(_on_edited)


@signal("parley.user-registered").connect
def _on_user_registered(user) -> None:
    user_id = user.id
    created_at = iso(user.created_at)
    outbox.enqueue(
        "user.registered", lambda users: {"user": users.get(user_id), "created_at": created_at}, [user_id]
    )


@signal("parley.friends-made").connect
def _on_friends_made(user_id: int, friend_id: int) -> None:
    outbox.enqueue(
        "friend.added",
        lambda users: {"user": users.get(user_id), "friend": users.get(friend_id)},
        [user_id, friend_id],
    )


def _membership(name: str):
    def listener(group, user_ids: list[int], actor_id: int | None, how: str | None) -> None:
        if not registry.subscribed(name):
            return
        ref = {"id": group.id, "name": group.name, "conversation_id": group.conversation_id}
        for user_id in user_ids:
            outbox.enqueue(
                name,
                lambda users, user_id=user_id: {
                    "group": ref,
                    "user": users.get(user_id),
                    "actor": users.get(actor_id),
                    "how": how,
                },
                [user_id, actor_id],
            )

    return listener


_on_joined = _membership("group.member_joined")
_on_left = _membership("group.member_left")
signal("parley.group-members-joined").connect(_on_joined)
signal("parley.group-members-left").connect(_on_left)


@signal("parley.user-banned").connect
def _on_user_banned(
    user_id: int, admin_id: int | None, api_key_id: int | None, reason: str, expires_at
) -> None:
    until = iso(expires_at)
    outbox.enqueue(
        "user.banned",
        lambda users: {
            "user": users.get(user_id),
            "reason": reason,
            "expires_at": until,
            "by": {"admin": users.get(admin_id), "api_key_id": api_key_id},
        },
        [user_id, admin_id],
    )
