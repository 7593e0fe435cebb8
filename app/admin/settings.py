"""The console's "Settings": the deployment's retention policy and groups' own retention
(app/settings.py, app/retention.py), for accounts with the right `settings`. Each change goes
through the settings service (validated, audited) like the server API's."""

from __future__ import annotations

from flask import url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField
from wtforms.validators import DataRequired, InputRequired, Optional

from app import settings
from app.admin.base import AdminOnly, _act
from app.extensions import db
from app.locales import _l
from app.models import Group, Setting, User

# The groups with a retention of their own the page lists (the newest first).
GROUPS_SHOWN = 100


class RetentionForm(FlaskForm):
    # The range is the service's to check (its error is shown, nothing is saved).
    retention_days = IntegerField(
        _l("Keep messages for (days)"),
        validators=[InputRequired()],
        description=_l("0 keeps messages forever; at most 36500."),
        render_kw={"inputmode": "numeric"},
    )


class GroupRetentionForm(FlaskForm):
    group_id = IntegerField(_l("Group id"), validators=[DataRequired()], render_kw={"inputmode": "numeric"})
    retention_days = IntegerField(
        _l("Keep its messages for (days)"),
        validators=[Optional()],
        description=_l("Empty: as the deployment; 0: forever."),
        render_kw={"inputmode": "numeric"},
    )


class SettingsView(AdminOnly, BaseView):
    required_right = "settings"

    @expose("/")
    def index(self):
        stored = db.session.get(Setting, "retention_days")
        changed_by = db.session.get(User, stored.updated_by_id) if stored and stored.updated_by_id else None
        groups = db.session.scalars(
            select(Group)
            .where(Group.retention_days.is_not(None))
            .order_by(Group.id.desc())
            .limit(GROUPS_SHOWN)
        ).all()
        current = settings.get("retention_days")
        return self.render(
            "admin/settings.html",
            retention_days=current,
            stored=stored,
            changed_by=changed_by,
            groups=groups,
            form=RetentionForm(retention_days=current),
            group_form=GroupRetentionForm(),
        )

    @expose("/retention", methods=["POST"])
    def retention(self):
        form = RetentionForm()
        return _act(
            form,
            lambda: settings.set_value(current_user.id, "retention_days", form.retention_days.data),
            _l("Retention saved."),
            url_for(".index"),
        )

    @expose("/group-retention", methods=["POST"])
    def group_retention(self):
        form = GroupRetentionForm()
        return _act(
            form,
            lambda: settings.set_group_retention(
                current_user.id, form.group_id.data, form.retention_days.data
            ),
            _l("Group retention saved."),
            url_for(".index"),
        )
