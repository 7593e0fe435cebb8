"""The admin console's views. Lists and details come from Flask-Admin; every action posts a
CSRF-protected form to an endpoint here that calls `app.moderation.services`."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, request, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import (
    BaseSQLAFilter,
    DateTimeGreaterFilter,
    DateTimeSmallerFilter,
    FilterEmpty,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import joinedload
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app import realtime
from app.errors import ApiError
from app.extensions import db
from app.models import (
    AuditLog,
    DeviceSession,
    Group,
    GroupMember,
    Message,
    OAuthIdentity,
    Sanction,
    User,
    utcnow,
)
from app.moderation import services as moderation
from app.wordfilter import services as wordfilter


class ReasonForm(FlaskForm):
    reason = StringField("Reason", validators=[Optional(), Length(max=500)])


class BanForm(ReasonForm):
    hours = IntegerField("Hours (empty: until lifted)", validators=[Optional(), NumberRange(1, 24 * 3650)])


class MuteForm(ReasonForm):
    minutes = IntegerField("Minutes (empty: until lifted)", validators=[Optional(), NumberRange(1, 525600)])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=128)])


class MemberForm(ReasonForm):
    user_id = IntegerField("User id", validators=[DataRequired()])


class AdminOnly:
    """Only signed-in administrators: others get 403, visitors go to sign in."""

    def is_accessible(self):
        return current_user.is_authenticated and current_user.is_admin

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        abort(403)


def _act(form: FlaskForm, action, success: str, back: str):
    """Check the posted form (CSRF included), run a moderation service, and say how it went:
    its error code on refusal, never a stack trace."""
    if not form.validate_on_submit():
        problems = "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items())
        flash(f"Nothing was done: {problems}", "error")
        return redirect(back)
    try:
        action()
    except ApiError as error:
        db.session.rollback()
        flash(f"{error.message} ({error.code})", "error")
    else:
        flash(success, "success")
    return redirect(back)


def _sanctioned(kind: str, user_ids: list[int] | None = None) -> set[int]:
    """Users with a `kind` sanction in force (among `user_ids`, when given): one query."""
    now = utcnow()
    query = select(Sanction.user_id).where(
        Sanction.kind == kind,
        Sanction.lifted_at.is_(None),
        or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
    )
    if user_ids is not None:
        query = query.where(Sanction.user_id.in_(user_ids))
    return set(db.session.scalars(query))


class DashboardView(AdminOnly, AdminIndexView):
    @expose("/")
    def index(self):
        now = utcnow()
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - timedelta(days=29)
        day = func.date(Message.created_at)
        per_day = dict(
            db.session.execute(
                select(day, func.count(Message.id)).where(Message.created_at >= since).group_by(day)
            ).all()
        )
        days = [(since + timedelta(days=i)).date().isoformat() for i in range(30)]
        counts = [int(per_day.get(d, 0)) for d in days]
        stats = {
            "users": db.session.scalar(select(func.count(User.id)).where(User.is_bot.is_(False))),
            "new_today": db.session.scalar(select(func.count(User.id)).where(User.created_at >= today)),
            "online": realtime.presence().online_count(),
            "messages_today": counts[-1],
            "groups": db.session.scalar(select(func.count(Group.id)).where(Group.dissolved_at.is_(None))),
            "banned": len(_sanctioned("ban")),
            "muted": len(_sanctioned("mute")),
        }
        peak = max(counts) or 1
        stats["word_hits"], top_lists = wordfilter.hit_counts()
        return self.render(
            "admin/dashboard.html", stats=stats, days=days, counts=counts, peak=peak, top_lists=top_lists
        )


class ReadOnlyView(AdminOnly, ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50


class SanctionFilter(BaseSQLAFilter):
    """Users with a ban or mute in force (yes) or without (no)."""

    def __init__(self, kind: str, name: str):
        super().__init__(User.id, name, options=(("1", "Yes"), ("0", "No")))
        self.kind = kind

    def apply(self, query, value, alias=None):
        now = utcnow()
        active = (
            select(Sanction.id)
            .where(
                Sanction.user_id == User.id,
                Sanction.kind == self.kind,
                Sanction.lifted_at.is_(None),
                or_(Sanction.expires_at.is_(None), Sanction.expires_at > now),
            )
            .exists()
        )
        return query.filter(active if value == "1" else ~active)

    def operation(self):
        return "is"


class ProviderFilter(BaseSQLAFilter):
    def __init__(self):
        super().__init__(User.id, "Signs in with", options=(("github", "GitHub"), ("password", "Password")))

    def apply(self, query, value, alias=None):
        linked = select(OAuthIdentity.id).where(OAuthIdentity.user_id == User.id).exists()
        if value == "github":
            return query.filter(linked)
        return query.filter(User.password_hash.is_not(None))

    def operation(self):
        return "is"


def _flag(view, context, model, name):
    return Markup("✔") if model.id in g.get(f"admin_{name}", set()) else ""


class UserView(ReadOnlyView):
    column_list = ["id", "username", "nickname", "is_admin", "banned", "muted", "created_at", "last_seen_at"]
    column_searchable_list = ["username", "nickname"]
    column_filters = [
        "is_admin",
        "is_bot",
        DateTimeGreaterFilter(User.created_at, "Created after"),
        DateTimeSmallerFilter(User.created_at, "Created before"),
        SanctionFilter("ban", "Banned"),
        SanctionFilter("mute", "Muted"),
        ProviderFilter(),
    ]
    column_default_sort = ("id", True)
    column_formatters = {"banned": _flag, "muted": _flag}
    column_details_list = [
        "id",
        "username",
        "nickname",
        "signature",
        "is_admin",
        "is_bot",
        "created_at",
        "last_seen_at",
    ]
    details_template = "admin/user_details.html"

    def get_list(self, *args, **kwargs):
        count, rows = super().get_list(*args, **kwargs)
        ids = [row.id for row in rows]
        g.admin_banned = _sanctioned("ban", ids)
        g.admin_muted = _sanctioned("mute", ids)
        return count, rows

    def render(self, template, **kwargs):
        if template == self.details_template and "model" in kwargs:
            user = kwargs["model"]
            kwargs.update(
                devices=list(
                    db.session.scalars(
                        select(DeviceSession)
                        .where(DeviceSession.user_id == user.id, DeviceSession.revoked_at.is_(None))
                        .order_by(DeviceSession.last_seen_at.desc())
                    )
                ),
                groups=db.session.execute(
                    select(Group, GroupMember.role)
                    .join(GroupMember, GroupMember.group_id == Group.id)
                    .where(GroupMember.user_id == user.id)
                ).all(),
                bans=moderation.active_sanctions(user.id, "ban"),
                mutes=moderation.active_sanctions(user.id, "mute"),
                ban_form=BanForm(),
                mute_form=MuteForm(),
                reason_form=ReasonForm(),
                password_form=PasswordForm(),
            )
        return super().render(template, **kwargs)

    def _back(self, user_id: int) -> str:
        return url_for(".details_view", id=user_id)

    @expose("/<int:user_id>/ban", methods=["POST"])
    def ban(self, user_id: int):
        form = BanForm()

        def ban():
            expires = utcnow() + timedelta(hours=form.hours.data) if form.hours.data else None
            moderation.ban_user(current_user.id, user_id, form.reason.data or "", expires)

        return _act(
            form,
            ban,
            "Banned; every device was signed out.",
            self._back(user_id),
        )

    @expose("/<int:user_id>/unban", methods=["POST"])
    def unban(self, user_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.unban(current_user.id, user_id, form.reason.data or ""),
            "Unbanned.",
            self._back(user_id),
        )

    @expose("/<int:user_id>/mute", methods=["POST"])
    def mute(self, user_id: int):
        form = MuteForm()
        return _act(
            form,
            lambda: moderation.mute_user(current_user.id, user_id, form.reason.data or "", form.minutes.data),
            "Muted.",
            self._back(user_id),
        )

    @expose("/<int:user_id>/unmute", methods=["POST"])
    def unmute(self, user_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.unmute(current_user.id, user_id, form.reason.data or ""),
            "Unmuted.",
            self._back(user_id),
        )

    @expose("/<int:user_id>/admin/<int:value>", methods=["POST"])
    def set_admin(self, user_id: int, value: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.set_admin(current_user.id, user_id, bool(value)),
            "Admin role changed.",
            self._back(user_id),
        )

    @expose("/<int:user_id>/password", methods=["POST"])
    def reset_password(self, user_id: int):
        form = PasswordForm()
        return _act(
            form,
            lambda: moderation.reset_password(current_user.id, user_id, form.password.data),
            "Password reset; every device was signed out.",
            self._back(user_id),
        )


class GroupView(ReadOnlyView):
    column_list = [
        "id",
        "name",
        "owner",
        "member_count",
        "join_policy",
        "muted_all",
        "dissolved_at",
        "created_at",
    ]
    column_searchable_list = ["name"]
    column_filters = [
        "muted_all",
        "join_policy",
        FilterEmpty(Group.dissolved_at, "Dissolved (no = dissolved)"),
        DateTimeGreaterFilter(Group.created_at, "Created after"),
    ]
    column_default_sort = ("id", True)
    column_formatters = {"owner": lambda v, c, m, n: m.owner.username if m.owner else ""}
    details_template = "admin/group_details.html"

    def get_query(self):
        return super().get_query().options(joinedload(Group.owner))

    def render(self, template, **kwargs):
        if template == self.details_template and "model" in kwargs:
            kwargs.update(
                members=db.session.execute(
                    select(GroupMember, User)
                    .join(User, User.id == GroupMember.user_id)
                    .where(GroupMember.group_id == kwargs["model"].id)
                    .order_by(User.id)
                ).all(),
                reason_form=ReasonForm(),
                member_form=MemberForm(),
            )
        return super().render(template, **kwargs)

    def _back(self, group_id: int) -> str:
        return url_for(".details_view", id=group_id)

    @expose("/<int:group_id>/dissolve", methods=["POST"])
    def dissolve(self, group_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.dissolve_group(current_user.id, group_id, form.reason.data or ""),
            "Group dissolved.",
            self._back(group_id),
        )

    @expose("/<int:group_id>/mute/<int:value>", methods=["POST"])
    def mute(self, group_id: int, value: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.mute_group(current_user.id, group_id, bool(value), form.reason.data or ""),
            "Group muted." if value else "Group unmuted.",
            self._back(group_id),
        )

    @expose("/<int:group_id>/remove-member", methods=["POST"])
    def remove_member(self, group_id: int):
        form = MemberForm()
        return _act(
            form,
            lambda: moderation.remove_group_member(
                current_user.id, group_id, form.user_id.data, form.reason.data or ""
            ),
            "Member removed.",
            self._back(group_id),
        )


class TextFilter(BaseSQLAFilter):
    """Messages whose body contains the text."""

    def __init__(self):
        super().__init__(Message.body, "Text")

    def apply(self, query, value, alias=None):
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return query.filter(cast(Message.body, String).ilike(f"%{escaped}%", escape="\\"))

    def operation(self):
        return "contains"


class SenderFilter(BaseSQLAFilter):
    def __init__(self):
        super().__init__(Message.sender_id, "Sender username")

    def apply(self, query, value, alias=None):
        ids = select(User.id).where(User.username_key == value.lower())
        return query.filter(Message.sender_id.in_(ids))

    def operation(self):
        return "is"


class MessageView(ReadOnlyView):
    column_list = ["id", "conversation_id", "seq", "sender", "type", "body", "created_at", "recalled_at"]
    column_filters = [
        TextFilter(),
        SenderFilter(),
        "conversation_id",
        "type",
        DateTimeGreaterFilter(Message.created_at, "Sent after"),
    ]
    column_default_sort = ("id", True)
    # Not `body`: PostgreSQL cannot order by a JSON column.
    column_sortable_list = ["id", "conversation_id", "seq", "type", "created_at", "recalled_at"]
    column_formatters = {
        "sender": lambda v, c, m, n: m.sender.username if m.sender else "(system)",
        "body": lambda v, c, m, n: (m.body.get("msg") or m.body.get("text") or m.body.get("title") or m.type)[
            :120
        ],
    }
    details_template = "admin/message_details.html"

    def get_query(self):
        return super().get_query().options(joinedload(Message.sender))

    def render(self, template, **kwargs):
        if template == self.details_template:
            kwargs.update(reason_form=ReasonForm())
        return super().render(template, **kwargs)

    @expose("/<int:message_id>/recall", methods=["POST"])
    def recall(self, message_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.recall_message(current_user.id, message_id, form.reason.data or ""),
            "Message removed everywhere.",
            url_for(".details_view", id=message_id),
        )


class AuditLogView(ReadOnlyView):
    column_list = ["created_at", "admin", "action", "target_type", "target_id", "reason", "details"]
    column_filters = [
        "action",
        "target_type",
        "target_id",
        DateTimeGreaterFilter(AuditLog.created_at, "After"),
    ]
    column_default_sort = ("created_at", True)
    # Not `details`: PostgreSQL cannot order by a JSON column.
    column_sortable_list = ["created_at", "action", "target_type", "target_id"]
    column_formatters = {"admin": lambda v, c, m, n: m.admin.username if m.admin else ""}

    def get_query(self):
        return super().get_query().options(joinedload(AuditLog.admin))


class BotView(AdminOnly, BaseView):
    """The robot: which provider answers, its last failure, and the on/off switch."""

    @expose("/")
    def index(self):
        from app.bots import service as bots

        return self.render("admin/bot.html", status=bots.status(), form=ReasonForm())

    @expose("/<int:value>", methods=["POST"])
    def switch(self, value: int):
        return _act(
            ReasonForm(),
            lambda: moderation.set_bot_enabled(current_user.id, bool(value)),
            "Robot switched on." if value else "Robot switched off.",
            url_for(".index"),
        )
