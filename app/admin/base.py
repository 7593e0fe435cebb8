"""The console's building blocks: access by role, the action forms, and how an action's
outcome is told. A view naming `required_right` is shown and opened only with that right; an
action endpoint marked `@requires(right)` answers 403 without it, before reading its form; pages
know the viewer's rights (`may`) to show only the buttons they can use. The services check the
right again (app/moderation/rights.py)."""

from __future__ import annotations

import functools

from flask import abort, flash, redirect, request, url_for
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.moderation import rights
from app.moderation import roles as console_roles


# Sanction forms: a short label, a short placeholder and the help under the field (rendered by
# templates/admin/_form.html), so nothing is cut on a 390-px phone.
class ReasonForm(FlaskForm):
    reason = StringField(
        _l("Reason"),
        validators=[Optional(), Length(max=500)],
        description=_l("Optional; kept in the audit log."),
        render_kw={"placeholder": _l("Optional"), "maxlength": 500},
    )


class BanForm(ReasonForm):
    hours = IntegerField(
        _l("Hours"),
        validators=[Optional(), NumberRange(1, 24 * 3650)],
        description=_l("Empty: banned until lifted."),
        render_kw={"placeholder": _l("e.g. 24"), "inputmode": "numeric"},
    )


class MuteForm(ReasonForm):
    minutes = IntegerField(
        _l("Minutes"),
        validators=[Optional(), NumberRange(1, 525600)],
        description=_l("Empty: muted until lifted."),
        render_kw={"placeholder": _l("e.g. 30"), "inputmode": "numeric"},
    )


class PasswordForm(FlaskForm):
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(min=8, max=128)],
        description=_l("At least 8 characters."),
        render_kw={"autocomplete": "new-password"},
    )


class MemberForm(ReasonForm):
    user_id = IntegerField(_l("User id"), validators=[DataRequired()])


class RoleForm(FlaskForm):
    """A user's console role: one of the roles' ids, or none (the choices are read per request)."""

    role = SelectField(_l("Console role"), validate_choice=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = [("", _("No role"))] + [
            (str(role.id), role.name) for role in console_roles.all_roles()
        ]

    def role_id(self) -> int | None:
        return int(self.role.data) if self.role.data else None


class AdminOnly:
    """Only signed-in accounts with a console role, and with `required_right` when a view names
    one: others get 403, visitors go to sign in. The services check the right again."""

    required_right: str | None = None

    def is_accessible(self):
        if not (current_user.is_authenticated and current_user.is_admin):
            return False
        return self.required_right is None or rights.has(current_user, self.required_right)

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        abort(403)

    def render(self, template, **kwargs):
        """Every console page knows the viewer's rights (`may`), to show only usable buttons."""
        kwargs.setdefault(
            "may", rights.rights_of(current_user) if current_user.is_authenticated else frozenset()
        )
        return super().render(template, **kwargs)


def requires(right: str):
    """An action endpoint for holders of `right` only: others get 403 and nothing is read or
    done (the view's `is_accessible` has let only console roles in)."""
    assert right in rights.RIGHTS, right

    def decorate(endpoint):
        @functools.wraps(endpoint)
        def checked(*args, **kwargs):
            if not rights.has(current_user, right):
                abort(403)
            return endpoint(*args, **kwargs)

        return checked

    return decorate


def _act(form: FlaskForm, action, success: str, back: str):
    """Check the posted form (CSRF included), run a moderation service, and say how it went:
    its error code on refusal, never a stack trace."""
    if not form.validate_on_submit():
        problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
        flash(_("Nothing was done: %(problems)s", problems=problems), "error")
        return redirect(back)
    try:
        action()
    except ApiError as error:
        db.session.rollback()
        flash(f"{error.message} ({error.code})", "error")
    else:
        flash(str(success), "success")
    return redirect(back)


class ReadOnlyView(AdminOnly, ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
