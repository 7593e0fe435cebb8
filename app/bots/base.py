"""What every robot provider offers: `reply(user, conversation, text) -> text`.

A provider answers one message of `user` in `conversation` (both loaded models, detached from
any session) or raises `ProviderError`; the caller bounds the time it may take and turns any
failure into the polite fallback reply.
"""

from __future__ import annotations

import re
from typing import Protocol

from app.models import Conversation, User

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

FALLBACK = {
    "zh": "抱歉，我现在有点忙，没能及时回答。请稍后再试。",
    "en": "Sorry, I can't answer right now. Please try again in a moment.",
}


class ProviderError(Exception):
    """The provider could not answer (refused, failed or answered nonsense); the message says why."""


class Provider(Protocol):
    name: str

    def reply(self, user: User, conversation: Conversation, text: str) -> str: ...


def language(text: str) -> str:
    """ "zh" for a message with Chinese characters in it, else "en"."""
    return "zh" if CJK.search(text) else "en"


def fallback_reply(text: str) -> str:
    """The polite answer when the provider failed or took too long, in the message's language."""
    return FALLBACK[language(text)]
