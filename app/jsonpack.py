"""The JSON module socket.io encodes and decodes its packets with (`json=` of the server).

orjson does the work; whatever it refuses goes to the standard module engine.io uses by
default, so packets are read and written as before, only faster (with one difference):
- decoding: orjson is strict RFC 8259, so `NaN`, numbers beyond a double's range and escaped
  unpaired surrogates fall back, and reach validation, which answers them with its usual
  error instead of the packet being dropped (engine.io's guard against integers of more than
  100 digits still applies there). One difference is kept: orjson reads an integer beyond
  64 bits as a float, as JavaScript would; every integer field is capped far below that, so
  validation refuses it with `invalid_input` either way, and it costs linear time to read;
- encoding: payloads are plain (str, int, float, bool, None, lists, dicts). Non-string keys
  become strings, as the standard module makes them; a datetime or a dataclass is refused as
  it always was (a TypeError from the standard module), and so are other objects.
The text is UTF-8 where the standard module wrote `\\uXXXX` escapes: a client parses the same
values from both.
"""

from __future__ import annotations

from typing import Any

import orjson
from engineio import json as standard

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(obj: Any, **kwargs: Any) -> str:
    """Compact JSON text (the `separators` socket.io passes are orjson's only layout)."""
    try:
        return orjson.dumps(obj, option=_OPTIONS).decode()
    except TypeError:
        return standard.dumps(obj, separators=(",", ":"))


def loads(text: str | bytes, **kwargs: Any) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return standard.loads(text)
