"""HTML pages for signing in, registering and managing one's account and devices."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app import presenters
from app.auth import accounts, login_limits, self_delete, services
from app.auth.session import current_device, sign_in, sign_out
from app.bots.state import is_enabled as robot_enabled
from app.errors import ApiError
from app.export import services as exports
from app.locales import _, _l

bp = Blueprint("pages", __name__)


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])


class RegisterForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(min=3, max=32)])
    nickname = StringField(_l("Nickname"), validators=[Optional(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=8, max=128)])


class ProfileForm(FlaskForm):
    nickname = StringField(_l("Nickname"), validators=[DataRequired(), Length(max=64)])
    # What an avatar may be is app/media/avatars.py's rule, checked by the profile service.
    avatar_url = StringField(_l("Avatar URL"), validators=[Optional()])
    signature = StringField(_l("Signature"), validators=[Optional(), Length(max=200)])


class PasswordForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[Length(max=128)])
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=128)])


class ActionForm(FlaskForm):
    """A form with nothing but the CSRF token, for buttons that post."""


class DeleteAccountForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[Length(max=128)])


def _safe_next(default: str) -> str:
    """Only same-site paths are followed after sign-in."""
    target = request.args.get("next", "")
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return default


def _show(error: ApiError, form: FlaskForm) -> None:
    for name, message in error.fields.items():
        field = getattr(form, name, None)
        if field is not None:
            field.errors = [*field.errors, message]
    if not error.fields:
        flash(error.message, "error")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = login_limits.authenticate(form.username.data, form.password.data)
        except ApiError as error:
            flash(error.message, "error")
            status = error.status
        else:
            sign_in(user)
            return redirect(_safe_next(url_for("pages.home")))
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.get("/login/token")
def token_login():
    """A company's app opens /login/token#<token> (or #jwt=<jwt>): the token rides in the fragment,
    which browsers never send, so it stays out of every log. app/static/js/token-login.js posts
    it to /api/v1/auth/token only after a click, naming the session it would replace (a link
    someone else made must not silently sign the browser in to their account: login CSRF).
    The page names the account this browser is signed in to now (none: null)."""
    current = None
    if current_user.is_authenticated:
        current = {"nickname": current_user.nickname, "username": current_user.username}
    return render_template("auth/token_login.html", current=current)


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("pages.home"))
    form = RegisterForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = services.register(form.username.data, form.password.data, form.nickname.data)
        except ApiError as error:
            _show(error, form)
            status = error.status
        else:
            sign_in(user)
            return redirect(url_for("pages.home"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/register.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    if ActionForm().validate_on_submit():
        sign_out()
    return redirect(url_for("pages.login"))


@bp.route("/", methods=["GET"])
@login_required
def home():
    """The chat client: Jinja renders the shell, ES modules in app/static/js do the rest."""
    limits = {
        "recall_seconds": current_app.config["RECALL_WINDOW_SECONDS"],
        "edit_seconds": current_app.config["EDIT_WINDOW_SECONDS"],
        # The client refuses a pasted or dropped file over these before uploading it.
        "max_image_bytes": current_app.config["MAX_IMAGE_BYTES"],
        "max_video_bytes": current_app.config["MAX_VIDEO_BYTES"],
        "max_file_bytes": current_app.config["MAX_FILE_BYTES"],
        "max_audio_bytes": current_app.config["MAX_AUDIO_BYTES"],
        # A voice recording is sent when it reaches this length.
        "voice_max_seconds": current_app.config["VOICE_MAX_SECONDS"],
    }
    # The site mute in force comes with the user: the composers start closed (views/speakstate.js).
    me = {**presenters.user_self(current_user), "sanction": accounts.mute_of(current_user.id)}
    return render_template("app.html", me=me, robot=robot_enabled(), limits=limits)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    profile = ProfileForm(obj=current_user, prefix="profile")
    password = PasswordForm(prefix="password")
    status = 200
    if request.method == "POST":
        status = 400
        if "profile-nickname" in request.form and profile.validate_on_submit():
            changes = {
                "nickname": profile.nickname.data.strip(),
                "avatar_url": (profile.avatar_url.data or "").strip() or None,
                "signature": profile.signature.data or "",
            }
            try:
                services.update_profile(current_user, changes)
            except ApiError as error:
                _show(error, profile)
                status = error.status
            else:
                flash(_("Profile saved."), "info")
                return redirect(url_for("pages.account"))
        if "password-new_password" in request.form and password.validate_on_submit():
            try:
                count = services.change_password(
                    current_user,
                    password.current_password.data or "",
                    password.new_password.data,
                    current_device().id,
                )
            except ApiError as error:
                _show(error, password)
                status = error.status
            else:
                flash(_("Password changed; %(count)s other device(s) signed out.", count=count), "info")
                return redirect(url_for("pages.account"))
    return (
        render_template(
            "account.html",
            profile=profile,
            password=password,
            action=ActionForm(),
            devices=services.list_devices(current_user),
            current_device=current_device(),
            github=services.user_identity(current_user.id, "github"),
            exports=[exports.present(row) for row in exports.list_exports(current_user.id)],
            delete_form=DeleteAccountForm(prefix="delete"),
            delete_way=self_delete.needs(current_user),
            github_confirmed=self_delete.github_confirmed(current_user),
        ),
        status,
    )


@bp.post("/account/export")
@login_required
def request_export():
    if ActionForm().validate_on_submit():
        try:
            exports.request_export(current_user.id)
        except ApiError as error:
            flash(error.message, "error")
        else:
            flash(_("Your data is being prepared; the download appears here when it is ready."), "info")
    return redirect(url_for("pages.account", _anchor="data"))


@bp.get("/export/<secret>")
@login_required
def download_export(secret: str):
    """The zip of one's data export, behind its link (app/export/services.py)."""
    return exports.download(current_user.id, secret)


@bp.post("/account/confirm/github")
@login_required
def confirm_with_github():
    """Start a GitHub sign-in that confirms this account before deleting it."""
    if ActionForm().validate_on_submit() and current_app.config["GITHUB_CLIENT_ID"]:
        self_delete.start_github_confirmation(current_user)
        return redirect(url_for("github.login"))
    return redirect(url_for("pages.account", _anchor="delete"))


@bp.post("/account/delete")
@login_required
def delete_account():
    form = DeleteAccountForm(prefix="delete")
    if not form.validate_on_submit():
        return redirect(url_for("pages.account", _anchor="delete"))
    try:
        self_delete.delete_own_account(current_user, form.password.data or "")
    except ApiError as error:
        flash(error.message, "error")
        return redirect(url_for("pages.account", _anchor="delete"))
    logout_user()
    session.clear()
    flash(_("Your account was deleted."), "info")
    return redirect(url_for("pages.login"))


@bp.post("/account/devices/<int:device_id>/sign-out")
@login_required
def revoke_device(device_id: int):
    if ActionForm().validate_on_submit():
        services.revoke_device(current_user, device_id)
        flash(_("Device signed out."), "info")
    return redirect(url_for("pages.account"))


@bp.post("/account/identities/<provider>/unlink")
@login_required
def unlink_identity(provider: str):
    if ActionForm().validate_on_submit():
        try:
            services.unlink_identity(current_user.id, provider)
        except ApiError as error:
            flash(error.message, "error")
        else:
            flash(_("%(provider)s account unlinked.", provider=services.PROVIDERS[provider]), "info")
    return redirect(url_for("pages.account"))
