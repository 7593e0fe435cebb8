"""REST routes for Web Push: /api/v1/push/... (the server's key, this device's subscription, and
the user's devices that receive pushes)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from app.auth.session import current_device
from app.push import services
from app.push.schemas import SubscriptionIn
from app.validation import parse_json

bp = Blueprint("push_api", __name__, url_prefix="/api/v1/push")


@bp.get("/key")
@login_required
def key():
    return jsonify(public_key=services.public_key())


@bp.get("/subscriptions")
@login_required
def subscriptions():
    return jsonify(subscriptions=services.list_subscriptions(current_user.id, current_device().id))


@bp.post("/subscriptions")
@login_required
def subscribe():
    data = parse_json(SubscriptionIn)
    subscription = services.subscribe(
        current_user.id, current_device().id, data.endpoint, data.keys.p256dh, data.keys.auth
    )
    return jsonify(subscription=subscription), 201


@bp.delete("/subscriptions")
@login_required
def unsubscribe():
    services.unsubscribe(current_device().id)
    return "", 204
