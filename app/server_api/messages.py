"""Server API: messages — send as a user, system notices, a conversation's history, a user's
conversations, recall (routes on app.server_api.bp; docs/INTEGRATION.md "Messages and notices")."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field, model_validator

from app import notices
from app.chat.conversations import LIST_PAGE_MAX, LIST_PAGE_SIZE
from app.chat.history import HISTORY_PAGE_MAX
from app.chat.schemas import CLIENT_MSG_ID, MessageIn
from app.locales import N_
from app.server_api import bp, message_services
from app.server_api.keys import current_key, requires
from app.validation import MAX_BIGINT, Id, Payload, int_arg, parse_json


class ServerMessageIn(MessageIn):
    """A message sent as `from_user_id` to a friend (`to_user_id`) or into a group (`group_id`):
    the client's message fields (body, reply_to, mentions, mention_all) and rules."""

    from_user_id: Id
    to_user_id: Id | None = None
    group_id: Id | None = None

    @model_validator(mode="after")
    def _one_target(self):
        if (self.to_user_id is None) == (self.group_id is None):
            raise ValueError(N_("give exactly one of to_user_id and group_id"))
        if self.to_user_id == self.from_user_id:
            raise ValueError(N_("to_user_id must be another user"))
        return self


class NoticeIn(Payload):
    """A system notice (no sender) to each of `user_ids` (in their notice conversations), or into
    a group's conversation. `client_msg_id` makes a resend answer with what was stored."""

    text: str = Field(min_length=1, max_length=notices.MAX_NOTICE_TEXT)
    user_ids: list[Id] | None = Field(default=None, min_length=1, max_length=notices.MAX_NOTICE_USERS)
    group_id: Id | None = None
    client_msg_id: str | None = Field(default=None, pattern=CLIENT_MSG_ID)

    @model_validator(mode="after")
    def _one_target(self):
        if (self.user_ids is None) == (self.group_id is None):
            raise ValueError(N_("give exactly one of user_ids and group_id"))
        return self


@bp.post("/messages")
@requires("messages")
def send_message():
    data = parse_json(ServerMessageIn)
    message, created = message_services.send_as_user(
        data.from_user_id,
        data.client_msg_id,
        data.body.model_dump(),
        data.extras(),
        to_user_id=data.to_user_id,
        group_id=data.group_id,
    )
    return jsonify(message=message, duplicate=not created), 201 if created else 200


@bp.post("/notices")
@requires("messages")
def send_notice():
    data = parse_json(NoticeIn)
    if data.group_id is not None:
        results = [notices.send_group_notice(data.group_id, data.text, data.client_msg_id)]
    else:
        results = notices.send_user_notices(data.user_ids, data.text, data.client_msg_id)
    created = any(result["new"] for result in results)
    return jsonify(notices=results), 201 if created else 200


@bp.get("/conversations/<int:conversation_id>/messages")
@requires("read", "messages")
def conversation_messages(conversation_id: int):
    page = message_services.conversation_history(
        conversation_id,
        before=int_arg("before", maximum=MAX_BIGINT),
        after=int_arg("after", maximum=MAX_BIGINT),
        limit=int_arg("limit", minimum=1, maximum=HISTORY_PAGE_MAX, default=50),
    )
    return jsonify(page)


@bp.get("/users/<int:user_id>/conversations")
@requires("read", "messages")
def user_conversations(user_id: int):
    limit = int_arg("limit", minimum=1, maximum=LIST_PAGE_MAX, default=LIST_PAGE_SIZE)
    cursor = request.args.get("cursor") or None
    return jsonify(message_services.user_conversations(user_id, cursor=cursor, limit=limit))


@bp.post("/conversations/<int:conversation_id>/messages/<seq:seq>/recall")
@requires("messages")
def recall(conversation_id: int, seq: int):
    return jsonify(message_services.recall_as_service(current_key().id, conversation_id, seq))
