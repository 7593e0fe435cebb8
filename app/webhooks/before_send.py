"""The synchronous `message.before_send` webhook."""

from __future__ import annotations


def check(context, user_id: int, conversation_id: int, body: dict) -> dict:
    """The body to store after asking every enabled before-send hook (allowed, replaced), or
    raises the refusal."""
    return body
