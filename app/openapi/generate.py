"""The OpenAPI 3.1 document of every route under /api/, built from the running application.

Paths and methods come from `app.url_map`, path parameters from the rules' converters, inputs
from each view's own source (app/openapi/introspect.py: the pydantic model it validates with,
the query-string values it reads), security from its decorators (`login_required`: the session
cookie; `requires(...)`: an API key with one of the listed scopes), summaries from docstrings,
tags from blueprints. Component schemas are pydantic's own JSON Schema (2020-12, the dialect
of OpenAPI 3.1), so the document cannot drift from what the routes accept.

`build(app)` returns the document and a list of problems: routes it could not fully describe.
The server logs them; tests/test_openapi.py fails on any.
"""

from __future__ import annotations

import inspect
import re
import sys
import tomllib
from dataclasses import dataclass, field

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import AnyConverter, PathConverter, Rule, UnicodeConverter

from app.openapi.introspect import ViewFacts, inspect_view
from app.validation import MAX_BIGINT, MAX_ID, IdConverter, SeqConverter
from config import BASE_DIR

REF = "#/components/schemas/{model}"
ERROR_RESPONSE = {"$ref": "#/components/responses/Error"}
SERVER_PREFIX = "/api/server/v1/"
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")

# A route whose body is not JSON is described here, by hand; the generator checks these
# field names against the ones the view reads (request.files / request.form).
MULTIPART_BODIES = {
    "media.upload": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {
                "type": "string",
                "contentMediaType": "application/octet-stream",
                "description": "The file.",
            },
            "purpose": {"type": "string", "enum": ["message", "avatar", "voice"], "default": "message"},
            "duration": {
                "type": "string",
                "pattern": r"^\s*\d{1,5}(\.\d{1,6})?\s*$",
                "description": "With purpose=voice only: the recorder's own measure in seconds; a file"
                " that disagrees by more than max(1 s, 10 %) is refused (duration_mismatch).",
            },
        },
    },
}
# Routes that answer something other than JSON.
RESPONSE_TYPES = {"openapi.docs": "text/html"}


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str]


class Error(BaseModel):
    """Every error: a stable `code` (docs/PROTOCOL.md), a `message` for people, and `fields`
    naming what is wrong with which input."""

    error: ErrorDetail


@dataclass
class Document:
    spec: dict
    problems: list[str] = field(default_factory=list)


def _version() -> str:
    with open(BASE_DIR / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]["version"]


def _path_parameter(name: str, converter, problems: list[str], where: str) -> dict:
    if isinstance(converter, SeqConverter):
        schema = {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_BIGINT}
    elif isinstance(converter, IdConverter):
        schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    elif isinstance(converter, AnyConverter):
        schema = {"type": "string", "enum": sorted(converter.items)}
    elif isinstance(converter, UnicodeConverter | PathConverter):
        schema = {"type": "string"}
    else:
        problems.append(f"{where}: no schema for the converter {type(converter).__name__} of <{name}>")
        schema = {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _summary(view, endpoint: str) -> tuple[str, str | None]:
    """The docstring's first sentence, and the whole docstring when it says more; the
    function's name when it has none."""
    doc = inspect.getdoc(view)
    if not doc:
        return endpoint.rsplit(".", 1)[-1].replace("_", " ").capitalize(), None
    paragraphs = [" ".join(paragraph.split()) for paragraph in doc.split("\n\n")]
    first = paragraphs[0]
    end = first.find(". ")
    summary = first[: end + 1] if end >= 0 else first
    description = "\n\n".join(paragraphs)
    return summary, description if description != summary else None


def _security(rule: Rule, facts: ViewFacts, problems: list[str], where: str) -> list[dict] | None:
    if rule.rule.startswith(SERVER_PREFIX):
        if not facts.scopes:
            problems.append(f"{where}: a server API route without requires(scope, ...)")
            return None
        # One requirement per scope: any one of them lets the key through.
        return [{"bearerAuth": [scope]} for scope in facts.scopes]
    if facts.login_required:
        return [{"cookieAuth": []}]
    return None


def _request_body(endpoint: str, facts: ViewFacts, refs: dict, problems: list[str], where: str):
    if facts.form_fields or facts.file_fields or endpoint in MULTIPART_BODIES:
        schema = MULTIPART_BODIES.get(endpoint)
        read = facts.form_fields | facts.file_fields
        if schema is None or set(schema["properties"]) != read:
            documented = sorted(schema["properties"]) if schema else None
            problems.append(f"{where}: reads form fields {sorted(read)}, MULTIPART_BODIES has {documented}")
        if schema is None:
            return None
        return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    if not facts.body_models:
        return None
    options = [refs[(model, "validation")] for model in facts.body_models]
    schema = options[0] if len(options) == 1 else {"oneOf": options}
    return {"required": not facts.body_optional, "content": {"application/json": {"schema": schema}}}


def _query_parameters(facts: ViewFacts, model_schemas: dict) -> list[dict]:
    """Values read one by one, then a model's fields (`validate(Model, request.args...)`),
    which say more about the same name."""
    parameters = {
        name: {"name": name, "in": "query", "schema": schema} for name, schema in facts.query.items()
    }
    for model in facts.query_models:
        schema = model_schemas[model]
        required = set(schema.get("required", []))
        for name, property_schema in schema.get("properties", {}).items():
            parameters[name] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": property_schema,
            }
    return [parameters[name] for name in sorted(parameters)]


def _responses(endpoint: str, rule: Rule, facts: ViewFacts, has_input: bool, security) -> dict:
    responses: dict = {}
    for status in sorted(facts.statuses):
        if status == 204:
            responses["204"] = {"description": "Done; no content."}
            continue
        kind = RESPONSE_TYPES.get(endpoint, "application/json")
        schema = {"type": "string"} if kind == "text/html" else {"type": "object"}
        text = "Created." if status == 201 else "OK."
        responses[str(status)] = {"description": text, "content": {kind: {"schema": schema}}}
    if has_input:
        responses["400"] = ERROR_RESPONSE
    if security:
        responses["401"] = ERROR_RESPONSE
    if rule.rule.startswith(SERVER_PREFIX):
        responses["403"] = ERROR_RESPONSE
        responses["429"] = ERROR_RESPONSE
    if rule.arguments:
        responses["404"] = ERROR_RESPONSE
    ordered = dict(sorted(responses.items()))
    ordered["default"] = ERROR_RESPONSE
    return ordered


def _tags(app: Flask, names: set[str]) -> list[dict]:
    tags = []
    for name in sorted(names):
        blueprint = app.blueprints.get(name)
        module = sys.modules.get(blueprint.import_name) if blueprint else None
        doc = (module.__doc__ or "").strip().split("\n\n", 1)[0] if module else ""
        tags.append({"name": name, "description": " ".join(doc.split())} if doc else {"name": name})
    return tags


def _operation_ids(rules: list[tuple[Rule, str]]) -> dict[tuple[str, str], str]:
    """`blueprint_view`, with the method added when one view answers several."""
    methods_per_endpoint: dict[str, int] = {}
    for rule, _ in rules:
        methods_per_endpoint[rule.endpoint] = methods_per_endpoint.get(rule.endpoint, 0) + 1
    ids, seen = {}, set()
    for rule, method in rules:
        base = rule.endpoint.replace(".", "_")
        name = base if methods_per_endpoint[rule.endpoint] == 1 else f"{base}_{method.lower()}"
        candidate, number = name, 2
        while candidate in seen:
            candidate, number = f"{name}_{number}", number + 1
        seen.add(candidate)
        ids[(rule.rule, method)] = candidate
    return ids


def api_rules(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) under /api/ the document must describe."""
    pairs = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            pairs += [(rule, method) for method in sorted((rule.methods or set()) - SKIPPED_METHODS)]
    return sorted(pairs, key=lambda pair: (pair[0].rule, pair[1]))


def openapi_path(rule: Rule) -> str:
    return _ARGUMENT.sub(r"{\1}", rule.rule)


def build(app: Flask) -> Document:
    problems: list[str] = []
    rules = api_rules(app)
    facts_by_endpoint: dict[str, ViewFacts] = {}
    for rule, _ in rules:
        if rule.endpoint not in facts_by_endpoint:
            view = app.view_functions.get(rule.endpoint)
            if view is None:
                problems.append(f"{rule.rule}: no view for the endpoint {rule.endpoint}")
                continue
            facts = inspect_view(view)
            problems += [f"{rule.endpoint}: {text}" for text in facts.problems]
            facts_by_endpoint[rule.endpoint] = facts

    models: list[type[BaseModel]] = [Error]
    for facts in facts_by_endpoint.values():
        models += [model for model in facts.body_models + facts.query_models if model not in models]
    refs, definitions = models_json_schema([(model, "validation") for model in models], ref_template=REF)
    schemas = definitions.get("$defs", {})
    model_schemas = {
        model: schemas[refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]] for model in models
    }

    operation_ids = _operation_ids(rules)
    paths: dict[str, dict] = {}
    tags: set[str] = set()
    for rule, method in rules:
        facts = facts_by_endpoint.get(rule.endpoint)
        if facts is None:
            continue
        where = f"{method} {rule.rule}"
        view = app.view_functions[rule.endpoint]
        summary, description = _summary(view, rule.endpoint)
        tag = rule.endpoint.split(".", 1)[0] if "." in rule.endpoint else "default"
        tags.add(tag)
        converters = getattr(rule, "_converters", {})
        parameters = [
            _path_parameter(name, converters[name], problems, where) for name in sorted(rule.arguments)
        ]
        parameters += _query_parameters(facts, model_schemas)
        security = _security(rule, facts, problems, where)
        operation: dict = {
            "tags": [tag],
            "summary": summary,
            "operationId": operation_ids[(rule.rule, method)],
        }
        if description:
            operation["description"] = description
        if parameters:
            operation["parameters"] = parameters
        body = _request_body(rule.endpoint, facts, refs, problems, where)
        if body is not None:
            operation["requestBody"] = body
        if security:
            operation["security"] = security
            if rule.rule.startswith(SERVER_PREFIX):
                operation["x-parley-scopes"] = list(facts.scopes)
        has_input = body is not None or bool(parameters)
        operation["responses"] = _responses(rule.endpoint, rule, facts, has_input, security)
        paths.setdefault(openapi_path(rule), {})[method.lower()] = operation

    cookie = app.config.get("SESSION_COOKIE_NAME", "session")
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley API",
            "version": _version(),
            "description": (
                "The client API (`/api/v1`, a signed-in device's session cookie) and the server "
                "API (`/api/server/v1`, an API key). Generated from the code: the request schemas "
                "are the pydantic models the routes validate with. Conventions, cursors, ordering "
                "and the socket.io events are in docs/PROTOCOL.md; integration in "
                "docs/INTEGRATION.md."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": _tags(app, tags),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "An error (see `error.code`).",
                    "content": {"application/json": {"schema": refs[(Error, "validation")]}},
                }
            },
            "securitySchemes": {
                "cookieAuth": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": cookie,
                    "description": "A device session, set by `POST /api/v1/auth/login` or `/register`.",
                },
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API key made in the admin console: `Authorization: Bearer pk_…`. "
                        "Each operation lists the scopes any one of which lets the key through."
                    ),
                },
            },
        },
    }
    return Document(spec, problems)
