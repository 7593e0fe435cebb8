"""`flask create-admin`: the only way the first administrator comes to be."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD


def test_create_admin_reads_the_password_from_stdin(runner, client, app):
    result = runner.invoke(args=["create-admin", "root", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "Created administrator root" in result.output
    response = client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
    assert response.get_json()["user"]["is_admin"] is True


def test_create_admin_prompts_for_the_password(runner, client):
    result = runner.invoke(args=["create-admin", "root"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert (
        client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD}).status_code == 200
    )


def test_create_admin_promotes_an_existing_account(runner, make_user, app):
    make_user("alice")
    result = runner.invoke(args=["create-admin", "alice"])
    assert result.exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.username == "alice")) is True


def test_create_admin_refuses_a_short_password(runner, app):
    result = runner.invoke(args=["create-admin", "root", "--password-stdin"], input="short\n")
    assert result.exit_code != 0
    assert "password" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_no_account_exists_before_anyone_registers(app):
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
