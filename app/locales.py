"""Languages of the server-rendered pages and of server messages shown to people (Flask-Babel).

Parley speaks English (the source strings) and Simplified Chinese (one catalogue,
app/translations/zh_Hans_CN: Babel spells the zh-CN locale with its script, and Flask-Admin's
own catalogue lives under the same name). The language of a request is the signed-in user's
setting (`users.locale`, "zh-CN" or "en"), else the browser's `Accept-Language`, else English;
a socket event has no headers of its own, so its language is the user's setting (or the
handshake's header). The browser client keeps its own strings (app/static/js/i18n.js) and
follows the same setting.

Marking strings (docs/ARCHITECTURE.md, "Languages"):
- `_()` in templates and request code, `_l()` where the text is built before a request has a
  language (form labels, module constants) or carries values (`_l("At most %(n)s.", n=5)`).
- `N_()` marks a plain string that is translated later, where it is shown (an `ApiError`
  message or field text kept in a variable).
- Literal messages and field texts written straight into `ApiError(...)` and the helpers in
  ERROR_CALLS need no marking: `extract_python` below finds them, so `make i18n-update` puts
  every error a service can raise into the catalogue.
"""

from __future__ import annotations

import ast
import io

from babel.messages.extract import extract_python as _babel_extract_python
from flask import Flask, g, has_app_context, has_request_context, request
from flask_babel import Babel, get_locale, refresh
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

__all__ = ["N_", "_", "_l", "babel", "html_lang", "init_app", "lazy", "select_locale", "word"]

babel = Babel()

# Babel's locale name for each language Parley ships, by the name users.locale stores.
SUPPORTED = {"en": "en", "zh-CN": "zh_CN"}
# Accept-Language tags Parley answers, best first for each language.
_ACCEPTED = ["en", "en-US", "en-GB", "zh-CN", "zh", "zh-Hans", "zh-SG", "zh-Hans-CN"]


def N_(msgid: str) -> str:
    """Mark `msgid` for the catalogue; it is translated where it is shown."""
    return msgid


# Words services put into messages ("No such %(what)s.", "This request was already
# %(status)s."): each is a msgid of its own, so a translator words it once.
WORDS = frozenset(
    (
        # things not_found() names
        N_("resource"),
        N_("block"),
        N_("conversation"),
        N_("delivery"),
        N_("device"),
        N_("file"),
        N_("friend request"),
        N_("friend"),
        N_("group"),
        N_("join request"),
        N_("linked account"),
        N_("member"),
        N_("message"),
        N_("record"),
        N_("removal"),
        N_("thumbnail"),
        N_("upload"),
        N_("user"),
        N_("webhook"),
        N_("word list"),
        # states of a request, of a sanction
        N_("accepted"),
        N_("rejected"),
        N_("withdrawn"),
        N_("muted"),
        N_("banned"),
        # kinds of media
        N_("image"),
        N_("video"),
        N_("audio"),
    )
)


def word(value: str):
    """`value` in the request's language when it is one of WORDS, else as it is."""
    return _l(value) if value in WORDS else value


def lazy(msgid: str, **params):
    """`msgid`, marked where it was written (N_), translated where it is shown."""
    return _l(msgid, **params)


def _from_header(accept: LanguageAccept) -> str:
    best = accept.best_match(_ACCEPTED)
    return "zh_CN" if best and best.lower().startswith("zh") else "en"


def select_locale() -> str:
    """The request's language: the user's setting, then the browser's, then English. A socket
    event (app/chat/events.py) has no request: its user's setting, then its handshake's header."""
    from flask_login import current_user
    from sqlalchemy.exc import SQLAlchemyError

    from app.extensions import db
    from app.models import User

    if not has_request_context():
        socket = g.get("socket_user") if has_app_context() else None
        if socket is None:
            return "en"
        user_id, environ = socket
        try:
            user = db.session.get(User, user_id)
        except SQLAlchemyError:  # the database is what failed: the error must still be answered
            db.session.rollback()
            user = None
        if user is not None and user.locale in SUPPORTED:
            return SUPPORTED[user.locale]
        header = (environ or {}).get("HTTP_ACCEPT_LANGUAGE")
        return _from_header(parse_accept_header(header, LanguageAccept))
    try:
        user_locale = getattr(current_user, "locale", None) if current_user else None
    except SQLAlchemyError:  # loading the signed-in user failed: the error must still be answered
        db.session.rollback()
        user_locale = None
    if user_locale in SUPPORTED:
        return SUPPORTED[user_locale]
    return _from_header(request.accept_languages)


def html_lang() -> str:
    """The `lang` attribute of a page in the request's language ("zh-CN" or "en")."""
    locale = get_locale()
    return "zh-CN" if locale is not None and locale.language == "zh" else "en"


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, default_translation_directories="translations")
    app.jinja_env.globals["html_lang"] = html_lang

    @app.before_request
    def _fresh_locale():
        # Flask-Babel keeps the locale on `g`; an app context that outlives one request (a
        # test, a CLI command) must not carry one user's language into the next request.
        refresh()


# --- extraction (`make i18n-extract`, babel.cfg) -------------------------------------------------

# Calls whose literal arguments are user-facing texts: the positions of message-like arguments
# and of a `fields` dict (None: none); a `message=` or `fields=` keyword of these calls counts too.
# A helper that passes its own arguments into an ApiError belongs here, so its callers' literals
# are extracted (tests/test_translations.py checks that none is missing).
ERROR_CALLS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "ApiError": ((1,), 3),
    "RetryLater": ((1,), 3),
    "invalid": ((), 0),
    "unsupported": ((0,), None),
    "require": ((), None),
    "_username_error": ((1, 2), None),
    "_invalid": ((1,), None),
    "_invalid_mentions": ((0,), None),
    "invalid_avatar": ((0,), None),
    "not_audio": ((0,), None),
}


def call_name(node: ast.Call) -> str | None:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


def error_texts(node: ast.Call):
    """The argument expressions of an error call that hold texts, and its `fields` dict."""
    texts, fields = [], None
    positions, fields_at = ERROR_CALLS[call_name(node)]
    texts = [node.args[index] for index in positions if index < len(node.args)]
    if fields_at is not None and fields_at < len(node.args):
        fields = node.args[fields_at]
    for keyword in node.keywords:
        if keyword.arg == "message":
            texts.append(keyword.value)
        elif keyword.arg == "fields":
            fields = keyword.value
    return texts, fields


def _literals(node: ast.AST | None):
    """String constants a text argument can evaluate to (`a or "b"`, `x if c else "y"`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
        yield node
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _literals(value)
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)


def _is_fields(target: ast.AST) -> bool:
    if isinstance(target, ast.Subscript):
        target = target.value
    return isinstance(target, ast.Name) and target.id == "fields"


def error_literals(tree: ast.AST):
    """Every literal message and field text of an error call in a module's syntax tree, and the
    literals put into a dict named `fields` (`fields["name"] = "1 to 100 characters"`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) in ERROR_CALLS:
            texts, fields = error_texts(node)
            for text in texts:
                yield from _literals(text)
            if isinstance(fields, ast.Dict):
                for value in fields.values:
                    yield from _literals(value)
        elif isinstance(node, ast.Assign) and any(_is_fields(target) for target in node.targets):
            values = node.value.values if isinstance(node.value, ast.Dict) else [node.value]
            for value in values:
                yield from _literals(value)


def extract_python(fileobj, keywords, comment_tags, options):
    """Babel's Python extractor, plus the literal messages of error calls (see the docstring)."""
    source = fileobj.read()
    yield from _babel_extract_python(io.BytesIO(source), keywords, comment_tags, options)
    for node in error_literals(ast.parse(source)):
        yield node.lineno, None, node.value, []
