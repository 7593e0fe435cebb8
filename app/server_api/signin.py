"""Server API: sign-in tokens. A company's backend asks for a short-lived, single-use token for
one of its users and hands it to its app, which exchanges it at `POST /api/v1/auth/token` (or
opens `/login/token#<token>` in a browser) for an ordinary device session."""

from __future__ import annotations

from flask import jsonify

from app.auth import tickets
from app.presenters import iso
from app.server_api import bp
from app.server_api.keys import current_key, requires
from app.validation import Payload, parse_json


class SignInTokenIn(Payload):
    """No fields: the user is named in the path."""


@bp.post("/users/<int:user_id>/sign-in-tokens")
@requires("users")
def create_sign_in_token(user_id: int):
    """A single-use sign-in token for this user, valid `SIGN_IN_TOKEN_SECONDS`: hand it to the
    user's app, which exchanges it at POST /api/v1/auth/token."""
    parse_json(SignInTokenIn)
    token, expires_at = tickets.issue_sign_in_token(user_id, current_key().id)
    return jsonify(token=token, expires_at=iso(expires_at)), 201
