"""REST route for the robot: /api/v1/bot."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask_login import current_user, login_required

from app.bots import service

bp = Blueprint("bots_api", __name__, url_prefix="/api/v1")


@bp.get("/bot")
@login_required
def bot():
    return jsonify(service.open_bot(current_user.id))
