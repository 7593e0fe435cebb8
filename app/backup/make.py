"""Making a backup while Parley runs: one snapshot of the database, the upload files it names, the
instance keys, and the manifest (app/backup/__init__.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from flask import current_app
from sqlalchemy import inspect, text

from app.backup.archive import (
    COUNTED,
    DATABASE_MEMBER,
    FORMAT,
    INSTANCE_FILES,
    MANIFEST,
    BackupError,
    key_fingerprint,
    key_source,
    libpq,
    new_salt,
    parley_version,
    run_tool,
    sqlite_path,
    tool,
    uploads_root,
)
from app.extensions import db
from app.media.storage import KEY

# SQLite's copy: pages per batch, and the pause between two batches.
PAGES_PER_STEP = 256
PAUSE_SECONDS = 0.002


class _Hashing:
    """A file read through SHA-256, for tarfile's copy."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        return data


class _ArchiveWriter:
    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.files: dict[str, dict] = {}
        self.mtime = int(time.time())

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, self.mtime
        return info

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            reader = _Hashing(handle)
            self.tar.addfile(self._info(name, size), reader)
        self.files[name] = {"size": size, "sha256": reader.sha.hexdigest()}

    def finish(self, manifest: dict) -> None:
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        self.tar.addfile(self._info(MANIFEST, len(data)), _BytesReader(data))


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.at + size
        chunk, self.at = self.data[self.at : end], min(end, len(self.data))
        return chunk


Rows = Callable[[str], Iterator[tuple]]


def _first(rows: Rows, sql: str):
    with contextlib.closing(rows(sql)) as each:
        return next(each)[0]


def _facts(rows: Rows) -> tuple[str, dict[str, int]]:
    """The snapshot's Alembic revision and row counts."""
    revision = _first(rows, "SELECT version_num FROM alembic_version")
    counts = {name: int(_first(rows, f"SELECT count(*) FROM {table}")) for name, table in COUNTED.items()}
    return revision, counts


def _pause() -> None:
    """Between two batches of pages: the disk is the server's for a moment."""
    time.sleep(PAUSE_SECONDS)


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup of `source` into `target`, as of one moment (app/backup/__init__.py)."""
    timeout = current_app.config.get("SQLITE_BUSY_TIMEOUT_MS", 5000) / 1000
    with contextlib.closing(sqlite3.connect(source, timeout=timeout, isolation_level=None)) as src:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read snapshot starts here
        with contextlib.closing(sqlite3.connect(target)) as dst:
            src.backup(dst, pages=PAGES_PER_STEP, progress=lambda *_: _pause())
        src.execute("ROLLBACK")


@contextlib.contextmanager
def _sqlite_snapshot(scratch: Path) -> Iterator[tuple[Path, Rows]]:
    copy = scratch / "parley.sqlite3"
    _copy_sqlite(sqlite_path(), copy)
    # The copy is read as it is, without locks or a WAL: its bytes stay those that are hashed.
    uri = f"{copy.as_uri()}?mode=ro&immutable=1"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as reader:

        def rows(sql: str) -> Iterator[tuple]:
            cursor = reader.execute(sql)
            try:
                yield from cursor
            finally:
                cursor.close()

        yield copy, rows


@contextlib.contextmanager
def _postgresql_snapshot(scratch: Path) -> Iterator[tuple[Path, Rows]]:
    pg_dump = tool("pg_dump")
    dump = scratch / "parley.pgdump"
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = connection.scalar(text("SELECT pg_export_snapshot()"))
            dsn, env = libpq(db.engine.url)
            command = [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={dump}",
                f"--dbname={dsn}",
            ]
            run_tool(command, env, "pg_dump")

            def rows(sql: str) -> Iterator[tuple]:
                options = {"stream_results": True, "yield_per": 1000}
                result = connection.execute(text(sql), execution_options=options)
                try:
                    yield from result
                finally:
                    result.close()

            yield dump, rows


def make_backup(output: Path | None = None) -> tuple[Path, dict]:
    """Write the archive (app/backup/__init__.py) to `output`, or under `<instance>/backups/`."""
    kind = db.engine.dialect.name
    if kind not in DATABASE_MEMBER:
        raise BackupError(f"Parley cannot back up a {kind} database.")
    if not inspect(db.engine).has_table("alembic_version"):
        raise BackupError("The database has no Parley tables yet: there is nothing to back up.")
    if kind == "postgresql":
        tool("pg_dump")
    instance = Path(current_app.instance_path)
    started = datetime.now(UTC)
    if output is None:
        folder = instance / "backups"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        output = folder / f"parley-{started:%Y%m%dT%H%M%SZ}.tar.gz"
    output = output.absolute()
    if output.exists():
        raise BackupError(f"{output} exists already: choose another --output.")
    if not output.parent.is_dir():
        raise BackupError(f"The folder {output.parent} does not exist.")
    partial = output.with_name(f".{output.name}.{secrets.token_hex(4)}.partial")
    with tempfile.TemporaryDirectory(prefix=".parley-backup-", dir=output.parent) as scratch:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                with tarfile.open(fileobj=handle, mode="w:gz", compresslevel=6) as tar:
                    archive = _ArchiveWriter(tar)
                    manifest = _write_members(archive, kind, Path(scratch), instance)
                    manifest["created_at"] = started.isoformat(timespec="seconds").replace("+00:00", "Z")
                    archive.finish(manifest)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, output)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return output, manifest


def _write_members(archive: _ArchiveWriter, kind: str, scratch: Path, instance: Path) -> dict:
    snapshot = _sqlite_snapshot if kind == "sqlite" else _postgresql_snapshot
    root = uploads_root()
    missing: list[str] = []
    with snapshot(scratch) as (database, rows):
        revision, counts = _facts(rows)
        with contextlib.closing(rows("SELECT storage_key, thumb_key FROM uploads")) as uploads:
            added: set[str] = set()
            for key in (key for pair in uploads for key in pair if key):
                if key in added:  # two rows naming one file: one member
                    continue
                added.add(key)
                if not KEY.fullmatch(key) or not (root / key).is_file():
                    missing.append(key)
                    continue
                try:
                    archive.add_file(f"uploads/{key}", root / key)
                except FileNotFoundError:  # deleted while it was being read
                    missing.append(key)
    # After the snapshot is let go; for SQLite, after its reader closed the copy.
    archive.add_file(DATABASE_MEMBER[kind], database)
    for name in INSTANCE_FILES:
        if (instance / name).is_file():
            archive.add_file(f"instance/{name}", instance / name)
    salt = new_salt()
    return {
        "format": FORMAT,
        "parley_version": parley_version(),
        "alembic_revision": revision,
        "database": kind,
        "counts": counts,
        "secret_key": {
            "source": key_source(instance),
            "salt": salt,
            "fingerprint": key_fingerprint(current_app.config["SECRET_KEY"], salt),
        },
        "missing_uploads": missing,
        "files": archive.files,
    }
