"""Payloads of chat events and routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.validation import Payload

MAX_TEXT = 5000
CLIENT_MSG_ID = r"^[A-Za-z0-9_-]{8,64}$"


class TextBody(Payload):
    model_config = Payload.model_config | {"str_strip_whitespace": False}

    type: Literal["txt"]
    msg: str = Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S")


class SendIn(Payload):
    conversation_id: int = Field(gt=0)
    client_msg_id: str = Field(pattern=CLIENT_MSG_ID)
    body: TextBody


class MessageIn(Payload):
    client_msg_id: str = Field(pattern=CLIENT_MSG_ID)
    body: TextBody


class ReadIn(Payload):
    conversation_id: int = Field(gt=0)
    seq: int = Field(ge=0)


class SeqIn(Payload):
    seq: int = Field(ge=0)


class TypingIn(Payload):
    conversation_id: int = Field(gt=0)


class OpenDirectIn(Payload):
    user_id: int = Field(gt=0)


class MemberFlagsIn(Payload):
    pinned: bool | None = None
    muted: bool | None = None
    hidden: bool | None = None
