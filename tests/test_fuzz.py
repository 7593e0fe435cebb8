"""A fuzz of every REST route and every socket event: no input earns a 5xx or an
`internal_error` ack, and a refused request changes no row.

The requests are generated, not listed: REST routes from `app.url_map` (path arguments, query
strings, and for routes that parse a JSON body, every field of the pydantic model they parse
it with), socket events from the schemas `app.chat.events.event` registered. Each gets the
hostile values below: integers past every database range, negative and zero, NUL characters,
lone surrogates, nulls, wrong types, deep nesting and long strings. The caller is a normal user
who has a friend, a group, a direct conversation with a message and a pending friend request.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import re

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import event, select, text

from app.chat.events import EVENT_SCHEMAS
from app.extensions import db
from tests.chat_helpers import connect

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FORM = "application/x-www-form-urlencoded"


def nested(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES = [
    2**31,
    2**63,
    -(2**63) - 1,
    10**30,
    -1,
    0,
    1.5,
    True,
    None,
    "a\x00b",
    "x\ud800",
    "x" * 5001,
    "9223372036854775808",
    [],
    [2**70, "\x00"],
    {"type": "txt", "msg": "\x00"},
    nested(300),
]
HOSTILE_SEGMENTS = [
    "0",
    "2147483648",
    "9223372036854775808",
    "1" + "0" * 30,
    "9" * 5000,
    "%00",
    "%ED%A0%80",
    "x" * 300,
]
HOSTILE_QUERY = ["-1", "2147483648", "9223372036854775808", "9" * 5000, "%00", "%EF%BC%91"]
# Parameters every route is tried with, on top of those its own source reads.
GENERIC_QUERY_NAMES = ["id"]
RAW_BODIES = ["[" * 50_000, '{"a":' * 5_000, "null", "[]", '"x"', "1", "{", '{"a": 1', "\x00", "\xff"]

# Routes that need what a normal user cannot have (a GitHub app, an admin) are still sent
# everything; these only lose their baseline, which would be a legitimate write.
SKIP_ENDPOINTS = {"static"}


@pytest.fixture
def world(app, make_user, login, befriend, monkeypatch):
    """Alice, signed in, with a friend (Bob), a group, a direct conversation holding one
    message, and a pending friend request from Carol."""
    for name, rate in (
        ("LOGIN_RATE_LIMIT", "100000 per minute"),
        ("LOGIN_FAILURE_LIMIT", "100000 per minute"),
        ("LOGIN_ACCOUNT_FAILURE_LIMIT", "100000 per minute"),
        ("REGISTER_RATE_LIMIT", "100000 per minute"),
        ("UPLOAD_RATE_LIMIT", "100000 per minute"),
    ):
        monkeypatch.setitem(app.config, name, rate)
    alice_id, bob_id, carol_id = make_user("alice"), make_user("bob"), make_user("carol")
    befriend(alice_id, bob_id)
    alice = connect(app, login("alice"))
    carol = login("carol")
    assert carol.post("/api/v1/friend-requests", json={"user_id": alice_id}).status_code == 201
    request_id = alice.http.get("/api/v1/friend-requests").get_json()["requests"][0]["id"]
    conversation_id = alice.http.post("/api/v1/conversations", json={"user_id": bob_id}).get_json()[
        "conversation"
    ]["id"]
    assert alice.send(conversation_id, "hello")["ok"] is True
    group = alice.http.post("/api/v1/groups", json={"name": "fuzz", "member_ids": [bob_id]}).get_json()
    group_id = group["group"]["id"]
    device_id = alice.http.get("/api/v1/auth/me").get_json()["device"]["id"]
    assert alice.http.get("/api/v1/bot").status_code == 200  # (opening the robot's chat writes once)
    alice.received()
    ids = {
        "conversation_id": conversation_id,
        "group_id": group_id,
        "user_id": bob_id,
        "friend_id": bob_id,
        "request_id": request_id,
        "device_id": device_id,
        "seq": 1,
        "user_ids": [carol_id],
        "member_ids": [bob_id],
    }
    return alice, ids


class WriteWatch:
    """Whether the database committed a change (an INSERT, UPDATE or DELETE followed by a
    COMMIT) since `reset`: cheap enough to ask after every request."""

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    # Written on every server API request made with a key, refused ones included (the audit).
    AUDIT = ("audit_log", "api_keys")

    def __init__(self, engine, *, ignore_audit: bool = False):
        self.engine = engine
        self.ignore_audit = ignore_audit
        self.pending = self.committed = False

    def _statement(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            if self.ignore_audit and any(f" {table}" in statement for table in self.AUDIT):
                return
            self.pending = True

    def _commit(self, conn):
        self.committed = self.committed or self.pending
        self.pending = False

    def reset(self) -> None:
        self.pending = self.committed = False


def snapshot(app) -> str:
    """A digest of every row of every table."""
    digest = hashlib.sha256()
    with app.app_context():
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
            digest.update(f"{table.name}:{rows!r}".encode("utf-8", "surrogatepass"))
        db.session.remove()
    return digest.hexdigest()


def query_names(view) -> set[str]:
    """The query-string parameters a view (or the helpers it calls by name) reads."""
    source = inspect.getsource(inspect.unwrap(view))
    names = set(re.findall(r"(?:int_arg|args\.get)\(\s*\"(\w+)\"", source))
    if "_query()" in source:
        names.add("q")
    if "_limit()" in source:
        names.add("limit")
    return names | set(GENERIC_QUERY_NAMES)


def body_model(view) -> type[BaseModel] | None:
    """The pydantic model a view parses its JSON body with (`parse_json(Model)`)."""
    view = inspect.unwrap(view)
    match = re.search(r"parse_json\(([\w.]+)\)", inspect.getsource(view))
    if match is None:
        return None
    return eval(match.group(1), view.__globals__)  # noqa: S307 (a name from our own source)


GENERIC_SAMPLES = [
    "fuzz-msg-0001",
    1,
    False,
    "member",
    {"type": "txt", "msg": "fuzz"},
    [1],
    "separate",
    "👍",
    [{"conversation_id": 1, "client_msg_id": "fuzz-msg-0002"}],
    {"p256dh": "fuzz", "auth": "fuzz"},
]


def field_accepts(model: type[BaseModel], body: dict, name: str) -> bool:
    try:
        model.model_validate(body)
    except ValidationError as error:
        return not any(item["loc"][:1] == (name,) for item in error.errors())
    return True


def baseline(model: type[BaseModel], ids: dict) -> dict:
    """A valid value for every required field of `model`."""
    body = {}
    for name, field in model.model_fields.items():
        if not field.is_required():
            continue
        for candidate in ([ids[name]] if name in ids else []) + GENERIC_SAMPLES:
            if field_accepts(model, {**body, name: candidate}, name):
                body[name] = candidate
                break
        else:
            raise AssertionError(f"no sample for {model.__name__}.{name}")
    return body


def hostile_bodies(model: type[BaseModel], ids: dict):
    """The model's valid baseline with one field (or one field of a nested object) made hostile,
    an unknown field added, and whole bodies of the wrong shape."""
    base = baseline(model, ids)
    for name in model.model_fields:
        for value in HOSTILE_VALUES:
            yield {**base, name: value}
        if isinstance(base.get(name), dict):
            for inner in list(base[name]) + ["lat", "upload_id"]:
                for value in HOSTILE_VALUES:
                    yield {**base, name: {**base[name], inner: value}}
    yield {**base, "unknown\x00": 1}
    for value in (None, [], "x", 1, [base], nested(300)):
        yield value


def path_for(rule, values: dict) -> str:
    path = rule.rule
    for name in rule.arguments:
        path = re.sub(rf"<(?:[^:>]+:)?{name}>", str(values[name]), path)
    return path


def route_defaults(rule, ids: dict) -> dict:
    return {name: ids.get(name, "0" * 32 if "upload" in name else "github") for name in rule.arguments}


class Recorder:
    def __init__(self, app, watch: WriteWatch):
        self.app = app
        self.watch = watch
        self.failures: list[str] = []
        self.count = 0

    def check(self, what: str, response) -> None:
        self.count += 1
        response.close()  # a file sent as it is (the favicon) is held open until then
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code} {what[:200]}")

    def send(self, client, method: str, path: str, **kwargs) -> None:
        """A request that may write: a refusal must commit no change."""
        self.watch.reset()
        response = client.open(path, method=method, **kwargs)
        self.check(f"{method} {path} {kwargs!r}", response)
        if response.status_code >= 400 and self.watch.committed:
            self.failures.append(f"refused but wrote: {method} {path} {kwargs!r}"[:300])


def test_no_route_answers_5xx_or_writes_when_it_refuses(app, world):
    alice, ids = world
    client = alice.http
    with app.app_context():
        engine = db.engine
    with WriteWatch(engine) as watch:
        run_rest_fuzz(app, client, ids, Recorder(app, watch))


def test_no_server_api_route_answers_5xx_or_writes_when_it_refuses(app, world, api_key, monkeypatch):
    """The server API with a key of every scope: hostile path segments, query strings and bodies
    on every route under /api/server/ (only the audit of each request may be written)."""
    _, ids = world
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = api_key()["Authorization"]
    monkeypatch.setitem(app.config, "API_KEY_RATE_LIMIT", "1000000 per minute")
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/server/")]
    assert len(rules) > 20
    with app.app_context():
        engine = db.engine
    with WriteWatch(engine, ignore_audit=True) as watch:
        recorder = Recorder(app, watch)
        for rule in rules:
            defaults = route_defaults(rule, ids)
            view = app.view_functions[rule.endpoint]
            for method in sorted(set(rule.methods) & set(METHODS)):
                for name in rule.arguments:
                    for segment in HOSTILE_SEGMENTS:
                        path = path_for(rule, {**defaults, name: segment})
                        recorder.send(client, method, path, json={"x": 1})
                path = path_for(rule, defaults)
                for name in sorted(query_names(view)):
                    for value in HOSTILE_QUERY:
                        recorder.send(client, method, f"{path}?{name}={value}")
                model = body_model(view)
                if model is None or method == "GET":
                    continue
                for body in hostile_bodies(model, ids):
                    recorder.send(client, method, path, json=body)
                for raw in RAW_BODIES:
                    recorder.send(client, method, path, data=raw, content_type="application/json")
    assert recorder.count > 500
    assert recorder.failures == []


def run_rest_fuzz(app, client, ids: dict, recorder: Recorder) -> None:
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in SKIP_ENDPOINTS]
    assert len(rules) > 40
    start = snapshot(app)

    # Reads first: hostile path segments and query strings never write anything.
    for rule in rules:
        if "GET" not in rule.methods:
            continue
        defaults = route_defaults(rule, ids)
        for name in rule.arguments:
            for segment in HOSTILE_SEGMENTS:
                path = path_for(rule, {**defaults, name: segment})
                recorder.check(f"GET {path}", client.get(path))
        base = path_for(rule, defaults)
        for name in sorted(query_names(app.view_functions[rule.endpoint])):
            for value in HOSTILE_QUERY:
                path = f"{base}?{name}={value}"
                recorder.check(f"GET {path}", client.get(path))
    assert snapshot(app) == start, "a GET wrote to the database"

    # Writes: hostile path segments, then hostile JSON bodies on valid paths.
    for rule in rules:
        defaults = route_defaults(rule, ids)
        for method in sorted(set(rule.methods) & set(METHODS) - {"GET"}):
            for name in rule.arguments:
                for segment in HOSTILE_SEGMENTS:
                    path = path_for(rule, {**defaults, name: segment})
                    recorder.send(client, method, path, json={"x": 1})
            model = body_model(app.view_functions[rule.endpoint])
            if model is None:
                continue
            path = path_for(rule, defaults)
            for body in hostile_bodies(model, ids):
                recorder.send(client, method, path, json=body)
            for raw in RAW_BODIES:
                recorder.send(client, method, path, data=raw, content_type="application/json")

    # The HTML forms (CSRF aside): every field of every form with unstorable or long text.
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        fields = ["username", "password", "nickname", "profile-nickname", "profile-signature"]
        fields += ["profile-avatar_url", "password-current_password", "password-new_password"]
        for path in ("/login", "/register", "/account"):
            for value in ("a%00b", "%ED%A0%80", "%FF", "x" * 5000, "%EF%BC%91"):
                form = "&".join(f"{field}={value}" for field in fields)
                recorder.send(client, "POST", path, data=form, content_type=FORM)
    finally:
        app.config["WTF_CSRF_ENABLED"] = True

    # Uploads: hostile purposes and file names.
    token = client.get("/api/v1/auth/csrf").get_json()["csrf_token"]
    for purpose in ("\x00", "x" * 5000, "avatar\x00", "１"):
        form = {"file": (io.BytesIO(b"hi"), "a.txt"), "purpose": purpose}
        recorder.send(client, "POST", "/api/v1/uploads", data=form, headers={"X-CSRFToken": token})
    for name in ("a\x00.txt", "\x00", "x" * 5000, "../../etc/passwd"):
        form = {"file": (io.BytesIO(b"hi"), name)}
        recorder.send(client, "POST", "/api/v1/uploads", data=form, headers={"X-CSRFToken": token})

    assert recorder.count > 1500
    assert recorder.failures == []
    # The watch does see a committed change (a valid request, at the end).
    recorder.watch.reset()
    assert client.patch("/api/v1/auth/me", json={"signature": "still here"}).status_code == 200
    assert recorder.watch.committed
    assert client.get("/api/v1/auth/me").status_code == 200
    with app.app_context():
        db.session.execute(text("SELECT 1"))


def socket_payloads(schema, ids: dict):
    if schema is None:
        yield from (None, {}, "x", nested(300))
        return
    yield from hostile_bodies(schema, ids)


def test_no_socket_event_acks_an_internal_error_or_writes_when_it_refuses(app, world):
    alice, ids = world
    assert {"message:send", "conversation:read", "typing"} <= set(EVENT_SCHEMAS)
    failures = []
    sent = 0
    for name, schema in EVENT_SCHEMAS.items():
        for payload in socket_payloads(schema, ids):
            before = snapshot(app)
            ack = alice.socket.emit(name, payload, callback=True)
            sent += 1
            if not isinstance(ack, dict) or (not ack.get("ok") and "error" not in ack):
                failures.append(f"{name} {payload!r:.200}: no ack ({ack!r:.100})")
            elif not ack["ok"]:
                if ack["error"]["code"] == "internal_error":
                    failures.append(f"{name} {payload!r:.200}: internal_error")
                if snapshot(app) != before:
                    failures.append(f"{name} {payload!r:.200}: refused but wrote")
            assert alice.socket.is_connected(), f"{name} {payload!r:.200} closed the socket"
    assert sent > 100
    assert failures == []


def test_the_fuzz_covers_every_model_a_route_parses(app):
    """Every route with a body is found through `parse_json`: none is left out silently."""
    parsed = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        source = inspect.getsource(inspect.unwrap(view)) if rule.endpoint != "static" else ""
        if "get_json" in source or "request.json" in source:
            raise AssertionError(f"{rule.endpoint} reads JSON without parse_json")
        if body_model(view) is not None:
            parsed.add(rule.endpoint)
    assert {"auth_api.login", "chat_api.send", "social_api.create_group"} <= parsed


def test_no_admin_console_route_answers_5xx_or_writes_when_it_refuses(app, make_user, login, monkeypatch):
    """The console's own query strings (`id`, `page`, `search`…) and forms, as an administrator."""
    from flask_admin import BaseView

    make_user("root", is_admin=True)
    target = make_user("alice")
    client = login("root")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    with app.app_context():
        engine = db.engine
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if isinstance(getattr(app.view_functions[rule.endpoint], "__self__", None), BaseView)
    ]
    assert len(rules) > 20
    form_fields = ["reason", "minutes", "password", "user_id", "url"]
    with WriteWatch(engine) as watch:
        recorder = Recorder(app, watch)
        for rule in rules:
            defaults = {name: target for name in rule.arguments}
            for method in sorted(set(rule.methods) & set(METHODS)):
                for name in rule.arguments:
                    for segment in HOSTILE_SEGMENTS:
                        path = path_for(rule, {**defaults, name: segment})
                        recorder.send(client, method, path, data={"reason": "x"})
                base = path_for(rule, defaults)
                if method == "GET":
                    for name, values in (
                        ("id", HOSTILE_QUERY),
                        ("page", HOSTILE_QUERY),
                        ("search", ["%00", "x" * 300]),
                        ("flt0_0", ["%00", "9223372036854775808"]),
                    ):
                        for value in values:
                            path = f"{base}?{name}={value}"
                            recorder.check(f"GET {path}", client.get(path))
                else:
                    for value in ("a%00b", "%ED%A0%80", "9223372036854775808", "x" * 5000):
                        form = "&".join(f"{field}={value}" for field in form_fields)
                        recorder.send(client, method, base, data=form, content_type=FORM)
    assert recorder.failures == []
    assert client.get("/admin/").status_code == 200
