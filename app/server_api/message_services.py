"""The server API's view of messages: sending as a user, a conversation's whole history, a user's
conversation list, and recalling as the service. What a member could do goes through the same
services a member uses (the right to speak, the group commit, the recall core); only the
reading is wider than a member's, because a company's backend is not a member.
"""

from __future__ import annotations

from sqlalchemy import select

from app import speak_cache
from app.auth.accounts import protected_account, require_manageable
from app.auth.services import is_banned
from app.chat import history, pipeline
from app.chat.access import check_can_speak, send_context
from app.chat.actions.common import lock_conversation, require_not_recalled
from app.chat.actions.recall import apply_recall
from app.chat.conversations import conversation_list, open_direct
from app.chat.screen import screen_message
from app.chat.send import send_message
from app.errors import ApiError, not_found
from app.extensions import db
from app.models import AuditLog, Conversation, ConversationMember, Group, Message, User


def live_user(user_id: int) -> User:
    """A user who exists and was not deleted (404 otherwise)."""
    user = db.session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise not_found("user")
    return user


def send_as_user(
    user_id: int,
    client_msg_id: str,
    body: dict,
    extras: dict | None,
    *,
    to_user_id: int | None = None,
    group_id: int | None = None,
) -> tuple[dict, bool]:
    """Send as `user_id` to a friend (`to_user_id`) or into a group, exactly as the user's own
    client would (`pipeline.send`: the right to speak, the screening, the group commit); returns
    the payload and whether it is new. A resend of (user, client_msg_id) returns the stored one.

    A direct conversation is opened through `open_direct`, with its rules (friends, no block);
    one that exists already is used as it is, so a resend after the pair fell out is still
    answered with what was stored (and a new send refused by the right to speak)."""
    user = require_manageable(live_user(user_id))  # never as an administrator or the robot
    if is_banned(user):
        raise ApiError("account_banned", "This user is banned.", 403)
    if to_user_id is not None:
        live_user(to_user_id)
        low, high = sorted((user_id, to_user_id))
        conversation_id = db.session.scalar(
            select(Conversation.id).where(Conversation.direct_key == f"{low}:{high}")
        )
        if conversation_id is None:
            return _first_direct_message(user_id, to_user_id, client_msg_id, body, extras)
    else:
        group = db.session.scalar(select(Group).where(Group.id == group_id))
        if group is None:
            raise not_found("group")
        conversation_id = group.conversation_id
        if db.session.get(ConversationMember, (conversation_id, user_id)) is None:
            raise ApiError("not_member", "This user is not a member of the group.", 403)
    return pipeline.send(user_id, conversation_id, client_msg_id, body, extras)


def _first_direct_message(
    user_id: int, peer_id: int, client_msg_id: str, body: dict, extras: dict | None
) -> tuple[dict, bool]:
    """The first message between two users: their conversation is made in the message's own
    transaction, so a refused send (the pair's rules, a mute, the word filter, a before-send
    hook, a bad reply or mention) leaves no conversation and announces none.

    The rules are checked first on a conversation made and rolled back (nothing is committed or
    announced), then the body is screened with no transaction open — the before-send hooks are
    asked with `conversation.id` null, as the conversation does not exist yet — and then the
    conversation and the message are written and committed together (`send_message`)."""
    try:
        summary, _ = open_direct(user_id, peer_id, commit=False)
        context = send_context(user_id, summary["id"])
        check_can_speak(context)
    finally:
        db.session.rollback()
        speak_cache.drop_user(user_id)  # nothing cached for a conversation that was not kept
    body = screen_message(context, user_id, None, body, client_msg_id)
    summary, _ = open_direct(user_id, peer_id, commit=False)
    try:
        return send_message(user_id, summary["id"], client_msg_id, body, extras, screened=True)
    except ApiError:
        db.session.rollback()
        speak_cache.drop_user(user_id)
        raise


def conversation_history(
    conversation_id: int, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> dict:
    """A page of every message of the conversation, oldest first: after `after` the oldest ones,
    else the newest (before `before`); both bound a range. `has_more`: there are more beyond the
    page in the direction it was read. Recalled messages keep their place, as recalled."""
    conversation = db.session.get(Conversation, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    if conversation.kind == "direct" and _with_admin(conversation_id):
        raise protected_account()  # an administrator's chats are not a key's to read
    newest_first = after is None
    params = {"conversation_id": conversation_id, "limit": limit + 1}
    if before is not None:
        params["before_seq"] = before
    if after is not None:
        params["after_seq"] = after
    query = history.page_query(newest_first, before is not None, after is not None)
    rows = db.session.connection().execute(query, params).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest_first:
        rows.reverse()
    return {
        "conversation": {"id": conversation.id, "kind": conversation.kind, "last_seq": conversation.last_seq},
        "messages": [history.present_row(row) for row in rows],
        "has_more": has_more,
    }


def _with_admin(conversation_id: int) -> bool:
    """Whether an administrator is (or was) one of the direct conversation's two members."""
    return (
        db.session.scalar(
            select(ConversationMember.user_id)
            .join(User, User.id == ConversationMember.user_id)
            .where(ConversationMember.conversation_id == conversation_id, User.is_admin)
            .limit(1)
        )
        is not None
    )


def user_conversations(user_id: int, *, cursor: str | None, limit: int) -> dict:
    """The user's conversation list as the user sees it (`conversation_list`); not an
    administrator's or the robot's (`protected_account`)."""
    require_manageable(live_user(user_id))
    return conversation_list(user_id, cursor=cursor, limit=limit)


def recall_as_service(api_key_id: int, conversation_id: int, seq: int) -> dict:
    """Recall message `seq` for everyone as the service (shown as removed by an administrator,
    `recalled_as="admin"`), through the recall core every recall takes; audited with the key."""
    if db.session.get(Conversation, conversation_id) is None:
        raise not_found("conversation")
    conversation = lock_conversation(conversation_id)
    message = db.session.scalar(
        select(Message).where(Message.conversation_id == conversation_id, Message.seq == seq)
    )
    if message is None:
        raise not_found("message")
    require_not_recalled(message)
    payload = apply_recall(conversation, message, None, "admin")
    db.session.add(
        AuditLog(
            admin_id=None,
            action="api_recall",
            target_type="message",
            target_id=message.id,
            details={
                "api_key_id": api_key_id,
                "conversation_id": conversation_id,
                "seq": seq,
                "sender_id": message.sender_id,
            },
        )
    )
    db.session.commit()
    return {"message": payload}
