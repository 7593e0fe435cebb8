"""Payloads of chat events and routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.validation import Id, Payload, Seq

MAX_TEXT = 5000
CLIENT_MSG_ID = r"^[A-Za-z0-9_-]{8,64}$"
UPLOAD_ID = r"^[0-9a-f]{32}$"
MAX_LOCATION_TITLE = 200


class TextBody(Payload):
    model_config = Payload.model_config | {"str_strip_whitespace": False}

    type: Literal["txt"]
    msg: str = Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S")


# Media bodies name an upload; the server fills in url, size, dimensions... from what it
# measured (app/media/services.py), never from the client.
class ImageBody(Payload):
    type: Literal["img"]
    upload_id: str = Field(pattern=UPLOAD_ID)


class VideoBody(Payload):
    type: Literal["video"]
    upload_id: str = Field(pattern=UPLOAD_ID)


class FileBody(Payload):
    type: Literal["file"]
    upload_id: str = Field(pattern=UPLOAD_ID)


class LocationBody(Payload):
    type: Literal["loc"]
    title: str = Field(min_length=1, max_length=MAX_LOCATION_TITLE)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)


Body = Annotated[TextBody | ImageBody | VideoBody | FileBody | LocationBody, Field(discriminator="type")]


MAX_MENTIONS = 50


class MessageIn(Payload):
    client_msg_id: str = Field(pattern=CLIENT_MSG_ID)
    body: Body
    # The seq of the message this one answers (same conversation, visible to the sender).
    reply_to: Seq | None = None
    # Members called by the message (validated against the current members), and @all.
    mentions: list[Id] = Field(default_factory=list, max_length=MAX_MENTIONS)
    mention_all: bool = False


class SendIn(MessageIn):
    conversation_id: Id


class ReadIn(Payload):
    conversation_id: Id
    seq: Seq


class SeqIn(Payload):
    seq: Seq


class TypingIn(Payload):
    conversation_id: Id


class OpenDirectIn(Payload):
    user_id: Id


class MemberFlagsIn(Payload):
    pinned: bool | None = None
    muted: bool | None = None
    hidden: bool | None = None
