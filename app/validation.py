"""The edge of the API: request bodies capped before parsing, JSON checked against pydantic
models (errors as `fields`), and one type per kind of value, reused by every schema.

- `Id`: a row id, a positive integer inside the 32-bit integer columns; `Seq`: a message
  position or stream cursor inside the 64-bit ones. Ids in URLs go through the `int` converter
  (out of range: 404), `seq` ones through `seq`.
- Text never carries NUL or an unpaired surrogate (neither can be stored): every `str` field of
  a `Payload`, every query-string value and every form value is checked.
- A JSON or form body is at most `MAX_JSON_BYTES`, refused with 413 before it is read; the
  upload route takes more (up to `MAX_CONTENT_LENGTH`), and a few routes more JSON or form
  (`JSON_BODY_LIMITS`, `FORM_BODY_LIMITS`).
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from flask import Flask, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.routing import IntegerConverter

from app.errors import ApiError, not_found
from app.locales import N_, _l, lazy

M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**31 - 1
MAX_BIGINT = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Seq = Annotated[int, Field(ge=0, le=MAX_BIGINT)]

# Characters no text column can hold: NUL (PostgreSQL refuses it) and unpaired surrogates
# (not encodable as UTF-8).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = N_("must not contain NUL characters or unpaired surrogates")

# Endpoints that take bodies larger than MAX_JSON_BYTES (bounded by MAX_CONTENT_LENGTH instead).
LARGE_BODY_ENDPOINTS = {"media.upload"}
# Forms allowed more than MAX_JSON_BYTES, each with its own cap (the console's word lists,
# app/admin/words.py, registers its forms here).
FORM_BODY_LIMITS: dict[str, int] = {}
# JSON bodies allowed more than MAX_JSON_BYTES, each with its own cap: the server API's batches
# (500 users of an import are ~80 KB; 500 ids with a notice's text or a group's settings).
BATCH_BODY_BYTES = 1 << 20
JSON_BODY_LIMITS: dict[str, int] = {
    "server_api.import_users": BATCH_BODY_BYTES,
    "server_api.send_notice": BATCH_BODY_BYTES,
    "server_api.group_create": BATCH_BODY_BYTES,
}
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


def has_unstorable_text(value) -> bool:
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, list | tuple | set | frozenset):
        return any(has_unstorable_text(item) for item in value)
    if isinstance(value, dict):
        return any(has_unstorable_text(key) or has_unstorable_text(item) for key, item in value.items())
    return False


class Payload(BaseModel):
    """Base of every request body: strict types, unknown fields refused, strings trimmed,
    no unstorable characters in any text."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value):
        if has_unstorable_text(value):
            raise ValueError(UNSTORABLE_MESSAGE)
        return value


def invalid(fields: dict[str, str]) -> ApiError:
    return ApiError("invalid_input", "Some fields are invalid.", 400, fields)


def _unstorable(name: str) -> ApiError:
    message = N_("Text must not contain NUL characters or unpaired surrogates.")
    return ApiError("invalid_input", message, 400, {name: UNSTORABLE_MESSAGE})


# pydantic's messages for the problems Parley's payloads can have, as msgids (English as pydantic
# words them), translated where the error is shown; a kind not listed keeps pydantic's English.
# Each entry: (singular, plural, the context value that chooses between them).
PYDANTIC_MESSAGES = {
    "missing": (N_("Field required"), None, None),
    "extra_forbidden": (N_("Extra inputs are not permitted"), None, None),
    "string_type": (N_("Input should be a valid string"), None, None),
    "int_type": (N_("Input should be a valid integer"), None, None),
    "bool_type": (N_("Input should be a valid boolean"), None, None),
    "list_type": (N_("Input should be a valid list"), None, None),
    "dict_type": (N_("Input should be a valid dictionary"), None, None),
    "model_type": (N_("Input should be a valid dictionary or instance of %(class_name)s"), None, None),
    "literal_error": (N_("Input should be %(expected)s"), None, None),
    "greater_than_equal": (N_("Input should be greater than or equal to %(ge)s"), None, None),
    "less_than_equal": (N_("Input should be less than or equal to %(le)s"), None, None),
    "greater_than": (N_("Input should be greater than %(gt)s"), None, None),
    "less_than": (N_("Input should be less than %(lt)s"), None, None),
    "string_pattern_mismatch": (N_("String should match pattern '%(pattern)s'"), None, None),
    "string_too_short": (
        N_("String should have at least %(min_length)s character"),
        N_("String should have at least %(min_length)s characters"),
        "min_length",
    ),
    "string_too_long": (
        N_("String should have at most %(max_length)s character"),
        N_("String should have at most %(max_length)s characters"),
        "max_length",
    ),
    "too_short": (
        N_("List should have at least %(min_length)s item after validation, not %(actual_length)s"),
        N_("List should have at least %(min_length)s items after validation, not %(actual_length)s"),
        "min_length",
    ),
    "too_long": (
        N_("List should have at most %(max_length)s item after validation, not %(actual_length)s"),
        N_("List should have at most %(max_length)s items after validation, not %(actual_length)s"),
        "max_length",
    ),
    # a validator's own ValueError: its text is a msgid too (N_ where it is raised)
    "value_error": (N_("Value error, %(error)s"), None, None),
}


def _field_text(item: dict):
    """A pydantic problem as a text translated where it is shown (app/errors.py)."""
    kind = PYDANTIC_MESSAGES.get(item["type"])
    context = item.get("ctx") or {}
    if kind is None:
        return item["msg"]
    singular, plural, count = kind
    msgid = plural if plural is not None and context.get(count) != 1 else singular
    values = {key: value if isinstance(value, int | float) else str(value) for key, value in context.items()}
    if item["type"] == "value_error":
        error = context.get("error")
        text = error.args[0] if isinstance(error, ValueError) and error.args else values.get("error", "")
        values["error"] = lazy(text) if isinstance(text, str) and text else text
    try:
        msgid % values
    except (KeyError, TypeError, ValueError):
        return item["msg"]
    return lazy(msgid, **values)


def _fields(error: ValidationError) -> dict:
    fields: dict = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(name, _field_text(item))
    return fields


def validate(model: type[M], data) -> M:
    """Check `data` (already decoded) against `model`, or raise `invalid_input`."""
    if not isinstance(data, dict):
        raise ApiError("invalid_input", "Expected a JSON object.", 400, {"body": "must be an object"})
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid(_fields(error)) from None
    except RecursionError:
        raise ApiError("invalid_input", "The payload is nested too deeply.", 400) from None


def parse_json(model: type[M]) -> M:
    """The request's JSON body as `model`; malformed JSON and wrong content types are 400s."""
    if not request.is_json:
        raise ApiError("invalid_json", "Send a JSON body with Content-Type: application/json.", 400)
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise ApiError("invalid_json", "The body is nested too deeply.", 400) from None
    if data is None:
        raise ApiError("invalid_json", "The body is not valid JSON.", 400)
    return validate(model, data)


def int_arg(name: str, *, minimum: int = 0, maximum: int = MAX_ID, default: int | None = None):
    """A whole-number query-string parameter within [minimum, maximum] (ids by default)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise invalid({name: "must be a whole number"})
    value = int(raw)
    if value < minimum or value > maximum:
        raise invalid({name: _l("must be between %(min)s and %(max)s", min=minimum, max=maximum)})
    return value


class IdConverter(IntegerConverter):
    """`<int:...>` in a URL: a row id (or a 0/1 flag). Out of 0..MAX_ID it is answered 404 by
    the edge hook (a converter refusing it would let werkzeug answer 405 when a sibling rule
    has other methods)."""

    regex = r"\d{1,30}"
    lowest, highest = 0, MAX_ID


class SeqConverter(IdConverter):
    """`<seq:...>` in a URL: a message position, 0..MAX_BIGINT."""

    lowest, highest = 0, MAX_BIGINT


def _out_of_range_path_id() -> bool:
    converters = getattr(request.url_rule, "_converters", {})
    for name, converter in converters.items():
        if isinstance(converter, IdConverter):
            value = (request.view_args or {}).get(name)
            if not isinstance(value, int) or not converter.lowest <= value <= converter.highest:
                return True
    return False


def _check_admin_list_args(app: Flask) -> None:
    """The admin console's model views read `id` and `page` from the query string themselves:
    an id outside its primary key's range is no record (404), a page must be a small number."""
    from flask_admin.model import BaseModelView
    from sqlalchemy import BigInteger

    view = getattr(app.view_functions.get(request.endpoint), "__self__", None)
    if not isinstance(view, BaseModelView):
        return
    raw_page = request.args.get("page")
    if raw_page is not None and not (raw_page.isascii() and raw_page.isdigit() and len(raw_page) <= 6):
        raise invalid({"page": "must be a whole number below 1000000"})
    raw_id = request.args.get("id")
    if raw_id is None:
        return
    columns = list(view.model.__table__.primary_key.columns)
    if len(columns) == 1 and columns[0].type.python_type is int:
        highest = MAX_BIGINT if isinstance(columns[0].type, BigInteger) else MAX_ID
        if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 19 and int(raw_id) <= highest):
            raise not_found("record")


def register_request_limits(app: Flask) -> None:
    """Before any other hook reads the body: cap its size, refuse unstorable text in the path,
    the query string and form fields. Call before the blueprints (converters) and CSRF."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["seq"] = SeqConverter

    @app.before_request
    def check_request_edges():
        if request.endpoint not in LARGE_BODY_ENDPOINTS:
            larger = (JSON_BODY_LIMITS if request.is_json else FORM_BODY_LIMITS).get(request.endpoint, 0)
            limit = max(app.config["MAX_JSON_BYTES"], larger)
            # Bounds the stream too, so a chunked body without Content-Length stops at the cap.
            request.max_content_length = limit
            request.max_form_memory_size = limit
            if request.content_length is not None and request.content_length > limit:
                raise ApiError(
                    "payload_too_large",
                    _l("The request body is larger than %(limit)s bytes.", limit=limit),
                    413,
                )
        if UNSTORABLE.search(request.path) or _out_of_range_path_id():
            raise not_found()
        _check_admin_list_args(app)
        for name, value in request.args.items(multi=True):
            if UNSTORABLE.search(name) or UNSTORABLE.search(value):
                raise _unstorable(name)
        if request.endpoint not in LARGE_BODY_ENDPOINTS and request.mimetype in FORM_TYPES:
            for name, value in request.form.items(multi=True):
                if UNSTORABLE.search(name) or UNSTORABLE.search(value):
                    raise _unstorable(name)
