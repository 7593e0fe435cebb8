"""The synchronous `message.before_send` webhook.

Every enabled hook subscribed to it is asked in turn (ordered by id; each sees the body the one
before it let through) and answers allow, reject (a code the sender sees) or replace (a new body,
checked as a client's would be and of the same type). A hook that does not answer in its
`timeout_ms`, cannot be reached, answers non-2xx or nonsense is passed over when it fails open,
and refuses the message (`before_send_unavailable`) when it fails closed.

Edits are asked too (app/chat/actions/edit.py), with the new text as a text body and the edited
message's seq as `edit_of`: one subscription covers everything a user can make others read, and a
receiver that ignores `edit_of` judges an edit exactly as a send. Forwards are not asked: each copy
is of a message that was checked when it was sent.

It runs in the sender's greenlet with no transaction open (app/chat/screen.py): while it waits
only that sender waits; other users' sends go on. With no such hook it costs nothing: the hook
list comes from memory (app/webhooks/registry.py).
"""

from __future__ import annotations

import logging
from typing import Literal

import gevent
import requests
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import select

from app.chat.schemas import Body
from app.errors import ApiError
from app.extensions import db
from app.models import User
from app.webhooks import registry, signing

log = logging.getLogger(__name__)

_BODY = TypeAdapter(Body)


class Answer(BaseModel):
    """What a hook may answer."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["allow", "reject", "replace"]
    code: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$")
    message: str | None = Field(default=None, max_length=200)
    body: dict | None = None


class _Failed(Exception):
    """The hook gave no usable answer."""


def wanted() -> bool:
    """Whether a send would ask any hook (from memory). A caller that checked the right to speak
    before asking re-checks it after: it may have been taken away while the hooks answered."""
    return bool(registry.subscribed(registry.BEFORE_SEND))


def check(
    context,
    user_id: int,
    conversation_id: int,
    body: dict,
    client_msg_id: str | None = None,
    *,
    edit_of: int | None = None,
) -> dict:
    """The body to store after asking every enabled before-send hook (allowed, replaced), or
    raises the refusal. `edit_of`: the seq of the message whose new text `body` is (an edit)."""
    hooks = registry.subscribed(registry.BEFORE_SEND)
    if not hooks:
        return body
    group_id = context.group.id if context.group is not None else None
    data = {
        "sender": _sender(context, user_id),
        "conversation": signing.conversation_ref(conversation_id, context.conversation.kind, group_id),
        "client_msg_id": client_msg_id,
        "body": body,
    }
    if edit_of is not None:
        data["edit_of"] = edit_of
    # The direct send path (app/chat/send.py) checks the right to speak in a transaction of its
    # own session: end it before waiting, so no connection (or SQLite snapshot) is held meanwhile.
    if db.session.registry.has() and db.session().in_transaction():
        db.session.commit()
    for hook in hooks:
        data["body"] = body
        try:
            answer = _ask(hook, data)
            body = _decide(answer, body)
        except _Failed as failure:
            log.warning(
                "before-send webhook %s (%s) failed: %s", hook.id, signing.shown_url(hook.url), failure
            )
            if not hook.fail_open:
                raise ApiError(
                    "before_send_unavailable", "The message could not be checked; try again later.", 503
                ) from None
    return body


def _sender(context, user_id: int) -> dict:
    # A connection of its own, closed before the request: the sender holds none while it waits.
    with db.engine.connect() as connection:
        external_id = connection.scalar(select(User.external_id).where(User.id == user_id))
    return {"id": user_id, "external_id": external_id, "username": context.sender.username}


def _ask(hook: registry.Hook, data: dict) -> Answer:
    payload = signing.envelope(registry.BEFORE_SEND, data)
    raw = signing.encode(payload)
    headers = signing.headers(registry.BEFORE_SEND, payload["id"], hook.secret, raw)
    seconds = hook.timeout_ms / 1000
    try:
        # requests' timeout bounds each read; gevent's, the whole exchange.
        with gevent.Timeout(seconds, _Failed(f"no answer in {hook.timeout_ms} ms")):
            response = signing.session().post(hook.url, data=raw, headers=headers, timeout=seconds)
            content = response.content
    except requests.RequestException as error:
        # Its message may quote the URL: a token in it must not reach the log.
        raise _Failed(signing.scrub(f"{type(error).__name__}: {error}", hook.url)) from None
    if not 200 <= response.status_code < 300:
        raise _Failed(f"HTTP {response.status_code}")
    try:
        return Answer.model_validate_json(content)
    except ValidationError as error:
        raise _Failed(f"bad answer: {error.errors()[:1]}") from None


def _decide(answer: Answer, body: dict) -> dict:
    if answer.action == "allow":
        return body
    if answer.action == "reject":
        raise ApiError(
            answer.code or "rejected_by_policy", answer.message or "The message was not accepted.", 403
        )
    if answer.body is None:
        raise _Failed("replace without a body")
    try:
        replaced = _BODY.validate_python(answer.body).model_dump()
    except ValidationError as error:
        raise _Failed(f"bad replacement body: {error.errors()[:1]}") from None
    if replaced["type"] != body["type"]:
        raise _Failed("a replacement body of another type")
    return replaced
