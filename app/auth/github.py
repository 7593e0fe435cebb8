"""GitHub sign-in through Flask-Dance: sign in, sign up and link, matched by GitHub's numeric
user id only (never by a login or an e-mail, which is how the original product was taken over).

Flask-Dance runs the OAuth dance and checks `state`; Parley answers its signals. `GET /user` is read
once with the fresh token, then the identity signs in, makes a new account or is linked to the
signed-in one (or, when the account page started the dance to confirm a deletion, confirms the
signed-in account: app/auth/self_delete.py). The token is not kept: Parley needs nothing more
from GitHub, so no token reaches the cookie, the database or a page. Every failure ends on the
page the dance started from, with a message, and changes nothing.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urljoin

import requests
from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask_dance.consumer import oauth_authorized, oauth_error
from flask_dance.contrib.github import make_github_blueprint
from flask_login import current_user
from oauthlib.oauth2 import InsecureTransportError, MismatchingStateError, OAuth2Error
from pydantic import BaseModel, ConfigDict, Field

from app import metrics
from app.auth import self_delete, services
from app.auth.session import sign_in
from app.errors import ApiError
from app.extensions import db
from app.locales import _, _l
from app.media import avatars

log = logging.getLogger(__name__)

PROVIDER = "github"
# Where Flask-Dance keeps the state of a dance this browser started.
STATE_KEY = f"{PROVIDER}_oauth_state"


class GitHubProfile(BaseModel):
    """The fields of GitHub's `GET /user` answer that Parley reads."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(gt=0, strict=True)
    login: str = Field(min_length=1, max_length=100)
    name: str | None = None
    avatar_url: str | None = None


def github_urls(base_url: str | None) -> tuple[str, str, str]:
    """The API base, authorize and token URLs: github.com's, or those of the GitHub Enterprise
    server at `base_url` (whose REST API lives under /api/v3/)."""
    if base_url is None:
        return (
            "https://api.github.com/",
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
        )
    root = base_url.rstrip("/") + "/"
    return (
        urljoin(root, "api/v3/"),
        urljoin(root, "login/oauth/authorize"),
        urljoin(root, "login/oauth/access_token"),
    )


def init_github(app: Flask) -> None:
    """Serve GitHub sign-in at /auth/github/login when credentials are configured; without them
    the routes do not exist (404) and the sign-in page shows no button."""
    if not app.config["GITHUB_CLIENT_ID"]:
        return
    if app.config["PARLEY_ENV"] != "production":
        # oauthlib refuses plain-http callback URLs; development and tests serve http on localhost.
        # Production is served over HTTPS, and config.py refuses this switch there.
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    # These libraries log client secrets and tokens at DEBUG.
    for name in ("flask_dance", "requests_oauthlib", "oauthlib"):
        logging.getLogger(name).setLevel(logging.INFO)

    blueprint = make_github_blueprint(
        client_id=app.config["GITHUB_CLIENT_ID"],
        client_secret=app.config["GITHUB_CLIENT_SECRET"],
        login_url="/github/login",
        authorized_url="/github/authorized",
    )
    blueprint.base_url, blueprint.authorization_url, blueprint.token_url = github_urls(
        app.config["GITHUB_BASE_URL"]
    )
    blueprint.token_url_params = {"timeout": app.config["GITHUB_TIMEOUT"]}
    blueprint.before_request(_require_state)
    blueprint.register_error_handler(ApiError, _refused)
    blueprint.register_error_handler(OAuth2Error, _oauth_failed)
    blueprint.register_error_handler(requests.RequestException, _unreachable)
    oauth_authorized.connect(_authorized, sender=blueprint)
    oauth_error.connect(_cancelled, sender=blueprint)
    app.register_blueprint(blueprint, url_prefix="/auth")


def _require_state():
    """A callback this browser did not start is refused (Flask-Dance would quietly begin a new
    dance instead); a forged or missing `state` parameter is refused by oauthlib itself."""
    callback = request.endpoint == f"{PROVIDER}.authorized" and "error" not in request.args
    if callback and STATE_KEY not in session:
        raise _state_invalid()


def _authorized(blueprint, token: dict):
    """GitHub said yes: sign in, sign up, or link to the signed-in account. Returning a response
    ends Flask-Dance's view before it would store the token."""
    profile = _fetch_profile(blueprint.base_url, token["access_token"])
    github_id = str(profile.id)
    if current_user.is_authenticated:
        if self_delete.wants_github_confirmation(current_user):  # before deleting the account
            self_delete.record_github_confirmation(current_user, github_id)
            flash(_("Confirmed with GitHub: you can delete your account in the next few minutes."), "info")
            return redirect(url_for("pages.account", _anchor="delete"))
        services.link_identity(current_user.id, PROVIDER, github_id, profile.login)
        flash(_("GitHub account @%(login)s linked.", login=profile.login), "info")
        return redirect(url_for("pages.account"))
    user = services.identity_sign_in(PROVIDER, github_id, profile.login)
    if user is None:
        user = services.create_user_from_identity(
            PROVIDER, github_id, profile.login, profile.name, _avatar(profile.avatar_url)
        )
    sign_in(user, method=PROVIDER)
    metrics.sign_in(PROVIDER, True)
    return redirect(url_for("pages.home"))


def _fetch_profile(api_base: str, access_token: str) -> GitHubProfile:
    """Who the token belongs to. Asked with this request's token alone (Flask-Dance's provider
    session is shared by every request of the process)."""
    response = requests.get(
        urljoin(api_base, "user"),
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        timeout=current_app.config["GITHUB_TIMEOUT"],
    )
    if response.status_code != 200:
        log.warning("GitHub answered GET /user with %s", response.status_code)
        raise _github_failed()
    try:
        return GitHubProfile.model_validate(response.json())
    except ValueError:  # not JSON, or not a user
        log.warning("GitHub answered GET /user with something that is not a user")
        raise _github_failed() from None


def _avatar(url: str | None) -> str | None:
    """GitHub's avatar URL, kept as a link (the avatar is not copied to Parley's uploads) when it
    is one Parley accepts (app/media/avatars.py); otherwise none."""
    return avatars.link_or_none(url)


def _state_invalid() -> ApiError:
    return ApiError(
        "oauth_state_invalid",
        "This GitHub sign-in was not started from this browser, so it was refused. Please start again.",
        400,
    )


def _github_failed() -> ApiError:
    return ApiError(
        "github_failed", "GitHub did not answer as expected; nothing was changed. Please try again.", 502
    )


def _cancelled(blueprint, error, error_description=None, error_uri=None):
    """GitHub sent the browser back with an error (the user said no, or the app is misconfigured)."""
    log.info("GitHub sign-in cancelled: %s", error)
    return _refused(
        ApiError(
            "github_cancelled",
            _l("GitHub sign-in was cancelled: %(reason)s", reason=error_description or error),
        )
    )


def _oauth_failed(error: OAuth2Error):
    if isinstance(error, MismatchingStateError):
        return _refused(_state_invalid())
    if isinstance(error, InsecureTransportError):
        log.error("GitHub sign-in needs HTTPS: Parley saw the callback over plain http")
        return _refused(ApiError("github_needs_https", "GitHub sign-in needs this site served over HTTPS."))
    log.warning("GitHub refused the sign-in: %s", error.error)
    return _refused(
        ApiError(
            "github_refused",
            _l(
                "GitHub refused the sign-in (%(error)s); nothing was changed. Please try again.",
                error=error.error,
            ),
        )
    )


def _unreachable(error: requests.RequestException):
    log.warning("GitHub could not be reached: %s", type(error).__name__)
    return _refused(
        ApiError(
            "github_unreachable",
            "GitHub could not be reached in time; nothing was changed. Please try again later.",
            504,
        )
    )


def _refused(error: ApiError):
    """Every failed GitHub sign-in or link ends, unchanged, on the page it started from."""
    db.session.rollback()
    if not current_user.is_authenticated:
        metrics.sign_in(PROVIDER, False)
    flash(error.message, "error")
    return redirect(url_for("pages.account" if current_user.is_authenticated else "pages.login"))
