"""`flask backup` and `flask restore`: one archive with a consistent copy of the database, the
upload files it names and the instance's generated keys, checked member by member on the way back.

The archive is a tar.gz (mode 0600: it holds password hashes and keys). Its members, the manifest
last:

    database/parley.sqlite3      SQLite: a copy made with SQLite's online backup API
    database/parley.pgdump       PostgreSQL: `pg_dump --format=custom`
    uploads/<storage key>        every file an `uploads` row of the copy names (and its thumbnail)
    instance/secret_key          the keys Parley generated into the instance folder, when present
    instance/vapid_private.pem
    manifest.json                format, Parley version, Alembic revision, created_at, database
                                 kind, row counts, and the size and SHA-256 of every other member

The copy is one snapshot, taken while Parley keeps running:
- SQLite: the copy runs inside one read transaction of its own. In WAL mode (Parley's) a reader
  never blocks writers, and the pages copied are those of one moment. Without that transaction
  SQLite restarts the copy whenever another connection writes, which under steady traffic never
  ends. Pages go in batches with a short pause between them, so the copy does not hog the disk.
  The counts and the list of uploads are read from the finished copy.
- PostgreSQL: a REPEATABLE READ transaction exports its snapshot, `pg_dump --snapshot` dumps
  exactly that snapshot, and the same transaction counts the rows and lists the uploads.
The upload files are read after the snapshot: files added after it are not included, and a file
deleted in between is listed in the manifest as missing.

`flask restore` changes nothing until the whole archive has been read and checked: every member
is extracted into staging next to where it goes, each checksum and the set of members must match
the manifest, the database kind must match the target's, and the backup's Alembic revision must
be one this code knows (a newer Parley's backup is refused), and a PostgreSQL target with tables
must be at the backup's revision. Only then is the SQLite file replaced
(one rename) or `pg_restore --clean --if-exists --single-transaction` run, the upload files
moved into place, the instance keys written, and `flask db upgrade` brings an older backup up to
date. No server may be running on the target meanwhile (README, "Backup and restore").

archive.py holds the format and what both directions share, make.py the backup, restore.py the
restore; the two commands are here (registered in app/cli.py).
"""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from app.backup.archive import COUNTED, BackupError
from app.backup.make import make_backup
from app.backup.restore import restore_backup

__all__ = ["BackupError", "backup_command", "make_backup", "restore_backup", "restore_command"]


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[name]} {name}" for name in COUNTED)


@click.command("backup")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the archive (default: <instance>/backups/parley-<UTC time>.tar.gz).",
)
@with_appcontext
def backup_command(output: Path | None) -> None:
    """Write one archive with the database, the upload files and the instance's keys, consistent
    while Parley runs (README, "Backup and restore")."""
    path, manifest = make_backup(output)
    click.echo(f"Wrote {path}: {_summary(manifest['counts'])}; revision {manifest['alembic_revision']}.")
    if manifest["missing_uploads"]:
        count = len(manifest["missing_uploads"])
        click.echo(f"{count} upload files the database names were not found; they are not in the archive.")
    if manifest["secret_key"]["source"] == "environment":
        click.echo(
            "SECRET_KEY comes from the environment and is not in the archive: keep it with the backup."
        )


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an instance that already holds users or uploads.")
@with_appcontext
def restore_command(archive: Path, force: bool) -> None:
    """Restore ARCHIVE, made by `flask backup`, into this instance: stop Parley first."""
    manifest, notes = restore_backup(archive, force)
    click.echo(
        f"Restored {archive} (made {manifest['created_at']} by Parley {manifest['parley_version']}): "
        f"{_summary(manifest['counts'])}."
    )
    for note in notes:
        click.echo(note)
