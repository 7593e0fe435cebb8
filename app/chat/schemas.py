"""Payloads of chat events and routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.locales import N_
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


class AudioBody(Payload):
    type: Literal["audio"]
    upload_id: str = Field(pattern=UPLOAD_ID)


class FileBody(Payload):
    type: Literal["file"]
    upload_id: str = Field(pattern=UPLOAD_ID)


class LocationBody(Payload):
    type: Literal["loc"]
    title: str = Field(min_length=1, max_length=MAX_LOCATION_TITLE)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)


Body = Annotated[
    TextBody | ImageBody | VideoBody | AudioBody | FileBody | LocationBody, Field(discriminator="type")
]


MAX_MENTIONS = 50


class MessageIn(Payload):
    client_msg_id: str = Field(pattern=CLIENT_MSG_ID)
    body: Body
    # The seq of the message this one answers (same conversation, visible to the sender).
    reply_to: Seq | None = None
    # Members called by the message (validated against the current members), and @all.
    mentions: list[Id] = Field(default_factory=list, max_length=MAX_MENTIONS)
    mention_all: bool = False

    def extras(self) -> dict | None:
        """The send's reply and mentions for `pipeline.send`, None when it has none."""
        if self.reply_to is None and not self.mentions and not self.mention_all:
            return None
        return {"reply_to": self.reply_to, "mentions": self.mentions, "mention_all": self.mention_all}


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


class RecallIn(Payload):
    conversation_id: Id
    seq: Seq


class PlayIn(Payload):
    """`message:play`: a voice message the user played (app/chat/plays.py)."""

    conversation_id: Id
    seq: Seq


class EditIn(Payload):
    """A new text for a text message; `version` is the edit_count the client edits."""

    model_config = Payload.model_config | {"str_strip_whitespace": False}

    msg: str = Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S")
    version: Seq


class EditMessageIn(EditIn):
    conversation_id: Id
    seq: Seq


# A forward's target client_msg_id leaves room for the "-<i>" of its separate copies (≤ 64).
FORWARD_CLIENT_MSG_ID = r"^[A-Za-z0-9_-]{8,56}$"
MAX_FORWARD_MESSAGES = 100
MAX_FORWARD_TARGETS = 10
MAX_FORWARD_TITLE = 100


class ForwardTarget(Payload):
    conversation_id: Id
    client_msg_id: str = Field(pattern=FORWARD_CLIENT_MSG_ID)


class ForwardIn(Payload):
    """Messages of one conversation forwarded to up to 10 others, one by one or as one chat
    history (app/chat/actions/forward.py)."""

    conversation_id: Id
    seqs: list[Seq] = Field(min_length=1, max_length=MAX_FORWARD_MESSAGES)
    mode: Literal["separate", "merged"]
    targets: list[ForwardTarget] = Field(min_length=1, max_length=MAX_FORWARD_TARGETS)
    title: str | None = Field(default=None, max_length=MAX_FORWARD_TITLE)

    @field_validator("targets")
    @classmethod
    def _each_target_once(cls, targets: list[ForwardTarget]) -> list[ForwardTarget]:
        if len({target.conversation_id for target in targets}) != len(targets):
            raise ValueError(N_("each conversation at most once"))
        if len({target.client_msg_id for target in targets}) != len(targets):
            raise ValueError(N_("each client_msg_id at most once"))
        return targets


class ReactIn(Payload):
    """An emoji put on (`add`) or taken off a message. The service checks it is one emoji (so
    REST and socket refuse the same way, `invalid_emoji`); it is taken as sent, not trimmed."""

    model_config = Payload.model_config | {"str_strip_whitespace": False}

    conversation_id: Id
    seq: Seq
    emoji: str
    add: bool


class PinIn(Payload):
    conversation_id: Id
    seq: Seq
    pinned: bool


MAX_HIDE_SEQS = 100


class HideIn(Payload):
    """Messages deleted for oneself (app/chat/actions/hides.py)."""

    seqs: list[Seq] = Field(min_length=1, max_length=MAX_HIDE_SEQS)


class HideMessagesIn(HideIn):
    conversation_id: Id
