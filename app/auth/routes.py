"""REST routes for accounts and devices: /api/v1/auth/..."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, session
from flask_login import current_user, login_required, logout_user
from flask_wtf.csrf import generate_csrf
from pydantic import Field, model_validator

from app import presenters
from app.auth import accounts, login_limits, self_delete, services, tickets
from app.auth.session import current_device, sign_in, sign_out
from app.export import services as exports
from app.extensions import limiter
from app.locales import N_
from app.media.avatars import AvatarUrl
from app.validation import Payload, parse_json

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1/auth")


class RegisterIn(Payload):
    username: str = Field(max_length=32)
    password: str = Field(max_length=128)
    nickname: str | None = Field(default=None, min_length=1, max_length=64)


class LoginIn(Payload):
    username: str = Field(max_length=64)
    password: str = Field(max_length=128)


class TokenIn(Payload):
    """Exactly one of a sign-in token (from the server API) or a company-signed JWT."""

    token: str | None = Field(default=None, min_length=1, max_length=200)
    jwt: str | None = Field(default=None, min_length=1, max_length=8192)

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.token is None) == (self.jwt is None):
            raise ValueError(N_("send exactly one of token and jwt"))
        return self


class ProfileIn(Payload):
    nickname: str | None = Field(default=None, min_length=1, max_length=64)
    # The rule (app/media/avatars.py) is checked by the profile service: `invalid_avatar`.
    avatar_url: AvatarUrl | None = None
    signature: str = Field(default="", max_length=200)
    locale: str | None = Field(default=None, pattern=r"^(en|zh-CN)$")
    # Whether notifications and pushes show the sender and the text, or only "New message".
    notification_previews: bool | None = None


class PasswordIn(Payload):
    current_password: str = Field(default="", max_length=128)
    new_password: str = Field(max_length=128)


class Empty(Payload):
    pass


class DeleteAccountIn(Payload):
    # Accounts with a password confirm with it; GitHub-only ones with a fresh GitHub sign-in.
    password: str = Field(default="", max_length=128)


def _me_payload() -> dict:
    device = current_device()
    return {
        "user": presenters.user_self(current_user),
        "device": presenters.device(device, device.id) if device else None,
        "sanction": accounts.mute_of(current_user.id),
    }


@bp.post("/register")
@limiter.limit(lambda: current_app.config["REGISTER_RATE_LIMIT"])
def register():
    data = parse_json(RegisterIn)
    user = services.register(data.username, data.password, data.nickname)
    sign_in(user)
    return jsonify(_me_payload()), 201


@bp.post("/login")
def login():
    data = parse_json(LoginIn)
    user = login_limits.authenticate(data.username, data.password)
    sign_in(user)
    return jsonify(_me_payload())


@bp.post("/token")
def token_sign_in():
    """A company's user signs in with a sign-in token or a company-signed JWT: the same answer,
    cookie and device session as a password sign-in."""
    data = parse_json(TokenIn)
    user, method = tickets.authenticate(data.token, data.jwt)
    sign_in(user, method)
    return jsonify(_me_payload())


@bp.post("/logout")
@login_required
def logout():
    parse_json(Empty)
    sign_out()
    return "", 204


@bp.get("/me")
@login_required
def me():
    return jsonify(_me_payload())


@bp.patch("/me")
@login_required
def edit_profile():
    data = parse_json(ProfileIn)
    changes = data.model_dump(exclude_unset=True)
    for name in ("nickname", "notification_previews"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    services.update_profile(current_user, changes)
    return jsonify(_me_payload())


@bp.post("/password")
@login_required
def change_password():
    data = parse_json(PasswordIn)
    signed_out = services.change_password(
        current_user, data.current_password, data.new_password, current_device().id
    )
    return jsonify(signed_out_devices=signed_out)


@bp.post("/me/delete")
@login_required
def delete_account():
    """Delete one's own account (app/auth/self_delete.py); this device is signed out with the rest."""
    data = parse_json(DeleteAccountIn)
    self_delete.delete_own_account(current_user, data.password)
    logout_user()
    session.clear()
    return "", 204


@bp.post("/me/exports")
@login_required
def request_export():
    """Ask for a download of one's data (app/export): built in the background."""
    parse_json(Empty)
    row = exports.request_export(current_user.id)
    return jsonify(export=exports.present(row)), 202


@bp.get("/me/exports")
@login_required
def list_exports():
    return jsonify(exports=[exports.present(row) for row in exports.list_exports(current_user.id)])


@bp.get("/devices")
@login_required
def devices():
    current = current_device()
    rows = services.list_devices(current_user)
    return jsonify(devices=[presenters.device(row, current.id) for row in rows])


@bp.delete("/devices/<int:device_id>")
@login_required
def revoke_device(device_id: int):
    services.revoke_device(current_user, device_id)
    return "", 204


@bp.post("/devices/sign-out-others")
@login_required
def sign_out_others():
    parse_json(Empty)
    count = services.revoke_all_devices(current_user.id, current_device().id)
    return jsonify(signed_out_devices=count)


@bp.get("/identities")
@login_required
def identities():
    rows = services.list_identities(current_user.id)
    available = ["github"] if current_app.config["GITHUB_CLIENT_ID"] else []
    return jsonify(identities=[presenters.identity(row) for row in rows], available=available)


@bp.delete("/identities/<provider>")
@login_required
def unlink_identity(provider: str):
    services.unlink_identity(current_user.id, provider)
    return "", 204


@bp.get("/csrf")
def csrf_token():
    """The token a non-JSON API write (a multipart upload) carries in `X-CSRFToken`."""
    return jsonify(csrf_token=generate_csrf())
