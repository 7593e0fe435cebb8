"""`flask` commands: making the first administrator."""

from __future__ import annotations

import sys

import click
from flask import Flask

from app.auth import services
from app.errors import ApiError
from app.extensions import db


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
