"""What a view reads from a request, found by reading its source.

Routes validate with `parse_json(Model)` / `validate(Model, data)` and read the query string with
`int_arg("name", ...)` / `request.args.get("name")` (app/validation.py); this module parses each
view's source (`ast`, after unwrapping its decorators) and resolves those calls' arguments in the
view's module, following the module's own helper functions (`_limit()`, `_moment("before")`).
So the document is built from the same models and names the code uses, and a route written
another way is reported as a problem (the OpenAPI test fails) instead of being skipped.
"""

from __future__ import annotations

import ast
import inspect
import operator
import textwrap
from dataclasses import dataclass, field
from types import FunctionType, ModuleType

import flask
from flask_login import login_required
from pydantic import BaseModel

from app import validation

UNKNOWN = object()
MAX_DEPTH = 6
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
    ast.FloorDiv: operator.floordiv,
}
# flask_login's wrapper, recognised by its code object wherever it sits in a decorator chain.
_LOGIN_CODE = login_required(lambda: None).__code__
_INT_ARG_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(validation.int_arg).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}
# Reading these request attributes outside parse_json/validate means a body without a model.
_RAW_BODY = {"json", "get_json", "data", "get_data", "stream"}


@dataclass
class ViewFacts:
    """Everything the document says about one view's input, and what could not be understood."""

    body_models: list[type[BaseModel]] = field(default_factory=list)
    query_models: list[type[BaseModel]] = field(default_factory=list)
    query: dict[str, dict] = field(default_factory=dict)  # name -> JSON schema
    form_fields: set[str] = field(default_factory=set)
    file_fields: set[str] = field(default_factory=set)
    statuses: set[int] = field(default_factory=set)
    # The JSON body may be left out: parse_json sits in one branch of `a if b else c`.
    body_optional: bool = False
    login_required: bool = False
    scopes: tuple[str, ...] | None = None
    problems: list[str] = field(default_factory=list)

    def add_model(self, bucket: list, model) -> None:
        if model not in bucket:
            bucket.append(model)


def decorator_chain(view) -> list:
    """The view and every function it wraps (functools.wraps sets `__wrapped__`)."""
    chain = [view]
    while hasattr(chain[-1], "__wrapped__") and len(chain) < 20:
        chain.append(chain[-1].__wrapped__)
    return chain


def inspect_view(view) -> ViewFacts:
    facts = ViewFacts()
    chain = decorator_chain(view)
    facts.login_required = any(getattr(fn, "__code__", None) is _LOGIN_CODE for fn in chain)
    for fn in chain:
        if getattr(fn, "api_scopes", None):
            facts.scopes = tuple(fn.api_scopes)
            break
    target = chain[-1]
    if not isinstance(target, FunctionType):
        facts.problems.append(f"{target!r} is not a plain function")
        return facts
    node = _function_node(target, facts)
    if node is None:
        return facts
    _Reader(facts, target, {}, depth=0).read(node)
    facts.statuses = _statuses(node, target.__globals__, {}, target.__module__, 0)
    return facts


def _function_node(function: FunctionType, facts: ViewFacts) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as error:
        facts.problems.append(f"no source for {function.__qualname__}: {error}")
        return None
    tree = ast.parse(source)
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        facts.problems.append(f"{function.__qualname__} is not defined by a def statement")
        return None
    return node


def evaluate(node: ast.AST, namespace: dict, bindings: dict):
    """The value of a constant expression in the view's module (names, attributes, arithmetic),
    or UNKNOWN."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in bindings:
            return bindings[node.id]
        return namespace.get(node.id, UNKNOWN)
    if isinstance(node, ast.Attribute):
        base = evaluate(node.value, namespace, bindings)
        # Only modules and classes: never a proxy (request, current_user) or a live object.
        # (type(), not isinstance(): a proxy answers isinstance through the object it wraps.)
        if type(base) is not ModuleType and not issubclass(type(base), type):
            return UNKNOWN
        return getattr(base, node.attr, UNKNOWN)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = evaluate(node.operand, namespace, bindings)
        return -value if isinstance(value, int | float) else UNKNOWN
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = evaluate(node.left, namespace, bindings), evaluate(node.right, namespace, bindings)
        if isinstance(left, int | float) and isinstance(right, int | float):
            return _BINARY[type(node.op)](left, right)
    return UNKNOWN


def _is_request(node: ast.AST, namespace: dict) -> bool:
    return isinstance(node, ast.Name) and namespace.get(node.id) is flask.request


def _request_part(node: ast.AST, namespace: dict) -> str | None:
    """`args`, `form`, `files`, `json`... when `node` is `request.<part>`."""
    if isinstance(node, ast.Attribute) and _is_request(node.value, namespace):
        return node.attr
    return None


class _Reader:
    """Walks one function's body, recording what it reads; follows calls to helper functions
    of the same module with their literal arguments bound."""

    def __init__(self, facts: ViewFacts, function: FunctionType, bindings: dict, depth: int):
        self.facts = facts
        self.function = function
        self.namespace = function.__globals__
        self.bindings = bindings
        self.depth = depth
        self.where = function.__qualname__
        self.handled: set[int] = set()  # ids of nodes read as part of a recognised call
        self.conditional: set[int] = set()  # ids of calls that are a branch of `a if b else c`

    def problem(self, node: ast.AST, text: str) -> None:
        self.facts.problems.append(f"{self.function.__module__}.{self.where} line {node.lineno}: {text}")

    def value(self, node: ast.AST):
        return evaluate(node, self.namespace, self.bindings)

    def read(self, function: ast.FunctionDef) -> None:
        """Read the body (not the decorators: they run at import, not per request)."""
        nodes = [child for statement in function.body for child in ast.walk(statement)]
        for child in nodes:
            if isinstance(child, ast.IfExp):
                self.conditional.update(id(branch) for branch in (child.body, child.orelse))
        for child in nodes:  # outer calls come first: validate(M, {...request.args...}) claims its reads
            if isinstance(child, ast.Call) and id(child) not in self.handled:
                self.call(child)
        for child in nodes:
            if id(child) in self.handled:
                continue
            part = _request_part(child.value, self.namespace) if isinstance(child, ast.Subscript) else None
            if part in {"args", "form", "files"}:
                self.read_name(child, child.slice, part)
                self.handled.add(id(child.value))
            elif isinstance(child, ast.Compare) and any(
                _request_part(comparator, self.namespace) == "args" for comparator in child.comparators
            ):
                self.read_name(child, child.left, "args")
                self.handled.update(id(comparator) for comparator in child.comparators)
        for child in nodes:
            part = _request_part(child, self.namespace)
            if part is None or id(child) in self.handled:
                continue
            if part == "args":
                self.problem(child, "reads request.args in a way the generator does not understand")
            elif part in _RAW_BODY:
                self.problem(child, f"reads request.{part} without parse_json(Model)")
            elif part in {"form", "files"}:
                self.problem(child, f"reads request.{part} in a way the generator does not understand")

    def call(self, call: ast.Call) -> None:
        func = call.func
        if isinstance(func, ast.Attribute):
            part = _request_part(func.value, self.namespace)
            if part in {"args", "form", "files"} and func.attr in {"get", "getlist"}:
                self.handled.add(id(func.value))
                self.request_value(call, part, func.attr)
                return
        target = self.value(func)
        if target is validation.parse_json:
            self.model_call(call, body=True)
            if id(call) in self.conditional:  # `parse_json(M) if request.content_length else M()`
                self.facts.body_optional = True
        elif target is validation.validate:
            # validate(M, <from request.args>) checks the query string, validate(M, <the JSON
            # body>) the body; validate(M, row) on part of a body parse_json already read is an
            # inner check, not the route's input (a raw body read is reported on its own).
            data = call.args[1] if len(call.args) > 1 else None
            parts = {_request_part(child, self.namespace) for child in ast.walk(data)} if data else set()
            parts.discard(None)
            if parts:
                self.handled.update(id(child) for child in ast.walk(data))
                self.model_call(call, body=parts != {"args"})
        elif target is validation.int_arg:
            self.int_arg(call)
        elif (
            isinstance(target, FunctionType)
            and target.__module__ == self.function.__module__
            and target is not self.function
        ):
            self.helper(call, target)

    def model_call(self, call: ast.Call, *, body: bool) -> None:
        model = self.value(call.args[0]) if call.args else UNKNOWN
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            self.problem(call, f"cannot resolve the model of {ast.unparse(call)} to a pydantic model")
            return
        self.facts.add_model(self.facts.body_models if body else self.facts.query_models, model)

    def int_arg(self, call: ast.Call) -> None:
        name = self.value(call.args[0]) if call.args else UNKNOWN
        if not isinstance(name, str):
            self.problem(call, f"cannot resolve the parameter name of {ast.unparse(call)}")
            return
        options = dict(_INT_ARG_DEFAULTS)
        for keyword in call.keywords:
            options[keyword.arg] = self.value(keyword.value)
        schema: dict = {"type": "integer"}
        if isinstance(options.get("minimum"), int):
            schema["minimum"] = options["minimum"]
        if isinstance(options.get("maximum"), int):
            schema["maximum"] = options["maximum"]
            if options["maximum"] > validation.MAX_ID:
                schema["format"] = "int64"
        if isinstance(options.get("default"), int):
            schema["default"] = options["default"]
        self.facts.query[name] = schema

    def request_value(self, call: ast.Call, part: str, method: str) -> None:
        name = self.value(call.args[0]) if call.args else UNKNOWN
        if not isinstance(name, str):
            self.problem(call, f"cannot resolve the name read by {ast.unparse(call)}")
            return
        if part == "args":
            schema: dict = {"type": "string"}
            default = self.value(call.args[1]) if len(call.args) > 1 else None
            if isinstance(default, str) and default:
                schema["default"] = default
            if method == "getlist":
                schema = {"type": "array", "items": {"type": "string"}}
            self.facts.query.setdefault(name, schema)
        elif part == "form":
            self.facts.form_fields.add(name)
        else:
            self.facts.file_fields.add(name)

    def read_name(self, node: ast.AST, name_node: ast.AST, part: str) -> None:
        """`request.args["name"]`, `"name" in request.args`, `request.files["name"]`."""
        name = self.value(name_node)
        if not isinstance(name, str):
            self.problem(node, f"cannot resolve the name read by {ast.unparse(node)}")
        elif part == "args":
            self.facts.query.setdefault(name, {"type": "string"})
        else:
            (self.facts.form_fields if part == "form" else self.facts.file_fields).add(name)

    def helper(self, call: ast.Call, target: FunctionType) -> None:
        if self.depth >= MAX_DEPTH:
            self.problem(call, f"helpers nested deeper than {MAX_DEPTH} calls")
            return
        node = _function_node(target, self.facts)
        if node is None:
            return
        names = [argument.arg for argument in node.args.posonlyargs + node.args.args]
        bindings = {}
        for name, argument in zip(names, call.args, strict=False):
            value = self.value(argument)
            if value is not UNKNOWN:
                bindings[name] = value
        for keyword in call.keywords:
            if keyword.arg is not None:
                value = self.value(keyword.value)
                if value is not UNKNOWN:
                    bindings[keyword.arg] = value
        _Reader(self.facts, target, bindings, self.depth + 1).read(node)


def _statuses(node: ast.FunctionDef, namespace: dict, bindings: dict, module: str, depth: int) -> set[int]:
    """The success statuses the view returns: `return body, 201`, `..., 201 if created else 200`,
    `return "", 204`, and what a helper of the view's module returns
    (`return _user_answer(user, 201)`, its parameters bound to the call's constant arguments and
    their defaults); 200 otherwise."""
    statuses: set[int] = set()
    for child in ast.walk(node):
        if not isinstance(child, ast.Return) or child.value is None:
            continue
        value = child.value
        if isinstance(value, ast.Tuple) and len(value.elts) >= 2:
            status = value.elts[1]
            options = [status.body, status.orelse] if isinstance(status, ast.IfExp) else [status]
            for option in options:
                code = evaluate(option, namespace, bindings)
                statuses.add(code if isinstance(code, int) else 200)
        elif isinstance(value, ast.Call) and depth < MAX_DEPTH:
            helper = evaluate(value.func, namespace, bindings)
            if isinstance(helper, FunctionType) and helper.__module__ == module:
                statuses |= _helper_statuses(value, helper, namespace, bindings, module, depth)
            else:
                statuses.add(200)
        else:
            statuses.add(200)
    return statuses or {200}


def _helper_statuses(
    call: ast.Call, helper: FunctionType, namespace: dict, bindings: dict, module: str, depth: int
) -> set[int]:
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(helper))).body[0]
    except (OSError, TypeError, IndexError):
        return {200}
    if not isinstance(node, ast.FunctionDef):
        return {200}
    inner = {
        name: parameter.default
        for name, parameter in inspect.signature(helper).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    names = [argument.arg for argument in node.args.posonlyargs + node.args.args]
    for name, argument in zip(names, call.args, strict=False):
        inner[name] = evaluate(argument, namespace, bindings)
    for keyword in call.keywords:
        if keyword.arg is not None:
            inner[keyword.arg] = evaluate(keyword.value, namespace, bindings)
    return _statuses(node, helper.__globals__, inner, module, depth + 1)
