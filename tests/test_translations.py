"""The one catalogue (app/translations): complete, up to date with the sources, and every text a
person can be shown on the server side (pages, flashes, error messages) passes through it.

When one of these fails: `make i18n-update`, translate the new entries in
app/translations/zh_Hans_CN/LC_MESSAGES/messages.po, then `make translations` (README, "Languages").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from werkzeug import exceptions as http

from app.errors import HTTP_MESSAGES
from app.locales import ERROR_CALLS, WORDS, call_name, error_literals, error_texts

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
POT = TRANSLATIONS / "messages.pot"
PO = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
SOURCES = sorted((ROOT / "app").rglob("*.py"))
# The same command as `make i18n-extract` (Makefile).
EXTRACT = ["pybabel", "extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location"]

# Marked texts: translated when shown.
MARKERS = {"_", "_l", "N_", "gettext", "lazy_gettext"}
# Text expressions in error calls that are not Parley's own words, each with why it may pass.
PASS_THROUGH = {
    # a media worker's answer, rebuilt from the msgids and values it sent (errors.text_to_wire)
    ("app/media/services.py", "text_from_wire(error.get('message', ''))"),
    # the message a company's before-send webhook gave, shown as it wrote it
    ("app/webhooks/before_send.py", "answer.message"),
    # a marked module constant (accounts.EXTERNAL_ID_RULE = N_(...))
    ("app/auth/tickets.py", "accounts.EXTERNAL_ID_RULE"),
    # the ValueError check_networks raises carries a marked text (_l)
    ("app/server_api/keys.py", "error.args[0]"),
    # werkzeug's description of an HTTP error (errors.HTTP_MESSAGES, checked below) or a marked text
    ("app/errors.py", "message"),
}


def _catalogue(path: Path):
    with path.open("rb") as handle:
        return read_po(handle)


def _messages(catalog) -> dict[str, object]:
    return {message.id: message for message in catalog if message.id}


def _placeholders(text: str) -> tuple[list[str], list[str]]:
    named = sorted(re.findall(r"%\((\w+)\)[sdif]", text))
    braces = sorted(re.findall(r"\{(\w*)\}", text))
    return named, braces


# --- the catalogue -------------------------------------------------------------------------------


def test_every_msgid_has_a_translation():
    catalog = _catalogue(PO)
    missing = [message.id for message in catalog if message.id and (not message.string or message.fuzzy)]
    assert missing == [], f"untranslated or fuzzy in {PO.relative_to(ROOT)}: {missing}"


def test_placeholders_match_between_msgid_and_translation():
    wrong = {
        message.id: message.string
        for message in _catalogue(PO)
        if message.id and _placeholders(message.id) != _placeholders(message.string)
    }
    assert wrong == {}


def test_the_template_is_up_to_date_with_the_sources(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    fresh = tmp_path / "messages.pot"
    CommandLineInterface().run([EXTRACT[0], "--quiet", *EXTRACT[1:], "-o", str(fresh), "."])
    extracted = set(_messages(_catalogue(fresh)))
    committed = set(_messages(_catalogue(POT)))
    assert extracted - committed == set(), "new strings: run `make i18n-update` and translate them"
    assert committed - extracted == set(), "strings gone from the sources: run `make i18n-update`"


def test_the_chinese_catalogue_holds_every_msgid_of_the_template():
    template = set(_messages(_catalogue(POT)))
    chinese = set(_messages(_catalogue(PO)))
    assert template - chinese == set(), "run `make i18n-update`"
    assert chinese - template == set(), "run `make i18n-update` (it drops what the sources no longer hold)"


def test_the_compiled_catalogue_matches_the_po_file():
    assert MO.exists(), "run `make translations`"
    with MO.open("rb") as handle:
        compiled = {message.id: message.string for message in read_mo(handle) if message.id}
    written = {message.id: message.string for message in _catalogue(PO) if message.id}
    assert compiled == written, "run `make translations`"


def test_flask_admin_and_wtforms_have_chinese_for_the_same_locale():
    """Babel spells zh-CN zh_Hans_CN: Parley's catalogue, Flask-Admin's and WTForms' are all found."""
    from babel import Locale
    from babel.support import Translations
    from flask_admin import translations as admin_translations
    from wtforms.i18n import messages_path

    locale = Locale.parse("zh_CN")
    assert Translations.load(str(TRANSLATIONS), [locale]).gettext("Sign in") == "登录"
    assert Translations.load(admin_translations.__path__[0], [locale], "admin").gettext("List") == "列表"
    assert Translations.load(messages_path(), [locale], "wtforms").gettext("Not a valid integer value.") != (
        "Not a valid integer value."
    )


# --- every text a person is shown goes through the catalogue -------------------------------------


def _sources():
    for path in SOURCES:
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _parents(tree):
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    return parents


def _enclosing_function(node, parents):
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return node
    return None


def _is_marked(node) -> bool:
    return (
        isinstance(node, ast.Call)
        and call_name(node) in MARKERS
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
    ) or (isinstance(node, ast.Call) and call_name(node) == "word")


def _is_built_text(node) -> bool:
    """An f-string, `"..." + x`, `"..." % x` or `"...".format()`: English the catalogue never sees."""
    if isinstance(node, ast.JoinedStr):
        words = [part.value for part in node.values if isinstance(part, ast.Constant)]
        return any(re.search(r"[A-Za-z]", part) for part in words)
    if isinstance(node, ast.BinOp):
        return any(isinstance(side, ast.Constant | ast.JoinedStr) for side in (node.left, node.right))
    if isinstance(node, ast.Call) and call_name(node) == "format":
        return True
    if isinstance(node, ast.BoolOp):
        return any(_is_built_text(child) for child in node.values)
    if isinstance(node, ast.IfExp):
        return _is_built_text(node.body) or _is_built_text(node.orelse)
    return False


def _assignments(name: str, scope) -> list[ast.AST]:
    values = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            values.append(node.value)
    return values


def _check_name(name: str, node, tree, parents) -> str | None:
    """A variable holding a text: a parameter of an error helper, or assigned marked texts only."""
    function = _enclosing_function(node, parents)
    if function is not None and not isinstance(function, ast.Lambda):
        parameters = {arg.arg for arg in [*function.args.args, *function.args.kwonlyargs]}
        if name in parameters:
            if function.name in ERROR_CALLS:
                return None
            return f"parameter {name} of {function.name}(): add {function.name} to app.locales.ERROR_CALLS"
        assigned = _assignments(name, function)
    else:
        assigned = []
    assigned = assigned or [value for value in _assignments(name, tree)]
    if not assigned:
        return f"{name} is not assigned here"
    for value in assigned:
        if isinstance(value, ast.Dict):
            if not all(_is_marked(item) for item in value.values):
                return f"{name} holds unmarked texts"
        elif not _is_marked(value):
            return f"{name} = {ast.unparse(value)[:60]} is not marked with N_() or _l()"
    return None


def _check_text(path, node, tree, parents, *, field: bool) -> str | None:
    if isinstance(node, ast.Constant) or _is_marked(node):
        return None
    if _is_built_text(node):
        return 'built from English pieces: use _l("... %(name)s ...", name=value)'
    if (path, ast.unparse(node)) in PASS_THROUGH:
        return None
    if isinstance(node, ast.BoolOp | ast.IfExp):
        options = node.values if isinstance(node, ast.BoolOp) else [node.body, node.orelse]
        problems = [_check_text(path, child, tree, parents, field=field) for child in options]
        return next((problem for problem in problems if problem), None)
    if isinstance(node, ast.Name):
        return _check_name(node.id, node, tree, parents)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        table = _assignments(node.value.id, tree)
        if table and all(isinstance(item, ast.Dict) and all(map(_is_marked, item.values)) for item in table):
            return None
        if field:  # a value (str(uid), a limit) rather than words
            return None
        return f"{ast.unparse(node)}: a table of unmarked texts"
    if field:  # values such as str(uid) are data, not words
        return None
    return f"{ast.unparse(node)[:60]} cannot be checked: mark it, or list it in PASS_THROUGH with a reason"


def test_every_error_text_is_a_literal_or_marked():
    """Messages and field texts of ApiError(...) and its helpers reach the catalogue: literals are
    extracted (app.locales.extract_python), other texts must be marked, never built in English."""
    problems = []
    for path, tree in _sources():
        parents = _parents(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and call_name(node) in ERROR_CALLS:
                texts, fields = error_texts(node)
                checks = [(text, False) for text in texts]
                if isinstance(fields, ast.Dict):
                    checks += [(value, True) for value in fields.values]
                elif isinstance(fields, ast.Name):
                    checks += [(value, True) for value in _field_values(fields.id, node, tree, parents)]
                for text, field in checks:
                    problem = _check_text(path, text, tree, parents, field=field)
                    if problem:
                        problems.append(f"{path}:{text.lineno}: {problem}")
    assert problems == []


def _field_values(name, node, tree, parents):
    scope = _enclosing_function(node, parents) or tree
    for child in ast.walk(scope):
        if isinstance(child, ast.Assign):
            for target in child.targets:
                if isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == name:
                    yield child.value
                elif isinstance(target, ast.Name) and target.id == name and isinstance(child.value, ast.Dict):
                    yield from child.value.values


def test_marked_texts_are_literals_and_flashes_are_translated():
    problems = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = call_name(node)
            dynamic = name in MARKERS and node.args and not isinstance(node.args[0], ast.Constant)
            if dynamic and path not in {"app/locales.py", "app/errors.py"}:  # word(), lazy(), the wire
                problems.append(f"{path}:{node.lineno}: {name}() of {ast.unparse(node.args[0])[:50]}")
            if name == "flash" and node.args:
                text = node.args[0]
                if isinstance(text, ast.Constant) or _is_built_text(text):
                    problems.append(f"{path}:{node.lineno}: flash of English: {ast.unparse(text)[:60]}")
    assert problems == []


def test_every_error_literal_is_translated():
    translated = {message.id for message in _catalogue(PO) if message.id and message.string}
    literals = {node.value for _, tree in _sources() for node in error_literals(tree)}
    assert literals - translated == set()


def test_not_found_names_only_known_words():
    named = set()
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and call_name(node) == "not_found" and node.args:
                argument = node.args[0]
                assert isinstance(argument, ast.Constant), ast.unparse(node)
                named.add(argument.value)
    assert named and named <= WORDS


@pytest.mark.parametrize("status", sorted(HTTP_MESSAGES))
def test_werkzeug_descriptions_are_in_the_catalogue(status):
    assert http.default_exceptions[status].description == HTTP_MESSAGES[status]
