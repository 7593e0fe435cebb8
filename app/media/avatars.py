"""What an avatar may be: one rule for every path that sets a user's or a group's picture.

Everyone who sees a user or a group fetches its avatar, so a bad one costs every viewer (a path
such as `/admin/` answered 403 and showed a broken picture to all). An avatar is one of:

- Parley's own avatar media: an upload made with `purpose=avatar`, named by its URL
  `/media/<id>` or its thumbnail's `/media/<id>/thumb` (the forms an upload answer gives).
  A user or a group owner/admin may name only an avatar upload they made themselves; the
  server API (acting for the deployment) may name any avatar upload. Avatar uploads are public
  (`viewable_upload`) and upload cleanup keeps those a user or group names.
- A link to a picture elsewhere: a well-formed `https://` URL of at most 500 characters, with a
  host, no user name or password, no whitespace or control characters and none of the
  characters a URL must escape; not a link to this server itself (its own media is named by
  path, so nothing else on it becomes everyone's request).

`None` or `""` clears the avatar. A value equal to the one already set is accepted as it is
(saving a form with other changes must not fail on an avatar set under older rules). Anything
else is `invalid_avatar` (400, `fields.avatar_url`), and nothing changes.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated
from urllib.parse import urlsplit

from flask import current_app, has_request_context, request
from pydantic import StringConstraints

from app.errors import ApiError
from app.extensions import db
from app.locales import N_, _l
from app.models import Upload

MAX_LENGTH = 500
# The payload type caps what is parsed at all; the rule below says what is accepted.
AvatarUrl = Annotated[str, StringConstraints(max_length=2000)]

OWN_MEDIA = re.compile(r"/media/([0-9a-f]{32})(/thumb)?")
# Characters a URL carries only escaped (RFC 3986), and the backslash browsers read as "/".
UNSAFE_CHARS = re.compile(r'[<>"{}|\\^`]')
HOST_LABEL = re.compile(r"^(?!-)[^\W_](?:[\w-]{0,61}[^\W_])?$")

RULE = N_("an avatar you uploaded (/media/<id>) or an https:// link")


def invalid_avatar(problem: str) -> ApiError:
    return ApiError(
        "invalid_avatar",
        "The avatar must be a picture uploaded as an avatar, or an https:// link to one.",
        400,
        {"avatar_url": problem},
    )


def check(value: str | None, *, actor_id: int | None, current: str | None = None, by_server: bool = False):
    """The avatar to store for `value` (None clears), or `invalid_avatar`.

    `actor_id`: who sets it (a user, or the owner/admin editing a group); their own avatar
    uploads are accepted. `by_server`: the server API, which may name any avatar upload.
    `current`: the value already stored, accepted unchanged."""
    if value is None or value == "":
        return None
    if value == current:
        return value
    if len(value) > MAX_LENGTH:
        raise invalid_avatar(_l("at most %(max)s characters", max=MAX_LENGTH))
    own = OWN_MEDIA.fullmatch(value)
    if own:
        _check_upload(own.group(1), actor_id, by_server)
        return value
    if value.startswith("/"):
        raise invalid_avatar(RULE)
    return https_link(value)


def link_or_none(value: str | None) -> str | None:
    """An outside provider's picture URL (GitHub's) if it is an acceptable link, else None."""
    if not value:
        return None
    try:
        return https_link(value)
    except ApiError:
        return None


def https_link(value: str) -> str:
    """`value` if it is a well-formed https:// link to a picture elsewhere; else `invalid_avatar`."""
    if len(value) > MAX_LENGTH:
        raise invalid_avatar(_l("at most %(max)s characters", max=MAX_LENGTH))
    if not value.startswith("https://"):
        raise invalid_avatar(RULE)
    if UNSAFE_CHARS.search(value) or any(unicodedata.category(char)[0] in "CZ" for char in value):
        raise invalid_avatar('a link without spaces, control characters or unescaped <>"{}|\\^`')
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- reading it checks it
    except ValueError:
        raise invalid_avatar("a well-formed https:// link") from None
    if "@" in parts.netloc:
        raise invalid_avatar("a link without a user name or password")
    host = parts.hostname or ""
    if not _valid_host(host, parts.netloc):
        raise invalid_avatar("a link with a host name")
    if _is_this_server(host):
        raise invalid_avatar("a picture on this server must be an avatar upload (/media/<id>)")
    return value


def _valid_host(host: str, netloc: str) -> bool:
    if not host:
        return False
    if netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(HOST_LABEL.match(label) for label in labels)


def _is_this_server(host: str) -> bool:
    """Whether a link points at this Parley (any port): the host the request came to, or
    PUBLIC_BASE_URL's."""
    names = [current_app.config.get("PUBLIC_BASE_URL") or ""]
    if has_request_context():
        names.append(f"//{request.host}")
    ours = set()
    for name in names:
        try:
            ours.add((urlsplit(name).hostname or "").rstrip("."))
        except ValueError:
            continue
    ours.discard("")
    return host.lower().rstrip(".") in ours


def _check_upload(upload_id: str, actor_id: int | None, by_server: bool) -> None:
    upload = db.session.get(Upload, upload_id)
    if upload is None:
        raise invalid_avatar("no such upload")
    if upload.kind != "avatar":
        raise invalid_avatar("not an avatar upload (upload it with purpose=avatar)")
    if not by_server and (actor_id is None or upload.owner_id != actor_id):
        raise invalid_avatar("an avatar someone else uploaded")
