"""The backup archive's format, and what making and restoring one share (app/backup/__init__.py)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import click
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy.engine import URL

from app.extensions import db
from config import BASE_DIR

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE_MEMBER = {"sqlite": "database/parley.sqlite3", "postgresql": "database/parley.pgdump"}
INSTANCE_FILES = ("secret_key", "vapid_private.pem")
MEMBER = re.compile(
    r"database/parley\.(sqlite3|pgdump)"
    r"|uploads/[0-9a-f]{2}/[0-9a-f]{32}(\.thumb)?"
    r"|instance/(secret_key|vapid_private\.pem)"
)
# What the manifest counts: its name and the table it counts.
COUNTED = {"users": "users", "messages": "messages", "uploads": "uploads", "devices": "device_sessions"}


class BackupError(click.ClickException):
    """A refusal or a failure, as a sentence for the terminal (exit status 1)."""


# --- small parts ----------------------------------------------------------------------------


def parley_version() -> str:
    try:
        with open(BASE_DIR / "pyproject.toml", "rb") as handle:
            return tomllib.load(handle)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def code_revisions() -> tuple[set[str], str]:
    """Every Alembic revision this code has, and its head (one linear chain)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(BASE_DIR / "migrations"))
    script = ScriptDirectory.from_config(config)
    return {revision.revision for revision in script.walk_revisions()}, script.get_current_head()


SALT = re.compile(r"[0-9a-f]{32}")


def key_fingerprint(key: str, salt: str | None = None) -> str:
    """Enough of a hash of SECRET_KEY to tell two keys apart, nothing to sign with, and slow to
    guess the key from: scrypt (n=2**14, r=8, p=1) with the manifest's random salt (`new_salt`).
    Without a salt, the form of the backups made before salts (a plain SHA-256), so they still
    restore."""
    if salt is None:
        return hashlib.sha256(f"parley backup fingerprint:{key}".encode()).hexdigest()[:16]
    return hashlib.scrypt(key.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1, dklen=16).hex()


def new_salt() -> str:
    """16 random bytes, in hex: one per backup's manifest."""
    return os.urandom(16).hex()


def key_source(instance: Path) -> str:
    """Where the running configuration's SECRET_KEY came from: the generated instance file, or
    the environment (or `.env`)."""
    path = instance / "secret_key"
    try:
        in_file = path.read_text().strip()
    except OSError:
        return "environment"
    return "instance" if in_file == current_app.config["SECRET_KEY"] else "environment"


def libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The database URL as libpq takes it, the password in PGPASSWORD (not on a command line)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return plain, env


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not on PATH. Install PostgreSQL's client tools (the server's major version or "
            f'newer), or use the pg_dump/pg_restore commands in README.md, "Backup and restore".'
        )
    return path


def run_tool(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{what} failed: {' / '.join(lines[-3:]) or f'exit status {done.returncode}'}")


def uploads_root() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"]).resolve()


def sqlite_path() -> Path:
    database = db.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"Only a SQLite database in a file can be backed up or restored, not {database!r}.")
    return Path(database).resolve()
