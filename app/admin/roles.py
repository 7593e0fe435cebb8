"""The console's "Roles" (right `manage_roles`): every role with its rights and how many accounts
hold it, and forms to make, change and delete custom roles through app/moderation/roles.py
(audited). A user's own role is set on the user's page (app/admin/views.py, `set_role`)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin.base import AdminOnly, _act
from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.models import AdminRole
from app.moderation import rights
from app.moderation import roles as services

# What each right lets a role do, as the forms and the list say it.
RIGHT_HELP = {
    "ban": _l("ban: ban and unban users"),
    "mute": _l("mute: mute and unmute users and whole groups"),
    "recall": _l("recall: remove a message everywhere"),
    "dissolve": _l("dissolve: dissolve groups, remove their members"),
    "view_messages": _l("view_messages: read the messages list"),
    "view_audit": _l("view_audit: read the audit log"),
    "manage_roles": _l("manage_roles: roles, users' roles, password resets"),
    "manage_api_keys": _l("manage_api_keys: make and revoke API keys"),
    "manage_webhooks": _l("manage_webhooks: webhooks and their deliveries"),
    "manage_words": _l("manage_words: the word lists"),
    "bot_switch": _l("bot_switch: switch the robot on and off"),
    "settings": _l("settings: the deployment's settings"),
}
assert set(RIGHT_HELP) == set(rights.RIGHTS)


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RoleEditForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=services.MAX_NAME)])
    rights = Checkboxes(
        _l("Rights"), choices=[SelectChoice(right, RIGHT_HELP[right]) for right in rights.RIGHTS]
    )


class DeleteForm(FlaskForm):
    """Nothing but the CSRF token."""


def _problem(error: ApiError) -> str:
    fields = "; ".join(f"{name}: {text}" for name, text in error.fields.items())
    return f"{error.message} ({error.code}{': ' + fields if fields else ''})"


class RoleView(AdminOnly, BaseView):
    required_right = "manage_roles"

    @expose("/")
    def index(self):
        return self.render(
            "admin/roles.html",
            roles=services.all_roles(),
            holders=services.holders(),
            all_rights=rights.RIGHTS,
            help=RIGHT_HELP,
        )

    def _form_page(self, form: RoleEditForm, role: AdminRole | None, status: int = 200):
        return self.render("admin/role_form.html", form=form, role=role, delete=DeleteForm()), status

    def _save(self, form: RoleEditForm, role: AdminRole | None):
        """The saved role, or the form again with what was wrong (400/403/409; nothing saved)."""
        if not form.validate_on_submit():
            problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
            flash(_("Nothing was saved: %(problem)s", problem=problems), "error")
            return None, self._form_page(form, role, 400)
        try:
            if role is None:
                saved = services.create_role(current_user.id, form.name.data, form.rights.data)
            else:
                saved = services.update_role(current_user.id, role.id, form.name.data, form.rights.data)
        except ApiError as error:
            db.session.rollback()
            flash(_("Nothing was saved: %(problem)s", problem=_problem(error)), "error")
            return None, self._form_page(
                form, db.session.get(AdminRole, role.id) if role else None, error.status
            )
        flash(_('Role "%(name)s" saved.', name=saved.name), "success")
        return saved, redirect(url_for(".index"))

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        form = RoleEditForm()
        if request.method == "POST":
            return self._save(form, None)[1]
        return self._form_page(form, None)

    @expose("/<int:role_id>/edit", methods=["GET", "POST"])
    def edit(self, role_id: int):
        role = db.session.get(AdminRole, role_id)
        if role is None:
            flash(_("No such role."), "error")
            return redirect(url_for(".index"))
        if request.method == "POST":
            return self._save(RoleEditForm(), role)[1]
        return self._form_page(RoleEditForm(obj=role), role)

    @expose("/<int:role_id>/delete", methods=["POST"])
    def delete(self, role_id: int):
        return _act(
            DeleteForm(),
            lambda: services.delete_role(current_user.id, role_id),
            _l("Role deleted."),
            url_for(".index"),
        )
