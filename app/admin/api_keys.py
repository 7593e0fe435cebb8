"""The console's API keys: the list (with last use), a form that makes a key and shows it once,
and revocation. The new key is rendered straight into the answer to the form's POST — never put
in a flash message or the session, whose cookie is signed but readable — and that page is not
cached. Making and revoking go through app/server_api/keys.py, which writes the audit rows."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import flash, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import DateField, SelectMultipleField, StringField, TextAreaField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.admin.base import ReadOnlyView, _act
from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.models.integrations import API_SCOPES
from app.models.types import utcnow
from app.server_api import keys

SCOPE_HELP = {
    "users": _l("users: create, import, update, delete; sign-in tokens"),
    "messages": _l("messages: send messages and notices, recall"),
    "groups": _l("groups: create and manage groups"),
    "moderation": _l("moderation: ban, unban, mute, unmute"),
    "read": _l("read: every GET"),
}


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class NewKeyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    scopes = CheckboxesField(
        _l("Scopes"), choices=[SelectChoice(name, SCOPE_HELP[name]) for name in API_SCOPES]
    )
    allowed_ips = TextAreaField(
        _l("Allowed addresses (one address or CIDR network per line; empty: anywhere)"),
        validators=[Optional(), Length(max=4000)],
    )
    expires_on = DateField(_l("Expires on (empty: never)"), validators=[Optional()])

    def validate_scopes(self, field):
        if not field.data:
            raise ValidationError(_("Choose at least one scope."))

    def validate_allowed_ips(self, field):
        try:
            keys.check_networks(self.networks())
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def validate_expires_on(self, field):
        if field.data is not None and field.data <= utcnow().date():
            raise ValidationError(_("Choose a day after today."))

    def networks(self) -> list[str] | None:
        lines = [line.strip() for line in (self.allowed_ips.data or "").splitlines()]
        return [line for line in lines if line] or None

    def expires_at(self) -> datetime | None:
        day = self.expires_on.data
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class RevokeForm(FlaskForm):
    """Nothing but the CSRF token."""


def _scopes(view, context, model, name):
    return ", ".join(model.scopes or [])


def _networks(view, context, model, name):
    return ", ".join(model.allowed_ips) if model.allowed_ips else _("anywhere")


def _last_use(view, context, model, name):
    if model.last_used_at is None:
        return _("never")
    return _(
        "%(time)s from %(ip)s", time=f"{model.last_used_at:%Y-%m-%d %H:%M}", ip=model.last_used_ip or "?"
    )


def _revoke_button(view, context, model, name):
    if model.revoked_at is not None:
        return f"{model.revoked_at:%Y-%m-%d %H:%M}"
    form = RevokeForm()
    return Markup(
        '<form method="post" action="{}" class="form-inline">{}'
        '<button type="submit" class="btn btn-danger btn-sm">{}</button></form>'
    ).format(url_for(".revoke", key_id=model.id), form.csrf_token, _("Revoke"))


class ApiKeyView(ReadOnlyView):
    """API keys for the server API (/api/server/v1): made here, shown once, revocable."""

    required_right = "manage_api_keys"

    can_view_details = False
    column_list = [
        "name",
        "prefix",
        "scopes",
        "allowed_ips",
        "expires_at",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    # JSON columns have no order on PostgreSQL: only these headers sort.
    column_sortable_list = ["name", "prefix", "expires_at", "created_at", "last_used_at", "revoked_at"]
    column_labels = {
        "name": _l("Name"),
        "prefix": _l("Prefix"),
        "scopes": _l("Scopes"),
        "allowed_ips": _l("Allowed from"),
        "expires_at": _l("Expires At"),
        "created_at": _l("Created At"),
        "last_used_at": _l("Last used"),
        "revoked_at": _l("Revoked"),
    }
    column_searchable_list = ["name", "prefix"]
    column_default_sort = ("id", True)
    column_formatters = {
        "scopes": _scopes,
        "allowed_ips": _networks,
        "last_used_at": _last_use,
        "revoked_at": _revoke_button,
    }
    list_template = "admin/api_keys_list.html"

    @expose("/create-key/", methods=("GET", "POST"))
    def create_key(self):
        form = NewKeyForm()
        status = 200
        if form.validate_on_submit():
            try:
                row, key = keys.create_key_audited(
                    current_user.id,
                    form.name.data.strip(),
                    form.scopes.data,
                    allowed_ips=form.networks(),
                    expires_at=form.expires_at(),
                )
            except ApiError as error:
                db.session.rollback()
                flash(f"{error.message} ({error.code})", "error")
                status = error.status
            else:
                page = self.render("admin/api_key_created.html", row=row, key=key)
                return page, 201, {"Cache-Control": "no-store"}
        elif request.method == "POST":
            status = 400
        return self.render("admin/api_key_new.html", form=form), status

    @expose("/<int:key_id>/revoke", methods=("POST",))
    def revoke(self, key_id: int):
        return _act(
            RevokeForm(),
            lambda: keys.revoke_key_audited(current_user.id, key_id),
            _l("API key revoked; it is refused from now on."),
            url_for(".index_view"),
        )
