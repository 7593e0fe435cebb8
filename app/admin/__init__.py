"""The admin console at /admin (Flask-Admin), for users with the admin role only."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from app.admin import api_keys, views, webhooks, words
from app.extensions import db
from app.headers import csp_nonce
from app.models import ApiKey, AuditLog, Group, Message, User


def init_admin(app: Flask) -> None:
    """Flask-Admin views hold per-app state, so each application gets its own set."""
    admin = Admin(
        app,
        name="Parley admin",
        theme=Bootstrap4Theme(swatch="default"),
        index_view=views.DashboardView(name="Dashboard", url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(views.UserView(User, db, name="Users"))
    admin.add_view(views.GroupView(Group, db, name="Groups"))
    admin.add_view(views.MessageView(Message, db, name="Messages"))
    admin.add_view(views.AuditLogView(AuditLog, db, name="Audit log", endpoint="auditlog"))
    admin.add_view(views.BotView(name="Robot", endpoint="bot"))
    admin.add_view(words.WordListView(name="Word lists", endpoint=words.ENDPOINT, url="/admin/words"))
    admin.add_view(api_keys.ApiKeyView(ApiKey, db, name="API keys", endpoint="apikeys"))
    webhooks.add_views(admin)
