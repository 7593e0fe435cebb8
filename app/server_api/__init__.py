"""The server API: what a company's backend calls with an API key, under /api/server/v1/.

Every route is wrapped by `requires(scope, ...)` (app/server_api/keys.py): a Bearer key with one
of the scopes, from an allowed address, within its rate; each use is audited. Routes are thin:
they validate with pydantic (`parse_json`) and call the same services the client API uses, with
the same `{"error": {"code", "message", "fields"}}` answers.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("server_api", __name__, url_prefix="/api/server/v1")


def register(app) -> None:
    """Add every module's routes to `bp`, then register it."""
    from app.server_api import groups, keys, messages, signin, users  # noqa: F401  (their routes)

    app.register_blueprint(bp)
