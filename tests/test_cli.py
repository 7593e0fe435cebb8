"""`flask create-admin`: the only way the first administrator comes to be."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from config import BASE_DIR
from tests.conftest import PASSWORD, PG_ADMIN_URL, TEST_DB


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
    assert (
        result.output
        == "alice existed already: it is now an administrator (role owner) and kept its password.\n"
    )
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.username == "alice")) is True


def test_create_admin_says_a_piped_password_was_not_used_for_an_existing_account(runner, make_user, client):
    make_user("alice")
    result = runner.invoke(args=["create-admin", "alice", "--password-stdin"], input="another-password\n")
    assert result.exit_code == 0, result.output
    assert "kept its password" in result.output
    assert "The password on standard input was not used; add --reset-password to set it." in result.output
    login = client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200
    assert login.get_json()["user"]["is_admin"] is True


def test_create_admin_says_when_nothing_changed(runner, make_user):
    make_user("root", is_admin=True)
    result = runner.invoke(args=["create-admin", "root"])
    assert result.exit_code == 0
    assert "was an owner already and kept its password" in result.output


def test_create_admin_resets_the_password_of_an_existing_account_on_request(runner, make_user, login, client):
    make_user("alice")
    device = login("alice")
    result = runner.invoke(
        args=["create-admin", "alice", "--password-stdin", "--reset-password"], input="a-new-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "has a new password (1 signed-in devices signed out)" in result.output
    assert device.get("/api/v1/auth/me").status_code == 401
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 401
    )
    fresh = client.post("/api/v1/auth/login", json={"username": "alice", "password": "a-new-password"})
    assert fresh.get_json()["user"]["is_admin"] is True


def test_a_short_reset_password_changes_nothing(runner, make_user, app, client):
    make_user("alice")
    result = runner.invoke(
        args=["create-admin", "alice", "--password-stdin", "--reset-password"], input="short\n"
    )
    assert result.exit_code == 1
    assert "Error: The password must be 8 to 128 characters." in result.output
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.username == "alice")) is False
    assert (
        client.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}).status_code == 200
    )


def test_create_admin_refuses_a_short_password(runner, app):
    result = runner.invoke(args=["create-admin", "root", "--password-stdin"], input="short\n")
    assert result.exit_code == 1
    # A sentence, not a Python dict.
    assert result.output == "Error: The password must be 8 to 128 characters.\n"
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


def test_create_admin_refuses_a_malformed_username_in_a_sentence(runner, app):
    result = runner.invoke(args=["create-admin", "no spaces", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert result.output.startswith("Error: The username must be 3-32 letters")
    assert "{" not in result.output


def test_create_admin_refuses_the_robot(runner, app):
    with app.app_context():
        from app.auth import services

        services.create_user("robot1", None, is_bot=True)
        db.session.commit()
    result = runner.invoke(args=["create-admin", "robot1"])
    assert result.exit_code == 1
    assert "robot" in result.output
    with app.app_context():
        assert db.session.scalar(select(User.is_admin).where(User.username == "robot1")) is False


def test_create_admin_refuses_a_deleted_account(runner, app, make_user):
    alice = make_user("alice")
    with app.app_context():
        from app.auth import deletion

        username = deletion.delete_user(alice).username
        db.session.commit()
    result = runner.invoke(args=["create-admin", username])
    assert result.exit_code == 1
    assert "deleted account" in result.output
    with app.app_context():
        assert db.session.get(User, alice).admin_role_id is None


@pytest.fixture
def unmigrated_app(make_app, tmp_path):
    """Parley on a database nobody ran `flask db upgrade` on."""
    if TEST_DB == "sqlite":
        yield make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
        return
    name = f"parley_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        application = make_app(DATABASE_URL=PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
        yield application
        with application.app_context():
            db.engine.dispose()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["create-admin", "root", "--password-stdin"], PASSWORD + "\n"),
        (["create-admin", "root"], f"{PASSWORD}\n{PASSWORD}\n"),
        (["cleanup-uploads"], ""),
    ],
)
def test_commands_before_the_first_upgrade_say_what_to_run(unmigrated_app, args, stdin):
    result = unmigrated_app.test_cli_runner().invoke(args=args, input=stdin)
    assert result.exit_code == 1
    assert result.output == "Error: The database has no Parley tables yet: run `flask db upgrade` first.\n"
    assert "Traceback" not in result.output


def test_no_account_exists_before_anyone_registers(app):
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


# --- what a newcomer reads: every command and setting named exists -------------------------

DOCS = [BASE_DIR / "README.md", BASE_DIR / "package.json", *sorted((BASE_DIR / "docs").glob("*.md"))]


def make_targets() -> set[str]:
    makefile = (BASE_DIR / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.MULTILINE))


def test_every_make_target_the_docs_name_exists():
    targets = make_targets()
    named = {}
    for path in DOCS:
        for target in re.findall(r"`make ([a-z][a-z0-9-]*)", path.read_text()):
            named.setdefault(target, path.name)
    assert "vendor" in named  # package.json points people at it
    missing = {target: where for target, where in named.items() if target not in targets}
    assert missing == {}


def test_the_readme_documents_every_setting():
    config = (BASE_DIR / "config.py").read_text()
    settings = set(re.findall(r'reader\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', config)) | {"PORT", "HOST"}
    assert {"GROUP_MEMBER_LIMIT", "MESSAGE_RATE_LIMIT", "PUBLIC_BASE_URL"} <= settings
    readme = (BASE_DIR / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    undocumented = sorted(name for name in settings if f"`{name}`" not in table)
    assert undocumented == [], f"README.md's configuration table lacks {undocumented}"


def test_the_postgresql_recipe_creates_the_role_it_connects_as():
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Running on PostgreSQL and Redis", 1)[1].split("\n## ", 1)[0]
    recipe = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    role = re.search(r"DATABASE_URL=postgresql://([a-z_]+)[:@]", recipe).group(1)
    database = re.search(r"DATABASE_URL=postgresql://\S+/([a-z_]+)", recipe).group(1)
    assert re.search(rf"createuser\b.*\b{role}$", recipe, re.MULTILINE), recipe
    assert re.search(rf"createdb\b.*--owner {role} {database}$", recipe, re.MULTILINE), recipe
