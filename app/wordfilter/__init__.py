"""The sensitive-word filter (word lists managed in the admin console)."""

from __future__ import annotations


def screen_body(body: dict) -> dict:
    """A message body with its text screened: masked, or refused with `content_blocked`."""
    return body
