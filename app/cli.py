"""`flask` commands: making the first administrator, cleaning up unused uploads."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask import Flask

from app.auth import services
from app.errors import ApiError
from app.extensions import db
from app.media import services as media


def register_commands(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
    def create_admin(username: str, password_stdin: bool) -> None:
        """Create USERNAME as an administrator, or make an existing account one."""
        user = services.find_user_by_username(username)
        if user is not None:
            user.is_admin = True
            db.session.commit()
            click.echo(f"{user.username} is now an administrator.")
            return
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            user = services.create_user(username, password, is_admin=True)
        except ApiError as error:
            raise click.ClickException(f"{error.message} {error.fields or ''}".strip()) from None
        db.session.commit()
        click.echo(f"Created administrator {user.username}.")

    @app.cli.command("cleanup-uploads")
    @click.option("--older-than-hours", default=24, show_default=True, type=click.IntRange(min=1))
    def cleanup_uploads(older_than_hours: int) -> None:
        """Delete uploads no message carries and no avatar uses, once they are this old."""
        removed = media.cleanup_uploads(timedelta(hours=older_than_hours))
        click.echo(f"Removed {removed} unused uploads.")
