"""The sensitive-word filter (word lists managed in the admin console).

Every text a user shows others is screened before it is stored: message text (and a shared
location's title) on every send path through app/chat/screen.py, message edits, a merged
forward's title, nicknames, signatures, group names, intros and announcements. A word of a
`reject` list refuses the text with `content_blocked` (the word is not echoed: the sender knows
it, a prober learns less); a word of a `mask` list is replaced by *** and the text is kept;
reject wins over mask.

File names are not screened here: a file body names its upload only by id when it is screened,
and the name is the uploader's own file's. Forwarded copies were screened when first sent.

matcher.py holds the automaton and the rules; cache.py the process's copy and the hit counts;
services.py the lists' writes (the console's only way to change them).
"""

from __future__ import annotations

from app.chat.schemas import MAX_LOCATION_TITLE, MAX_TEXT
from app.errors import ApiError
from app.locales import N_
from app.wordfilter import cache

BLOCKED = N_("contains a blocked word")

# The text field of each message kind that carries one, and its largest size: masking makes a
# text longer (many one-character Chinese words, each made ***), and what is stored must still
# be a message the schema would take.
BODY_TEXT = {"txt": ("msg", MAX_TEXT), "loc": ("title", MAX_LOCATION_TITLE)}


def screen_text(field: str, text: str | None, max_length: int | None = None) -> str | None:
    """`text` as it may be stored: unchanged, or masked (cut to `max_length`, a column's size,
    when masking made it longer). A reject list's hit raises `content_blocked` naming `field`."""
    if not text:
        return text
    matcher = cache.matcher()
    if matcher is None:
        return text
    verdict = matcher.scan(text)
    if verdict is None:
        return text
    cache.count(verdict.hits)
    if verdict.rejected:
        raise ApiError(
            "content_blocked", "The text contains a word that is not allowed.", 400, {field: BLOCKED}
        )
    masked = verdict.masked
    return masked[:max_length] if max_length is not None else masked


def screen_fields(changes: dict, fields: tuple[str, ...], limits: dict[str, int] | None = None) -> dict:
    """`changes` with each of `fields` present screened (a profile's or group's settings)."""
    screened = dict(changes)
    for name in fields:
        value = screened.get(name)
        if isinstance(value, str):
            screened[name] = screen_text(name, value, (limits or {}).get(name))
    return screened


def screen_body(body: dict) -> dict:
    """A message body with its text screened: masked (cut to the kind's size), or refused with
    `content_blocked`."""
    field = BODY_TEXT.get(body.get("type"))
    if field is None:
        return body
    name, max_length = field
    text = body.get(name)
    if not isinstance(text, str):
        return body
    screened = screen_text(f"body.{name}", text, max_length)
    return body if screened is text else {**body, name: screened}
