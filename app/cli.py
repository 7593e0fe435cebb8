"""`flask` commands: making the first administrator, cleaning up unused uploads."""

from __future__ import annotations

import functools
import sys
from datetime import timedelta

import click
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.auth import services
from app.errors import ApiError
from app.extensions import db
from app.media import services as media
from app.models import User


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
        """Create USERNAME as an administrator, or make an existing account one.

        An existing account keeps its password unless --reset-password is given."""
        user = services.find_user_by_username(username)
        if user is None:
            try:
                user = services.create_user(username, _read_password(password_stdin), is_admin=True)
            except ApiError as error:
                db.session.rollback()
                raise click.ClickException(_sentence(error)) from None
            db.session.commit()
            click.echo(f"Created administrator {user.username}.")
            return
        if user.is_bot:
            raise click.ClickException(f"{user.username} is the robot; it cannot be an administrator.")
        done = []
        if reset_password:
            password = _read_password(password_stdin)
            try:
                services.validate_password(password)
            except ApiError as error:
                raise click.ClickException(_sentence(error)) from None
            user.password_hash = services.hash_password(password)
        if not user.is_admin:
            user.is_admin = True
            done.append("is now an administrator")
        else:
            done.append("was an administrator already")
        db.session.commit()
        if reset_password:
            signed_out = services.revoke_all_devices(user.id)
            done.append(f"has a new password ({signed_out} signed-in devices signed out)")
        else:
            done.append("kept its password")
        click.echo(f"{user.username} existed already: it {', '.join(done[:-1])} and {done[-1]}.")
        if password_stdin and not reset_password:
            click.echo("The password on standard input was not used; add --reset-password to set it.")

    @app.cli.command("cleanup-uploads")
    @click.option("--older-than-hours", default=24, show_default=True, type=click.IntRange(min=1))
    @_needs_schema
    def cleanup_uploads(older_than_hours: int) -> None:
        """Delete uploads no message carries and no avatar uses, once they are this old."""
        removed = media.cleanup_uploads(timedelta(hours=older_than_hours))
        click.echo(f"Removed {removed} unused uploads.")
