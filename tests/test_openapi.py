"""The OpenAPI document (/api/openapi.json) against the running application: every route under
/api/ and each of its methods is in it; each JSON body's documented schema is the model the
route validates with — checked by reading the view's source and, for real, by sending probe
bodies and comparing the `fields` the route answers with the documented properties; it is
valid OpenAPI 3.1; and /api/docs serves the vendored Swagger UI under its own policy."""

from __future__ import annotations

import copy
import functools
import inspect
import re

import pytest
from flask import Flask, request
from flask_login import login_required
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from pydantic import BaseModel
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.openapi.generate import build
from app.server_api.keys import requires
from app.validation import MAX_BIGINT, MAX_ID, Payload, int_arg, parse_json, validate
from config import BASE_DIR

SKIPPED = {"HEAD", "OPTIONS"}
ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
PARSE_JSON = re.compile(r"\bparse_json\(\s*([\w.]+)\s*\)")
VALIDATE = re.compile(r"\bvalidate\(\s*([\w.]+)\s*,([^\n]*)")
# A field name no model has: every Payload refuses unknown fields, so it is always reported.
PROBE = "zz_openapi_probe"
# A value no field accepts: not a string, number, list or null, and a dict whose key holds a NUL.
BAD = {"\x00": None}


@pytest.fixture
def spec(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def routes(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule under /api/, read from the URL map itself."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = ARGUMENT.sub(r"{\1}", rule.rule)
            found |= {(path, method.lower()) for method in rule.methods - SKIPPED}
    return found


def operations(spec) -> dict[tuple[str, str], dict]:
    return {(path, method): op for path, item in spec["paths"].items() for method, op in item.items()}


def inline(schema, definitions: dict, prefix: str, depth: int = 0):
    """`schema` with every `$ref` to `prefix + name` replaced by the definition itself."""
    assert depth < 30, "schemas nested too deeply (or recursive)"
    if isinstance(schema, list):
        return [inline(item, definitions, prefix, depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema and schema["$ref"].startswith(prefix):
        target = definitions[schema["$ref"][len(prefix) :]]
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return inline({**target, **rest}, definitions, prefix, depth + 1)
    result = {}
    for key, value in schema.items():
        if key == "$defs":
            continue
        if key == "mapping" and isinstance(value, dict):  # discriminator mapping: refs as strings
            result[key] = {name: ref.rsplit("/", 1)[1] for name, ref in value.items()}
        else:
            result[key] = inline(value, definitions, prefix, depth + 1)
    return result


def model_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    return inline(schema, schema.get("$defs", {}), "#/$defs/")


def documented_schema(spec, schema) -> dict:
    return inline(schema, spec["components"]["schemas"], "#/components/schemas/")


def resolve(dotted: str, namespace: dict):
    head, *rest = dotted.split(".")
    value = namespace[head]
    for name in rest:
        value = getattr(value, name)
    return value


def validated_models(view) -> tuple[list, list]:
    """(body models, query-string models) the view's own source validates with."""
    function = inspect.unwrap(view)
    source = inspect.getsource(function)
    body = [resolve(name, function.__globals__) for name in PARSE_JSON.findall(source)]
    query = []
    for name, rest in VALIDATE.findall(source):
        # validate(Model, row) on part of a parsed body is an inner check, not the route's input.
        if "request.args" in rest:
            query.append(resolve(name, function.__globals__))
        elif "request." in rest:
            body.append(resolve(name, function.__globals__))
    return body, query


# --- completeness --------------------------------------------------------------------------


def test_every_route_under_api_and_each_method_is_documented(app, spec):
    documented = set(operations(spec))
    missing = sorted(routes(app) - documented)
    assert missing == [], f"routes missing from /api/openapi.json: {missing}"
    extra = sorted(documented - routes(app))
    assert extra == [], f"documented operations with no route: {extra}"
    # Both APIs and the document's own routes are there.
    paths = {path for path, _ in documented}
    assert {"/api/v1/auth/login", "/api/openapi.json", "/api/docs"} <= paths
    assert any(path.startswith("/api/server/v1/") for path in paths)


def test_the_generator_understands_every_route(app):
    problems = build(app).problems
    assert problems == [], "routes the generator could not describe:\n" + "\n".join(problems)


def test_every_validated_model_is_the_documented_schema(app, spec):
    ops = operations(spec)
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        body_models, query_models = validated_models(app.view_functions[rule.endpoint])
        path = ARGUMENT.sub(r"{\1}", rule.rule)
        for method in rule.methods - SKIPPED:
            op = ops[(path, method.lower())]
            where = f"{method} {rule.rule} ({rule.endpoint})"
            content = op.get("requestBody", {}).get("content", {})
            if body_models:
                assert set(content) == {"application/json"}, where
                documented = documented_schema(spec, content["application/json"]["schema"])
                expected = [model_schema(model) for model in body_models]
                assert documented == (expected[0] if len(expected) == 1 else {"oneOf": expected}), where
                checked += 1
            else:
                assert "application/json" not in content, f"{where}: a JSON body the view does not parse"
            for model in query_models:
                params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
                expected = model_schema(model)
                for name, schema in expected["properties"].items():
                    assert documented_schema(spec, params[name]["schema"]) == schema, where
                    assert params[name]["required"] == (name in expected.get("required", [])), where
    assert checked >= 30


# --- the routes answer what the document says ----------------------------------------------


@pytest.fixture
def world(app, make_user, login, befriend, api_key):
    """Rows for every path parameter of a JSON-body route: alice (signed in) and bob, friends
    with a direct conversation holding one message; a group alice owns with bob; a friend
    request from carol to alice; bob with an external id."""
    alice, bob = make_user("alice"), make_user("bob")
    make_user("carol")
    befriend(alice, bob)
    client = login("alice")
    conversation = client.post("/api/v1/conversations", json={"user_id": bob}).get_json()["conversation"][
        "id"
    ]
    sent = client.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"client_msg_id": "openapi-probe-1", "body": {"type": "txt", "msg": "hi"}},
    )
    assert sent.status_code == 201, sent.get_json()
    group = client.post("/api/v1/groups", json={"name": "Probes", "member_ids": [bob]}).get_json()["group"][
        "id"
    ]
    friend_request = login("carol").post("/api/v1/friend-requests", json={"user_id": alice, "message": ""})
    with app.app_context():
        db.session.get(User, bob).external_id = "ext-bob"
        db.session.commit()
    values = {
        "conversation_id": conversation,
        "seq": 1,
        "group_id": group,
        "user_id": bob,
        "friend_id": bob,
        "request_id": friend_request.get_json()["request"]["id"],
        "external_id": "ext-bob",
    }
    return client, api_key(), values


# (path, method) -> why a probe body cannot reach the route's validation. Keep it empty if
# you can: build the rows the route needs in `world` instead.
PROBE_EXCEPTIONS: dict[tuple[str, str], str] = {}


def top_level(fields: dict) -> set[str]:
    return {name.split(".", 1)[0] for name in fields}


def probe(send, where: str, body: dict, expected: set[str]) -> None:
    """`body` is refused with `invalid_input` naming exactly `expected` (top-level names)."""
    response = send(json=body)
    answer = response.get_json() or {}
    where = f"{where} with {body}"
    assert response.status_code == 400, f"{where}: {response.status_code} {answer}"
    assert answer["error"]["code"] == "invalid_input", f"{where}: {answer}"
    named = top_level(answer["error"]["fields"])
    assert named == expected, (
        f"{where}: the route names {sorted(named)}, the document says {sorted(expected)}"
    )


def test_each_json_body_route_refuses_exactly_what_its_documented_schema_requires(spec, world):
    """Probes: `{}` must name the documented required properties; an unknown field must be
    refused with them; every documented property given a value no type accepts must be named,
    and nothing else. A route documented with another model than it validates with fails here
    unless the two differ only in optional fields the document lacks, which no probe can see:
    the source check above covers those."""
    client, key_headers, values = world
    checked = []
    for (path, method), op in sorted(operations(spec).items()):
        content = op.get("requestBody", {}).get("content", {})
        if "application/json" not in content or (path, method) in PROBE_EXCEPTIONS:
            continue
        schema = documented_schema(spec, content["application/json"]["schema"])
        assert "oneOf" not in schema, f"{method} {path}: several models; teach this test to probe them"
        required = set(schema.get("required", []))
        properties = set(schema.get("properties", {}))
        names = re.findall(r"{(\w+)}", path)
        unknown = [name for name in names if name not in values]
        assert not unknown, f"{method} {path}: add a row for {unknown} to the `world` fixture"
        url = path.format(**{name: values[name] for name in names})
        server = path.startswith("/api/server/")
        headers = key_headers if server else {}
        http = client if not server else client.application.test_client()

        send = functools.partial(http.open, url, method=method.upper(), headers=headers)
        where = f"{method.upper()} {path}"
        if required:
            probe(send, where, {}, required)
        probe(send, where, {PROBE: BAD}, required | {PROBE})
        probe(send, where, {**dict.fromkeys(properties, BAD), PROBE: BAD}, properties | {PROBE})
        checked.append((path, method))
    assert len(checked) >= 40, checked
    assert any(path.startswith("/api/server/v1/") for path, _ in checked)


def success_statuses(op: dict) -> set[int]:
    return {int(status) for status in op["responses"] if status.startswith("2")}


def test_valid_server_api_calls_answer_the_documented_success_status(spec, world):
    """Every server API route documented to create (201), and the writes whose body may be left
    out, called validly: the status is one the document gives (a route whose status reaches the
    answer through a helper, `_user_answer(user, 201)`, must still be documented 201), and a
    body the route does without is documented as not required."""
    client, headers, values = world
    http = client.application.test_client()
    with http.application.app_context():
        alice = db.session.scalar(select(User.id).where(User.username == "alice"))
    calls = [
        ("post", "/api/server/v1/users", {"external_id": "probe-new"}),
        ("post", "/api/server/v1/users/import", {"users": [{"external_id": "probe-import"}]}),
        ("post", "/api/server/v1/users/{user_id}/sign-in-tokens", {}),
        ("post", "/api/server/v1/groups", {"owner_id": alice, "name": "Probe group"}),
        (
            "post",
            "/api/server/v1/messages",
            {
                "from_user_id": alice,
                "to_user_id": values["user_id"],
                "client_msg_id": "openapi-status-1",
                "body": {"type": "txt", "msg": "hi"},
            },
        ),
        ("post", "/api/server/v1/notices", {"text": "hello", "user_ids": [values["user_id"]]}),
        ("post", "/api/server/v1/users/{user_id}/ban", {}),
        ("delete", "/api/server/v1/users/{user_id}/ban", None),
        ("post", "/api/server/v1/users/{user_id}/mute", {}),
        ("delete", "/api/server/v1/users/{user_id}/mute", None),
    ]
    ops = operations(spec)
    created = {
        key for key, op in ops.items() if key[0].startswith("/api/server/") and 201 in success_statuses(op)
    }
    assert created <= {(path, method) for method, path, _ in calls}, "probe every create route here"
    for method, path, body in calls:
        op = ops[(path, method)]
        url = path.format(**values)
        response = http.open(url, method=method.upper(), headers=headers, json=body)
        where = f"{method.upper()} {path}"
        assert 200 <= response.status_code < 300, f"{where}: {response.status_code} {response.get_json()}"
        documented = success_statuses(op)
        assert response.status_code in documented, (
            f"{where} answered {response.status_code}, documented {documented}"
        )
        if 201 in documented:
            assert response.status_code == 201, where  # a first, valid call creates
        if body is None:
            assert op["requestBody"]["required"] is False, f"{where} works without a body"
    assert ops[("/api/server/v1/users", "post")]["requestBody"]["required"] is True


def test_the_generator_follows_statuses_into_the_views_helpers():
    from app.openapi.introspect import inspect_view

    assert inspect_view(_created_through_helper).statuses == {201}
    assert inspect_view(_default_through_helper).statuses == {200}
    assert inspect_view(_optional_body).body_optional is True
    assert inspect_view(_required_body).body_optional is False


def _answer(value, status: int = 200):
    return {"value": value}, status


def _created_through_helper():
    return _answer(1, 201)


def _default_through_helper():
    return _answer(1)


def _optional_body():
    data = parse_json(ProbeIn) if request.content_length else ProbeIn(name="x")
    return {"value": data.name}


def _required_body():
    return {"value": parse_json(ProbeIn).name}


# --- the details ---------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate_spec(spec)
    ids = [op["operationId"] for op in operations(spec).values()]
    assert len(ids) == len(set(ids))
    broken = copy.deepcopy(spec)
    del broken["paths"]["/api/v1/auth/devices/{device_id}"]["delete"]["parameters"][0]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate_spec(broken)


def test_path_parameters_follow_the_converters(spec):
    op = operations(spec)[("/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}", "put")]
    params = {p["name"]: p for p in op["parameters"]}
    assert all(p["in"] == "path" and p["required"] for p in params.values())
    assert params["conversation_id"]["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    assert params["seq"]["schema"] == {
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": MAX_BIGINT,
    }
    assert params["emoji"]["schema"] == {"type": "string"}


def test_query_parameters_come_from_what_the_view_reads(spec):
    from app.chat.history import HISTORY_PAGE_MAX

    ops = operations(spec)
    history = {
        p["name"]: p["schema"]
        for p in ops[("/api/v1/conversations/{conversation_id}/messages", "get")]["parameters"]
    }
    assert history["limit"] == {"type": "integer", "minimum": 1, "maximum": HISTORY_PAGE_MAX, "default": 50}
    assert history["before_seq"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_BIGINT,
        "format": "int64",
    }
    # Read through the module's helpers: social's `_query()` / `_limit()`, search's `_moment(name)`.
    groups = {p["name"] for p in ops[("/api/v1/groups/search", "get")]["parameters"]}
    assert groups == {"q", "after", "limit"}
    search = {p["name"] for p in ops[("/api/v1/search/messages", "get")]["parameters"]}
    assert {"q", "before", "after", "conversation_id", "sender_id", "type", "cursor", "limit"} == search


def test_security_follows_the_decorators(app, spec):
    for (path, method), op in operations(spec).items():
        where = f"{method} {path}"
        if path.startswith("/api/server/v1/"):
            rule = next(
                r
                for r in app.url_map.iter_rules()
                if ARGUMENT.sub(r"{\1}", r.rule) == path and method.upper() in r.methods
            )
            scopes = app.view_functions[rule.endpoint].api_scopes
            assert op["security"] == [{"bearerAuth": [scope]} for scope in scopes], where
            if method == "get":
                assert "read" in scopes, where
        elif path in {
            "/api/v1/auth/login",
            "/api/v1/auth/register",
            "/api/v1/auth/csrf",
            "/api/docs",
            "/api/openapi.json",
        }:
            assert "security" not in op, where
        elif path.startswith("/api/v1/"):
            assert op.get("security") == [{"cookieAuth": []}] or "security" not in op, where
    me = operations(spec)[("/api/v1/auth/me", "get")]
    assert me["security"] == [{"cookieAuth": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["cookieAuth"] == {
        **schemes["cookieAuth"],
        "type": "apiKey",
        "in": "cookie",
        "name": "parley_session",
    }
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def test_the_error_schema_is_what_errors_look_like(client, spec):
    schemas = spec["components"]["schemas"]
    validator = Draft202012Validator(documented_schema(spec, schemas["Error"]))
    answers = [
        client.post("/api/v1/auth/login", json={"username": 1}),
        client.get("/api/v1/auth/me"),
        client.get("/api/server/v1/users/1"),
    ]
    assert [answer.status_code for answer in answers] == [400, 401, 401]
    for answer in answers:
        validator.validate(answer.get_json())
    with pytest.raises(Exception):  # noqa: B017 (jsonschema's ValidationError)
        validator.validate({"error": {"code": "x"}})


def test_the_upload_route_documents_its_multipart_body(spec):
    op = operations(spec)[("/api/v1/uploads", "post")]
    schema = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(schema["properties"]) == {"file", "purpose", "duration"}
    assert schema["properties"]["purpose"]["enum"] == ["message", "avatar", "voice"]
    assert schema["required"] == ["file"]


def test_summaries_come_from_docstrings_and_tags_from_blueprints(spec):
    op = operations(spec)[("/api/v1/auth/csrf", "get")]
    assert op["summary"].startswith("The token a non-JSON API write")
    assert op["tags"] == ["auth_api"]
    tags = {tag["name"] for tag in spec["tags"]}
    assert {"auth_api", "chat_api", "social_api", "server_api", "openapi"} <= tags


def test_the_document_is_built_once_and_revalidated_by_etag(app, client, monkeypatch):
    from app.openapi import generate

    first = client.get("/api/openapi.json")
    calls = []
    monkeypatch.setattr(generate, "build", lambda application: calls.append(1))
    again = client.get("/api/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and calls == []
    assert first.headers["Cache-Control"] == "no-cache"


# --- the generator says what it cannot read ------------------------------------------------


class ProbeIn(Payload):
    name: str


def _unmodelled():
    return request.get_json()


def _dynamic_model():
    return parse_json(type("Made", (Payload,), {}) if request else ProbeIn)


def _dynamic_name(name=None):
    return request.args.get(name or "x")


def _server_route_without_key():
    return {}


@requires("read")
def _documented():
    """Read it.

    Longer text."""
    validate(ProbeIn, {"name": request.args.get("name")})
    flag = "all" in request.args and request.args["q"]
    return {"flag": flag, "limit": int_arg("limit", minimum=1, maximum=7)}, 201


def test_the_generator_reports_routes_it_cannot_describe():
    app = Flask(__name__)
    app.add_url_rule("/api/a", view_func=login_required(_unmodelled), methods=["POST"])
    app.add_url_rule("/api/b", view_func=_dynamic_model, methods=["POST"])
    app.add_url_rule("/api/c", view_func=_dynamic_name)
    app.add_url_rule("/api/server/v1/d", view_func=_server_route_without_key)
    app.add_url_rule("/api/server/v1/e", view_func=_documented)
    document = build(app)
    problems = "\n".join(document.problems)
    assert "reads request.get_json without parse_json(Model)" in problems
    assert "cannot resolve the model of parse_json(" in problems
    assert "cannot resolve the name read by request.args.get(name or 'x')" in problems
    assert "GET /api/server/v1/d: a server API route without requires(scope, ...)" in problems
    assert len(document.problems) == 4, problems
    good = document.spec["paths"]["/api/server/v1/e"]["get"]
    assert good["summary"] == "Read it." and good["description"] == "Read it.\n\nLonger text."
    assert good["security"] == [{"bearerAuth": ["read"]}]
    query = {p["name"]: p["schema"] for p in good["parameters"]}
    assert query["limit"] == {"type": "integer", "minimum": 1, "maximum": 7}
    assert query["all"] == query["q"] == {"type": "string"}
    assert query["name"]["type"] == "string"  # from ProbeIn
    assert set(good["responses"]) >= {"201", "401", "403", "429"}
    assert "/api/a" in document.spec["paths"]  # described as far as it goes, never skipped


# --- the docs page -------------------------------------------------------------------------


def test_the_docs_page_uses_the_vendored_swagger_ui_under_the_strict_policy(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
    assert "/static/vendor/swagger-ui/swagger-ui.css" in html
    assert "/static/js/api_docs.js" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no third-party host"
    assert "<script>" not in html, "no inline script"
    policy = dict(part.split(" ", 1) for part in page.headers["Content-Security-Policy"].split("; "))
    assert policy["style-src"] == "'self'"
    assert policy["script-src"] == "'self'"


def test_make_and_the_image_both_vendor_swagger_ui():
    """`make vendor` (run, test) and the Docker image both ship the files /api/docs loads."""
    makefile = (BASE_DIR / "Makefile").read_text()
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"$(SWAGGER_UI)/{name}" in makefile
        assert f"swagger-ui-dist/{name}" in dockerfile
    assert "app/static/vendor/swagger-ui/" in dockerfile
