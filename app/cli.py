"""`flask` commands: making the first administrator and API keys, cleaning up unused uploads;
`flask backup` and `flask restore` live in app/backup/."""

from __future__ import annotations

import functools
import sys
from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.auth import services
from app.backup import backup_command, restore_command
from app.errors import ApiError
from app.extensions import db
from app.media import services as media
from app.models import User
from app.moderation import rights


def _sentence(error: ApiError) -> str:
    """An ApiError as a sentence for a terminal (its fields name what was wrong)."""
    if error.code != "invalid_input" or not error.fields:
        return error.message
    parts = []
    for name, problem in error.fields.items():
        problem = str(problem)
        if not problem.startswith("must"):
            problem = f"must be {problem}"
        parts.append(f"The {name} {problem}.")
    return " ".join(parts)


def _needs_schema(command):
    """Before `flask db upgrade` the tables do not exist: say so instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        hint = "The database has no Parley tables yet: run `flask db upgrade` first."
        try:
            if not inspect(db.engine).has_table(User.__tablename__):
                raise click.ClickException(hint)
            return command(*args, **kwargs)
        except (OperationalError, ProgrammingError) as error:
            db.session.rollback()
            if "no such table" in str(error) or "does not exist" in str(error):
                raise click.ClickException(hint) from None
            raise

    return wrapper


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def register_commands(app: Flask) -> None:
    app.cli.add_command(backup_command)  # `flask backup` and `flask restore`: app/backup/
    app.cli.add_command(restore_command)

    @app.cli.command("create-admin")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    @click.option(
        "--reset-password",
        is_flag=True,
        help="For an existing account: also set a new password (and sign out its devices).",
    )
    @_needs_schema
    def create_admin(username: str, password_stdin: bool, reset_password: bool) -> None:
        """Create USERNAME as an owner (every console right), or make an existing account one.

        An existing account keeps its password unless --reset-password is given."""
        user = services.find_user_by_username(username)
        if user is None:
            try:
                user = services.create_user(username, _read_password(password_stdin), is_admin=True)
            except ApiError as error:
                db.session.rollback()
                raise click.ClickException(_sentence(error)) from None
            db.session.commit()
            click.echo(f"Created administrator {user.username} (role owner).")
            return
        if user.is_bot:
            raise click.ClickException(f"{user.username} is the robot; it cannot be an administrator.")
        if user.deleted_at is not None:
            raise click.ClickException(
                f"{user.username} is a deleted account; it cannot be an administrator."
            )
        done = []
        if reset_password:
            password = _read_password(password_stdin)
            try:
                services.validate_password(password)
            except ApiError as error:
                raise click.ClickException(_sentence(error)) from None
            user.password_hash = services.hash_password(password)
        owner = rights.role_named(rights.OWNER)
        if user.admin_role_id != owner.id:
            user.admin_role_id = owner.id
            done.append("is now an administrator (role owner)")
        else:
            done.append("was an owner already")
        db.session.commit()
        if reset_password:
            signed_out = services.revoke_all_devices(user.id)
            done.append(f"has a new password ({signed_out} signed-in devices signed out)")
        else:
            done.append("kept its password")
        click.echo(f"{user.username} existed already: it {', '.join(done[:-1])} and {done[-1]}.")
        if password_stdin and not reset_password:
            click.echo("The password on standard input was not used; add --reset-password to set it.")

    @app.cli.command("create-api-key")
    @click.option("--name", required=True, help="What the key is for (shown in the console).")
    @click.option("--scopes", required=True, help="Comma-separated: users,messages,groups,moderation,read")
    @click.option("--expires-days", type=click.IntRange(1, 3650), help="Expire after this many days.")
    @click.option("--allowed-ips", default="", help="Comma-separated addresses or CIDR networks.")
    @_needs_schema
    def create_api_key(name: str, scopes: str, expires_days: int | None, allowed_ips: str) -> None:
        """Make a server API key and print it once (only its SHA-256 is kept)."""
        from app.models import utcnow
        from app.server_api.keys import create_key_audited

        expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
        try:
            row, key = create_key_audited(
                None,
                name.strip()[:100],
                [scope.strip() for scope in scopes.split(",") if scope.strip()],
                allowed_ips=[ip.strip() for ip in allowed_ips.split(",") if ip.strip()] or None,
                expires_at=expires_at,
                via="cli",
            )
        except ApiError as error:
            db.session.rollback()
            raise click.ClickException(f"{error.message} {' '.join(error.fields.values())}".strip()) from None
        click.echo(f"Created API key {row.prefix} ({row.name}; scopes {', '.join(row.scopes)}).", err=True)
        click.echo("It is shown only this once:", err=True)
        click.echo(key)

    @app.cli.command("cleanup-uploads")
    @click.option("--older-than-hours", default=24, show_default=True, type=click.IntRange(min=1))
    @_needs_schema
    def cleanup_uploads(older_than_hours: int) -> None:
        """Delete uploads no message carries and no avatar uses, once they are this old."""
        removed = media.cleanup_uploads(timedelta(hours=older_than_hours))
        click.echo(f"Removed {removed} unused uploads.")
