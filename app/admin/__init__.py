"""The admin console at /admin (Flask-Admin), for users with a console role; each view and
action for the roles with its right (app/moderation/rights.py)."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from app.admin import api_keys, roles, views, webhooks, words
from app.admin.settings import SettingsView
from app.extensions import db
from app.headers import csp_nonce
from app.locales import _l
from app.models import ApiKey, AuditLog, Group, Message, User


def init_admin(app: Flask) -> None:
    """Flask-Admin views hold per-app state, so each application gets its own set."""
    admin = Admin(
        app,
        name=_l("Parley admin"),
        # Flask-Admin's base with the page's lang and accessible colours (templates/admin/parley_base.html).
        theme=Bootstrap4Theme(swatch="default", base_template="admin/parley_base.html"),
        index_view=views.DashboardView(name=_l("Dashboard"), url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(views.UserView(User, db, name=_l("Users")))
    admin.add_view(views.GroupView(Group, db, name=_l("Groups")))
    admin.add_view(views.MessageView(Message, db, name=_l("Messages")))
    admin.add_view(views.AuditLogView(AuditLog, db, name=_l("Audit log"), endpoint="auditlog"))
    admin.add_view(views.BotView(name=_l("Robot"), endpoint="bot"))
    admin.add_view(words.WordListView(name=_l("Word lists"), endpoint=words.ENDPOINT, url="/admin/words"))
    admin.add_view(api_keys.ApiKeyView(ApiKey, db, name=_l("API keys"), endpoint="apikeys"))
    admin.add_view(roles.RoleView(name=_l("Roles"), endpoint="roles", url="/admin/roles"))
    admin.add_view(SettingsView(name=_l("Settings"), endpoint="settings", url="/admin/settings"))
    webhooks.add_views(admin)
