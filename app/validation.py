"""Request parsing: JSON bodies checked against pydantic models, errors as `fields`."""

from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, ValidationError

from app.errors import ApiError

M = TypeVar("M", bound=BaseModel)


class Payload(BaseModel):
    """Base of every request body: strict types, unknown fields refused, strings trimmed."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


def _fields(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "body"
        fields.setdefault(name, item["msg"])
    return fields


def validate(model: type[M], data) -> M:
    """Check `data` (already decoded) against `model`, or raise `invalid_input`."""
    if not isinstance(data, dict):
        raise ApiError("invalid_input", "Expected a JSON object.", 400, {"body": "must be an object"})
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError("invalid_input", "Some fields are invalid.", 400, _fields(error)) from None


def parse_json(model: type[M]) -> M:
    """The request's JSON body as `model`; malformed JSON and wrong content types are 400s."""
    if not request.is_json:
        raise ApiError("invalid_json", "Send a JSON body with Content-Type: application/json.", 400)
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError("invalid_json", "The body is not valid JSON.", 400)
    return validate(model, data)
