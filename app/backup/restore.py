"""Restoring a backup: check the whole archive, then put it in place (app/backup/__init__.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import IO

from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import inspect, text, update

from app.backup.archive import (
    COUNTED,
    DATABASE_MEMBER,
    FORMAT,
    INSTANCE_FILES,
    MANIFEST,
    MEMBER,
    SALT,
    BackupError,
    code_revisions,
    key_fingerprint,
    key_source,
    libpq,
    run_tool,
    sqlite_path,
    tool,
    uploads_root,
)
from app.export import archive as export_archive
from app.extensions import db
from app.models import utcnow
from app.models.operations import UserExport

MANIFEST_MAX_BYTES = 64 << 20
# Said by every failure after the target started to change.
CHANGED = (
    "This instance has already been changed (its database, upload files and keys were replaced): "
    "do not start Parley on it; restore again into an empty database."
)
CHUNK = 1 << 20


def _target_holdings(kind: str) -> tuple[int, int]:
    """Users in the target database and files in its upload folder (scratch files aside)."""
    users = 0
    if kind != "sqlite" or sqlite_path().exists():
        if inspect(db.engine).has_table("users"):
            users = db.session.scalar(text("SELECT count(*) FROM users")) or 0
        db.session.remove()
    root = uploads_root()
    files = 0
    if root.is_dir():
        for path in root.rglob("*"):
            if path.is_file() and not path.is_relative_to(root / "tmp"):
                files += 1
    return users, files


def _target_revision() -> tuple[bool, str | None]:
    """Whether the target database has tables, and its Alembic revision (None without one)."""
    tables = inspect(db.engine).get_table_names()
    revision = None
    if "alembic_version" in tables:
        revision = db.session.scalar(text("SELECT version_num FROM alembic_version"))
    db.session.remove()
    return bool(tables), revision


def _check_target_schema(kind: str, manifest: dict) -> None:
    """`pg_restore --clean` drops only what the dump holds: tables a newer schema of the target
    added would stay and make the upgrade after the load fail, once everything was replaced. So a
    PostgreSQL target must be empty or at the backup's revision (a SQLite file is replaced whole)."""
    if kind != "postgresql":
        return
    has_tables, revision = _target_revision()
    if has_tables and revision != manifest["alembic_revision"]:
        raise BackupError(
            f"The target database is at revision {revision!r} and the backup at "
            f"{manifest['alembic_revision']!r}: restore into an empty database, or one at the same revision."
        )


class _Staging:
    """Where extracted members wait: beside their destination (the same file system, so one
    rename puts each in place). Its folders are removed at the end, success or not; on a refusal
    so are the folders it had to make."""

    def __init__(self, kind: str):
        self.kind = kind
        self.instance = Path(current_app.instance_path)
        self.root = uploads_root()
        self.folders: dict[str, Path] = {}
        self.paths: dict[str, Path] = {}
        self.made: list[Path] = []

    def _near(self, part: str) -> Path:
        if part == "uploads":
            return self.root / "tmp"
        if part == "database" and self.kind == "sqlite":
            return sqlite_path().parent
        return self.instance

    def _folder(self, part: str) -> Path:
        if part not in self.folders:
            near = self._near(part)
            missing = [folder for folder in (near, *near.parents) if not folder.exists()]
            near.mkdir(parents=True, exist_ok=True)
            self.made.extend(missing)  # deepest first
            self.folders[part] = Path(tempfile.mkdtemp(prefix=".parley-restore-", dir=near))
        return self.folders[part]

    def path_for(self, name: str) -> Path:
        part, rest = name.split("/", 1)
        path = self._folder(part) / rest
        path.parent.mkdir(parents=True, exist_ok=True)
        self.paths[name] = path
        return path

    def cleanup(self, refused: bool) -> None:
        for folder in self.folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        if refused:
            for folder in self.made:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _too_large(path: Path, name: str, size: int) -> BackupError:
    return BackupError(f"{path} is damaged: {name} is larger than its {MANIFEST} says ({size} bytes).")


def _extract_member(source: IO[bytes], target: Path, limit: int, too_large: BackupError) -> dict:
    """The member into `target`, hashed on the way; more than `limit` bytes (its manifest's size)
    is refused as soon as byte `limit` + 1 is read, so a lying archive cannot fill the disk."""
    sha, size = hashlib.sha256(), 0
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        while chunk := source.read(min(CHUNK, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise too_large
            sha.update(chunk)
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    return {"size": size, "sha256": sha.hexdigest()}


def _read_manifest(path: Path, tar: tarfile.TarFile) -> bytes | None:
    """The first pass, which writes nothing: every member's name checked, and the manifest's bytes
    (it is the last member), so that the second knows each member's size before it writes one."""
    manifest: bytes | None = None
    seen: set[str] = set()
    for info in tar:
        name = info.name
        if name in seen:
            raise BackupError(f"{path} is not a Parley backup: it holds {name} twice.")
        seen.add(name)
        if not info.isreg() or not (name == MANIFEST or MEMBER.fullmatch(name)):
            raise BackupError(f"{path} is not a Parley backup: it holds {name!r}.")
        if name == MANIFEST:
            if info.size > MANIFEST_MAX_BYTES:
                raise BackupError(f"{path} is not a Parley backup: its manifest is too large.")
            manifest = tar.extractfile(info).read()
    return manifest


def _declared_sizes(data: bytes | None) -> dict | None:
    """The manifest's files, if it lists them (else `_checked_manifest` says what is wrong)."""
    try:
        manifest = json.loads(data) if data is not None else None
    except ValueError:
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    return files if isinstance(files, dict) else None


def _extract(path: Path, staging: _Staging) -> tuple[bytes | None, dict[str, dict]]:
    """Every member into staging, hashed on the way, none larger than its manifest says; the
    manifest's bytes."""
    found: dict[str, dict] = {}
    if not path.is_file():
        raise BackupError(f"There is no file {path}.")
    damaged = f"{path} is damaged"
    try:
        with tarfile.open(path, "r:gz") as tar:
            manifest = _read_manifest(path, tar)
        files = _declared_sizes(manifest)
        if files is None:
            return manifest, found
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                name = info.name
                if name == MANIFEST:
                    continue
                if name in found or not info.isreg() or not MEMBER.fullmatch(name):
                    raise BackupError(f"{path} is not a Parley backup: it holds {name!r}.")
                if name not in files:
                    raise BackupError(f"{damaged}: {name} is not in its {MANIFEST}.")
                limit = files[name].get("size") if isinstance(files[name], dict) else None
                if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                    raise BackupError(f"{damaged}: its {MANIFEST} gives no size for {name}.")
                if info.size > limit:
                    raise _too_large(path, name, info.size)
                target = staging.path_for(name)
                found[name] = _extract_member(
                    tar.extractfile(info), target, limit, _too_large(path, name, limit)
                )
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise BackupError(f"{path} could not be read as a Parley backup ({error}).") from None
    return manifest, found


def _checked_manifest(path: Path, data: bytes | None, found: dict[str, dict], kind: str) -> dict:
    damaged = f"{path} is damaged"
    if data is None:
        raise BackupError(f"{path} is not a Parley backup: it has no {MANIFEST}.")
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BackupError(f"{damaged}: its {MANIFEST} is not JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{path} is a backup of format {got!r}; this Parley reads format {FORMAT}.")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BackupError(f"{damaged}: its {MANIFEST} lists no files.")
    for name in sorted(set(files) | set(found)):
        if name not in found:
            raise BackupError(f"{damaged}: {name} is missing.")
        if name not in files:
            raise BackupError(f"{damaged}: {name} is not in its {MANIFEST}.")
        if files[name] != found[name]:
            raise BackupError(f"{damaged}: {name} does not match its checksum.")
    backed_up = manifest.get("database")
    if backed_up != kind:
        raise BackupError(
            f"{path} holds a {backed_up} database and this Parley uses {kind}: restore it into a Parley "
            f"on {backed_up}."
        )
    if DATABASE_MEMBER[kind] not in found:
        raise BackupError(f"{damaged}: it holds no database.")
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or set(counts) != set(COUNTED):
        raise BackupError(f"{damaged}: its {MANIFEST} has no row counts.")
    key = manifest.get("secret_key")
    described = all(isinstance(manifest.get(field), str) for field in ("created_at", "parley_version"))
    if not described or not isinstance(key, dict) or not isinstance(key.get("fingerprint"), str):
        raise BackupError(f"{damaged}: its {MANIFEST} lacks what a backup records.")
    # Backups made before salts have none (their fingerprint is of the old form, `key_fingerprint`).
    if "salt" in key and not (isinstance(key["salt"], str) and SALT.fullmatch(key["salt"])):
        raise BackupError(f"{damaged}: its {MANIFEST} has a malformed secret_key salt.")
    known, head = code_revisions()
    revision = manifest.get("alembic_revision")
    if revision not in known:
        raise BackupError(
            f"{path} was made by a newer Parley (database revision {revision!r}; this Parley's newest is "
            f"{head}): upgrade Parley, then restore."
        )
    return manifest


def _counts() -> dict[str, int]:
    return {name: db.session.scalar(text(f"SELECT count(*) FROM {table}")) for name, table in COUNTED.items()}


def _effective_key(key_source: str, staging: _Staging) -> str:
    """The SECRET_KEY this instance will start with after the restore."""
    restored = staging.paths.get("instance/secret_key")
    if key_source == "instance" and restored is not None:
        return (staging.instance / "secret_key").read_text().strip()
    return current_app.config["SECRET_KEY"]


def _apply(staging: _Staging, manifest: dict, kind: str, force: bool) -> list[str]:
    """Put everything in place: the database, the uploads, the instance keys; then upgrade."""
    source_of_key = key_source(staging.instance)  # before the instance's key file is replaced
    db.session.remove()
    db.engine.dispose()
    database = staging.paths[DATABASE_MEMBER[kind]]
    if kind == "sqlite":
        target = sqlite_path()
        for suffix in ("-wal", "-shm", "-journal"):  # the old database's, which would corrupt the new
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(database, target)
    else:
        dsn, env = libpq(db.engine.url)
        options = ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction"]
        run_tool([tool("pg_restore"), *options, f"--dbname={dsn}", str(database)], env, "pg_restore")
    root = staging.root
    placed = set()
    for name, path in staging.paths.items():
        if name.startswith("uploads/"):
            destination = root / name.removeprefix("uploads/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
            placed.add(destination)
    if force:
        others = [path for path in root.rglob("*") if path.is_file() and path not in placed]
        for path in others:
            if not path.is_relative_to(root / "tmp"):
                path.unlink()
    for name in INSTANCE_FILES:
        path = staging.paths.get(f"instance/{name}")
        if path is not None:
            os.replace(path, staging.instance / name)
    _empty_exports_folder()

    notes = []
    counts = _counts()
    if counts != manifest["counts"]:
        raise BackupError(
            f"The restored database holds {counts}; the backup's manifest says {manifest['counts']}. "
            f"{CHANGED}"
        )
    recorded = manifest["secret_key"]
    if (
        key_fingerprint(_effective_key(source_of_key, staging), recorded.get("salt"))
        != recorded["fingerprint"]
    ):
        notes.append(
            "This Parley's SECRET_KEY is not the one the backed-up Parley used: devices signed in "
            'before the backup must sign in again. Set the same SECRET_KEY (README, "Backup and restore").'
        )
    _, head = code_revisions()
    if manifest["alembic_revision"] != head:
        db.session.remove()
        try:
            upgrade()
        except Exception as error:
            raise BackupError(
                f"The restored database could not be upgraded from revision {manifest['alembic_revision']} "
                f"to {head} ({error}). {CHANGED}"
            ) from error
        notes.append(f"The database was upgraded from revision {manifest['alembic_revision']} to {head}.")
    _retire_exports()
    db.session.remove()
    db.engine.dispose()
    return notes


def _empty_exports_folder() -> None:
    """The target's export zips are not the restored rows' (a backup holds none): an id of the
    restored table could otherwise serve another instance's zip to another user."""
    exports = export_archive.folder()
    if exports.is_dir():
        for path in exports.iterdir():
            if path.is_file() or path.is_symlink():
                path.unlink()


def _retire_exports() -> None:
    """Restored exports have no file: the ready ones expire now (their owners ask again), the
    pending ones are failed (their build cannot be trusted to run again)."""
    now = utcnow()
    exports = UserExport.__table__
    db.session.execute(
        update(exports).where(exports.c.state == "ready", exports.c.expires_at > now).values(expires_at=now)
    )
    db.session.execute(
        update(exports)
        .where(exports.c.state == "pending")
        .values(state="failed", error="The build did not finish.", finished_at=now)
    )
    db.session.commit()


def restore_backup(path: Path, force: bool = False) -> tuple[dict, list[str]]:
    """Restore the archive at `path` into this instance (app/backup/__init__.py); returns the manifest
    and notes for the operator. Every refusal comes before anything is changed."""
    kind = db.engine.dialect.name
    if kind not in DATABASE_MEMBER:
        raise BackupError(f"Parley cannot restore into a {kind} database.")
    staging = None
    try:
        users, files = _target_holdings(kind)
        if (users or files) and not force:
            raise BackupError(
                f"This instance is not empty ({users} users in its database, {files} files in "
                f"{uploads_root()}): restore into a fresh instance, or add --force to replace them."
            )
        if kind == "postgresql":
            tool("pg_restore")
        staging = _Staging(kind)
        manifest = _checked_manifest(path, *_extract(path, staging), kind)
        _check_target_schema(kind, manifest)
    except BackupError as error:
        if staging is not None:
            staging.cleanup(refused=True)
        raise BackupError(f"{error.message} Nothing was changed.") from None
    except BaseException:
        if staging is not None:
            staging.cleanup(refused=True)
        raise
    try:
        return manifest, _apply(staging, manifest, kind, force)
    finally:
        staging.cleanup(refused=False)
