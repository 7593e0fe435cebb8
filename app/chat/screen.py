"""Before a message is stored: the sensitive-word filter, then the company's `message.before_send`
webhooks. Both may refuse the message (an `ApiError` the sender sees) or change its body.

Runs in the sender's greenlet, outside any write transaction, before the message is handed to the
writer (app/chat/pipeline.py) or stored alone (app/chat/send.py): a webhook that takes its time
holds up only its own sender.
"""

from __future__ import annotations

from app import wordfilter
from app.webhooks import before_send


def screen_message(
    context, user_id: int, conversation_id: int, body: dict, client_msg_id: str | None = None
) -> dict:
    """The body to store (the one given, masked or replaced), or raises the refusal."""
    body = wordfilter.screen_body(body)
    return before_send.check(context, user_id, conversation_id, body, client_msg_id)
