"""The console's "Webhooks" (made and edited through app/webhooks/manage.py, audited; this
process sees a change at once, the others within WEBHOOK_CACHE_SECONDS) and "Webhook deliveries"
(the outbox as a log, newest first, filterable by hook and status, with "retry now")."""

from __future__ import annotations

import json

from flask import flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin.base import AdminOnly, ReadOnlyView, ReasonForm, _act
from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.models.integrations import DELIVERY_STATUSES, Webhook, WebhookDelivery
from app.moderation import rights
from app.webhooks import manage, registry, signing


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class WebhookForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    url = StringField(_l("URL (http or https)"), validators=[DataRequired(), Length(max=500)])
    secret = StringField(
        _l("Secret (blank: generated; on edit, blank keeps it)"), validators=[Optional(), Length(max=128)]
    )
    events = Checkboxes(_l("Events"), choices=[SelectChoice(event, event) for event in registry.EVENTS])
    enabled = BooleanField(_l("Enabled"), default=True)
    timeout_ms = IntegerField(
        _l("message.before_send timeout (ms)"), default=2000, validators=[NumberRange(*manage.TIMEOUT_MS)]
    )
    fail_open = BooleanField(
        _l("message.before_send fails open (an unanswered check lets the message through)"), default=True
    )


def _problem(error: ApiError) -> str:
    fields = "; ".join(f"{name}: {text}" for name, text in error.fields.items())
    return f"{error.message} ({error.code}{': ' + fields if fields else ''})"


class WebhookView(AdminOnly, BaseView):
    required_right = "manage_webhooks"

    @expose("/")
    def index(self):
        hooks = list(db.session.scalars(select(Webhook).order_by(Webhook.id)))
        # URLs without a query or user:password@: a token there is a secret (the edit page,
        # which shows the secret too, has the whole URL).
        return self.render("admin/webhooks.html", hooks=hooks, shown_url=signing.shown_url)

    def _save(self, form: WebhookForm, hook: Webhook | None):
        if not form.validate_on_submit():
            problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
            flash(_("Nothing was saved: %(problem)s", problem=problems), "error")
            return None
        values = {
            "secret": form.secret.data or None,
            "enabled": form.enabled.data,
            "timeout_ms": form.timeout_ms.data,
            "fail_open": form.fail_open.data,
        }
        try:
            if hook is None:
                saved = manage.create_hook(
                    current_user.id, form.name.data, form.url.data, form.events.data, **values
                )
            else:
                saved = manage.update_hook(
                    current_user.id,
                    hook.id,
                    name=form.name.data,
                    url=form.url.data,
                    events=form.events.data,
                    **values,
                )
        except ApiError as error:
            db.session.rollback()
            flash(_("Nothing was saved: %(problem)s", problem=_problem(error)), "error")
            return None
        return saved

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        form = WebhookForm()
        if request.method == "POST":
            hook = self._save(form, None)
            if hook is not None:
                # The secret is shown here (and on the edit page) for the receiver's set-up.
                flash(_("Webhook saved."), "success")
                return self.render(
                    "admin/webhook_form.html", form=WebhookForm(obj=hook), hook=hook, created=True
                )
        return self.render("admin/webhook_form.html", form=form, hook=None, created=False)

    @expose("/<int:hook_id>/edit", methods=["GET", "POST"])
    def edit(self, hook_id: int):
        hook = db.session.get(Webhook, hook_id)
        if hook is None:
            flash(_("No such webhook."), "error")
            return redirect(url_for(".index"))
        if request.method == "POST":
            if self._save(WebhookForm(), hook) is not None:
                flash(_("Webhook saved."), "success")
                return redirect(url_for(".edit", hook_id=hook_id))
            db.session.refresh(hook)
        form = WebhookForm(obj=hook) if request.method == "GET" else WebhookForm()
        form.secret.data = ""
        return self.render("admin/webhook_form.html", form=form, hook=hook, created=False)


def _retry_button(view, context, model, name):
    if model.status == "delivered":
        return ""
    form = ReasonForm()
    url = url_for(".retry", delivery_id=model.id)
    return Markup(
        '<form method="post" action="{}" class="form-inline">{}'
        '<button type="submit" class="btn btn-warning btn-sm">{}</button></form>'
    ).format(url, form.csrf_token, _("Retry now"))


def _payload(view, context, model, name):
    """A delivery's payload carries messages' text: shown to roles that may read messages."""
    if rights.has(current_user, "view_messages"):
        return json.dumps(model.payload, ensure_ascii=False)
    return _("(shown with the view_messages right)")


class WebhookDeliveryView(ReadOnlyView):
    required_right = "manage_webhooks"
    column_formatters_detail = {"payload": _payload}
    column_list = [
        "id",
        "webhook_id",
        "event",
        "event_id",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_status_code",
        "last_error",
        "retry",
    ]
    column_filters = [
        FilterEqual(
            WebhookDelivery.status, _l("Status"), options=[(status, status) for status in DELIVERY_STATUSES]
        ),
        FilterEqual(WebhookDelivery.webhook_id, _l("Webhook id")),
        FilterEqual(
            WebhookDelivery.event, _l("Event"), options=[(event, event) for event in registry.AFTER_EVENTS]
        ),
        FilterEqual(WebhookDelivery.event_id, _l("Event id")),
    ]
    column_default_sort = ("id", True)
    column_formatters = {"retry": _retry_button}

    @expose("/<int:delivery_id>/retry", methods=["POST"])
    def retry(self, delivery_id: int):
        return _act(
            ReasonForm(),
            lambda: manage.retry_delivery(current_user.id, delivery_id),
            _l("The delivery goes out at the next round."),
            url_for(".index_view"),
        )


def add_views(admin) -> None:
    admin.add_view(WebhookView(name=_l("Webhooks"), endpoint="webhooks", url="/admin/webhooks"))
    admin.add_view(
        WebhookDeliveryView(WebhookDelivery, db, name=_l("Webhook deliveries"), endpoint="webhookdelivery")
    )
