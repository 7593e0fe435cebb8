"""The admin console's views. Lists and details come from Flask-Admin; every action posts a
CSRF-protected form to an endpoint here that calls `app.moderation.services`. What a console role
sees and may do here: app/admin/base.py."""

from __future__ import annotations

from datetime import timedelta

from flask import g, jsonify, url_for
from flask_admin import AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla.filters import (
    BaseSQLAFilter,
    DateTimeGreaterFilter,
    DateTimeSmallerFilter,
    FilterEmpty,
)
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import joinedload

from app.admin import stats
from app.admin.base import (
    AdminOnly,
    BanForm,
    MemberForm,
    MuteForm,
    PasswordForm,
    ReadOnlyView,
    ReasonForm,
    RoleForm,
    _act,
    requires,
)
from app.extensions import db
from app.locales import _, _l, html_lang
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
from app.moderation import roles as console_roles
from app.moderation import services as moderation
from app.voice_text import voice_length, whole_seconds


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
    """The figures and 30-day charts (definitions and queries: app/admin/stats.py). The page embeds
    them as JSON for its script; /admin/stats.json answers the same for its refreshes."""

    @expose("/")
    def index(self):
        data = stats.dashboard()
        return self.render("admin/dashboard.html", data=data, figures=data["figures"])

    @expose("/stats.json")
    def stats_json(self):
        response = jsonify(stats.dashboard())
        response.headers["Cache-Control"] = "no-store"
        return response


class SanctionFilter(BaseSQLAFilter):
    """Users with a ban or mute in force (yes) or without (no)."""

    def __init__(self, kind: str, name: str):
        super().__init__(User.id, name, options=(("1", _l("Yes")), ("0", _l("No"))))
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
        return _l("is")


class ProviderFilter(BaseSQLAFilter):
    def __init__(self):
        super().__init__(
            User.id, _l("Signs in with"), options=(("github", "GitHub"), ("password", _l("Password")))
        )

    def apply(self, query, value, alias=None):
        linked = select(OAuthIdentity.id).where(OAuthIdentity.user_id == User.id).exists()
        if value == "github":
            return query.filter(linked)
        return query.filter(User.password_hash.is_not(None))

    def operation(self):
        return _l("is")


class _RoleChoices:
    """The role filter's choices, read when the list is rendered (Flask-Admin reads a filter's
    options once, when the view is made: custom roles come and go)."""

    def __bool__(self):
        return True

    def __iter__(self):
        roles = [(str(role.id), role.name) for role in console_roles.all_roles()]
        return iter([("none", _("No role")), *roles])


class RoleFilter(BaseSQLAFilter):
    """Users holding a given console role, or none."""

    def __init__(self):
        super().__init__(User.admin_role_id, _l("Console role"), options=_RoleChoices())

    def validate(self, value):
        return value == "none" or value.isdecimal() and len(value) < 10

    def apply(self, query, value, alias=None):
        if value == "none":
            return query.filter(User.admin_role_id.is_(None))
        return query.filter(User.admin_role_id == int(value))

    def operation(self):
        return _l("is")


def _flag(view, context, model, name):
    return Markup("✔") if model.id in g.get(f"admin_{name}", set()) else ""


def _role_name(view, context, model, name):
    return model.admin_role.name if model.admin_role is not None else ""


class UserView(ReadOnlyView):
    column_list = [
        "id",
        "username",
        "nickname",
        "admin_role",
        "banned",
        "muted",
        "created_at",
        "last_seen_at",
    ]
    column_searchable_list = ["username", "nickname"]
    column_filters = [
        RoleFilter(),
        "is_bot",
        DateTimeGreaterFilter(User.created_at, _l("Created after")),
        DateTimeSmallerFilter(User.created_at, _l("Created before")),
        SanctionFilter("ban", _l("Banned")),
        SanctionFilter("mute", _l("Muted")),
        ProviderFilter(),
    ]
    column_default_sort = ("id", True)
    column_sortable_list = ["id", "username", "nickname", "created_at", "last_seen_at"]
    column_formatters = {"banned": _flag, "muted": _flag, "admin_role": _role_name}
    column_formatters_detail = {"admin_role": _role_name}
    column_labels = {
        "id": _l("Id"),
        "username": _l("Username"),
        "nickname": _l("Nickname"),
        "signature": _l("Signature"),
        "admin_role": _l("Console role"),
        "is_bot": _l("Is Bot"),
        "banned": _l("Banned"),
        "muted": _l("Muted"),
        "created_at": _l("Created At"),
        "last_seen_at": _l("Last Seen At"),
    }
    column_details_list = [
        "id",
        "username",
        "nickname",
        "signature",
        "admin_role",
        "is_bot",
        "created_at",
        "last_seen_at",
    ]
    details_template = "admin/user_details.html"

    def get_query(self):
        return super().get_query().options(joinedload(User.admin_role))

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
                role_form=RoleForm(role=str(user.admin_role_id or "")),
            )
        return super().render(template, **kwargs)

    def _back(self, user_id: int) -> str:
        return url_for(".details_view", id=user_id)

    @expose("/<int:user_id>/ban", methods=["POST"])
    @requires("ban")
    def ban(self, user_id: int):
        form = BanForm()

        def ban():
            expires = utcnow() + timedelta(hours=form.hours.data) if form.hours.data else None
            moderation.ban_user(current_user.id, user_id, form.reason.data or "", expires)

        return _act(
            form,
            ban,
            _l("Banned; every device was signed out."),
            self._back(user_id),
        )

    @expose("/<int:user_id>/unban", methods=["POST"])
    @requires("ban")
    def unban(self, user_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.unban(current_user.id, user_id, form.reason.data or ""),
            _l("Unbanned."),
            self._back(user_id),
        )

    @expose("/<int:user_id>/mute", methods=["POST"])
    @requires("mute")
    def mute(self, user_id: int):
        form = MuteForm()
        return _act(
            form,
            lambda: moderation.mute_user(current_user.id, user_id, form.reason.data or "", form.minutes.data),
            _l("Muted."),
            self._back(user_id),
        )

    @expose("/<int:user_id>/unmute", methods=["POST"])
    @requires("mute")
    def unmute(self, user_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.unmute(current_user.id, user_id, form.reason.data or ""),
            _l("Unmuted."),
            self._back(user_id),
        )

    @expose("/<int:user_id>/role", methods=["POST"])
    @requires("manage_roles")
    def set_role(self, user_id: int):
        form = RoleForm()
        return _act(
            form,
            lambda: console_roles.set_user_role(current_user.id, user_id, form.role_id()),
            _l("Console role changed."),
            self._back(user_id),
        )

    @expose("/<int:user_id>/password", methods=["POST"])
    @requires("manage_roles")
    def reset_password(self, user_id: int):
        form = PasswordForm()
        return _act(
            form,
            lambda: moderation.reset_password(current_user.id, user_id, form.password.data),
            _l("Password reset; every device was signed out."),
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
        FilterEmpty(Group.dissolved_at, _l("Dissolved (no = dissolved)")),
        DateTimeGreaterFilter(Group.created_at, _l("Created after")),
    ]
    column_default_sort = ("id", True)
    column_formatters = {"owner": lambda v, c, m, n: m.owner.username if m.owner else ""}
    column_labels = {
        "id": _l("Id"),
        "name": _l("Name"),
        "owner": _l("Owner"),
        "member_count": _l("Member Count"),
        "join_policy": _l("Join Policy"),
        "muted_all": _l("Muted All"),
        "dissolved_at": _l("Dissolved At"),
        "created_at": _l("Created At"),
    }
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
    @requires("dissolve")
    def dissolve(self, group_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.dissolve_group(current_user.id, group_id, form.reason.data or ""),
            _l("Group dissolved."),
            self._back(group_id),
        )

    @expose("/<int:group_id>/mute/<int:value>", methods=["POST"])
    @requires("mute")
    def mute(self, group_id: int, value: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.mute_group(current_user.id, group_id, bool(value), form.reason.data or ""),
            _l("Group muted.") if value else _l("Group unmuted."),
            self._back(group_id),
        )

    @expose("/<int:group_id>/remove-member", methods=["POST"])
    @requires("dissolve")
    def remove_member(self, group_id: int):
        form = MemberForm()
        return _act(
            form,
            lambda: moderation.remove_group_member(
                current_user.id, group_id, form.user_id.data, form.reason.data or ""
            ),
            _l("Member removed."),
            self._back(group_id),
        )


class TextFilter(BaseSQLAFilter):
    """Messages whose body contains the text."""

    def __init__(self):
        super().__init__(Message.body, _l("Text"))

    def apply(self, query, value, alias=None):
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return query.filter(cast(Message.body, String).ilike(f"%{escaped}%", escape="\\"))

    def operation(self):
        return _l("contains")


class SenderFilter(BaseSQLAFilter):
    def __init__(self):
        super().__init__(Message.sender_id, _l("Sender username"))

    def apply(self, query, value, alias=None):
        ids = select(User.id).where(User.username_key == value.lower())
        return query.filter(Message.sender_id.in_(ids))

    def operation(self):
        return _l("is")


def message_summary(message: Message) -> str:
    """A message's body as one line of the console: its text, or what it carries ("[Voice] 0:07",
    "[语音] 7″": the push previews' length, app/voice_text.py).
    Plain text: Flask-Admin escapes it (user content is never markup here); no media link (the
    console's admins see media as members do, `viewable_upload`)."""
    body, kind = message.body or {}, message.type
    if kind == "audio":
        text = _("[Voice] %(length)s", length=voice_length(body.get("duration"), html_lang()))
    elif kind == "video":
        duration = body.get("duration")
        text = _("[Video] %(seconds)s s", seconds=whole_seconds(duration)) if duration else _("[Video]")
    elif kind == "img":
        text = _("[Image]")
    elif kind == "file":
        text = _("[File] %(name)s", name=body.get("name") or "")
    elif kind == "loc":
        text = _("[Location] %(title)s", title=body.get("title") or "")
    elif kind == "merged":
        text = _("[Chat history] %(title)s", title=body.get("title") or "")
    else:
        text = str(body.get("msg") or body.get("text") or kind)
    return text[:120]


class MessageView(ReadOnlyView):
    """Messages' text: for the `view_messages` right only."""

    required_right = "view_messages"
    column_list = ["id", "conversation_id", "seq", "sender", "type", "body", "created_at", "recalled_at"]
    column_filters = [
        TextFilter(),
        SenderFilter(),
        "conversation_id",
        "type",
        DateTimeGreaterFilter(Message.created_at, _l("Sent after")),
    ]
    column_default_sort = ("id", True)
    # Not `body`: PostgreSQL cannot order by a JSON column.
    column_sortable_list = ["id", "conversation_id", "seq", "type", "created_at", "recalled_at"]
    column_formatters = {
        "sender": lambda v, c, m, n: m.sender.username if m.sender else _("(system)"),
        "body": lambda v, c, m, n: message_summary(m),
    }
    column_labels = {
        "id": _l("Id"),
        "conversation_id": _l("Conversation Id"),
        "seq": _l("Seq"),
        "sender": _l("Sender"),
        "type": _l("Type"),
        "body": _l("Body"),
        "created_at": _l("Created At"),
        "recalled_at": _l("Recalled At"),
    }
    details_template = "admin/message_details.html"

    def get_query(self):
        return super().get_query().options(joinedload(Message.sender))

    def render(self, template, **kwargs):
        if template == self.details_template:
            kwargs.update(reason_form=ReasonForm())
        return super().render(template, **kwargs)

    @expose("/<int:message_id>/recall", methods=["POST"])
    @requires("recall")
    def recall(self, message_id: int):
        form = ReasonForm()
        return _act(
            form,
            lambda: moderation.recall_message(current_user.id, message_id, form.reason.data or ""),
            _l("Message removed everywhere."),
            url_for(".details_view", id=message_id),
        )


class AuditLogView(ReadOnlyView):
    required_right = "view_audit"
    column_list = ["created_at", "admin", "action", "target_type", "target_id", "reason", "details"]
    column_filters = [
        "action",
        "target_type",
        "target_id",
        DateTimeGreaterFilter(AuditLog.created_at, _l("After")),
    ]
    column_default_sort = ("created_at", True)
    # Not `details`: PostgreSQL cannot order by a JSON column.
    column_sortable_list = ["created_at", "action", "target_type", "target_id"]
    column_formatters = {"admin": lambda v, c, m, n: m.admin.username if m.admin else ""}
    column_labels = {
        "created_at": _l("Created At"),
        "admin": _l("Admin"),
        "action": _l("Action"),
        "target_type": _l("Target Type"),
        "target_id": _l("Target Id"),
        "reason": _l("Reason"),
        "details": _l("Details"),
    }

    def get_query(self):
        return super().get_query().options(joinedload(AuditLog.admin))


class BotView(AdminOnly, BaseView):
    """The robot: which provider answers, its last failure, and the on/off switch."""

    required_right = "bot_switch"

    @expose("/")
    def index(self):
        from app.bots import service as bots

        return self.render("admin/bot.html", status=bots.status(), form=ReasonForm())

    @expose("/<int:value>", methods=["POST"])
    def switch(self, value: int):
        return _act(
            ReasonForm(),
            lambda: moderation.set_bot_enabled(current_user.id, bool(value)),
            _l("Robot switched on.") if value else _l("Robot switched off."),
            url_for(".index"),
        )
