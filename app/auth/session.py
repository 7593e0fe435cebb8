"""Glue between Flask-Login's cookie session and Parley's device sessions.

The cookie holds the user id (Flask-Login) and a random device token. Every
request looks the token up, so a device signed out anywhere, an expired
session or a banned account is refused on its very next request.
"""

from __future__ import annotations

from flask import g, redirect, request, session, url_for
from flask_login import login_user, logout_user

from app.auth import services
from app.errors import ApiError, wants_json
from app.extensions import login_manager
from app.models import DeviceSession, User

DEVICE_KEY = "device_token"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    token = session.get(DEVICE_KEY)
    if not token or not user_id.isdigit():
        return None
    device = services.load_device(int(user_id), token)
    if device is None:
        session.pop(DEVICE_KEY, None)
        return None
    g.device = device
    return device.user  # loaded with the device: the user is read once per request


@login_manager.unauthorized_handler
def unauthorized():
    if wants_json():
        raise ApiError("unauthenticated", "Sign in first.", 401)
    return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))


def sign_in(user: User, method: str = "password") -> DeviceSession:
    """Open a device session for `user` and put it in this browser's cookie."""
    device, token = services.start_device_session(
        user, request.user_agent.string or "", request.remote_addr, method
    )
    session.clear()
    session.permanent = True
    session[DEVICE_KEY] = token
    login_user(user)
    g.device = device
    return device


def sign_out() -> None:
    device = current_device()
    if device is not None:
        services.end_device_session(device)
    logout_user()
    session.clear()


def current_device() -> DeviceSession | None:
    return g.get("device")
