"""`flask backup` and `flask restore` (app/backup/): a backup taken while a real Parley keeps
writing restores, into a fresh instance, every message, upload and device as of the backup; a
damaged archive, a non-empty target and a newer Parley's backup are refused and change nothing.

Each test makes its own databases (new SQLite files, or new PostgreSQL databases dropped at the
end) and instance folders; none touches the session's database.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import threading
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import requests
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.pool import NullPool

from app import create_app
from app.backup import make
from app.backup.archive import code_revisions
from app.export import archive as export_archive
from app.export import services as export_services
from app.extensions import db, socketio
from app.jobs import queue
from app.models.operations import UserExport
from config import BASE_DIR, Config, normalise_database_url
from tests.conftest import PASSWORD, PG_ADMIN_URL, TEST_DB, LiveServer, server_env
from tests.test_media import image_bytes, pdf_bytes

FLASK = str(Path(sys.executable).parent / "flask")
TIMEOUT = 30


# --- instances ------------------------------------------------------------------------------


class Instances:
    """Parley instances of their own, each a fresh database (a new SQLite file, or a new
    PostgreSQL database) and instance folder under `folder`; `close` drops them all."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.databases: list[str] = []
        self.apps: list = []

    def database(self, name: str) -> str:
        if TEST_DB == "sqlite":
            return f"sqlite:///{self.folder / f'{name}.db'}"
        database = f"parley_backup_{name}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"

    def env(self, name: str, **overrides: str) -> dict[str, str]:
        """A deployment whose SECRET_KEY is, unless overridden, the one Parley generates into its
        instance folder."""
        return server_env(self.database(name), self.folder / name, **{"SECRET_KEY": "", **overrides})

    def app(self, name: str, migrated: bool = True, revision: str = "head", **overrides: str):
        """An application for commands run in this process (`run`)."""
        server = socketio.server  # Flask-SocketIO binds one app: the session app keeps its server
        application = create_app(Config.from_env(self.env(name, **overrides)))
        socketio.server = server
        self.apps.append(application)
        if migrated:
            with application.app_context():
                upgrade(revision=revision)
        return application

    def close(self) -> None:
        for application in self.apps:
            with application.app_context():
                db.session.remove()
                db.engine.dispose()
        if self.databases:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                for database in self.databases:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def instances(app, tmp_path):
    made = Instances(tmp_path)
    yield made
    made.close()


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FLASK, *args],
        cwd=BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(application, *args: str):
    return application.test_cli_runner().invoke(args=list(args))


def engine_of(application):
    return create_engine(
        normalise_database_url(application.config["SQLALCHEMY_DATABASE_URI"]), poolclass=NullPool
    )


def scalar(application, sql: str):
    engine = engine_of(application)
    try:
        with engine.connect() as connection:
            return connection.scalar(text(sql))
    finally:
        engine.dispose()


def has_tables(application) -> bool:
    database = application.config["SQLALCHEMY_DATABASE_URI"]
    if database.startswith("sqlite") and not Path(database.split(":///", 1)[1]).exists():
        return False
    engine = engine_of(application)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by its relative path, with its bytes."""
    if not folder.exists():
        return {}
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def tree(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")} if folder.exists() else set()


def manifest_of(archive: Path) -> dict:
    with tarfile.open(archive, "r:gz") as tar:
        return json.loads(tar.extractfile("manifest.json").read())


def repack(source: Path, target: Path, change, extra: tuple[tuple[str, bytes], ...] = ()) -> None:
    """A copy of the archive `source` with `change(name, data)`'s bytes for each member (None
    leaves it out), and the `extra` members after them."""
    with tarfile.open(source, "r:gz") as old, tarfile.open(target, "w:gz") as new:
        members = [(info.name, change(info.name, old.extractfile(info).read())) for info in old]
        for name, data in [*members, *extra]:
            if data is not None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                new.addfile(info, io.BytesIO(data))


# --- a real Parley, written to while it is backed up -----------------------------------------


class Client:
    """One device: a requests session signed in to a live server."""

    def __init__(self, base: str, username: str, register: bool = False):
        self.base = base
        self.http = requests.Session()
        path = "/api/v1/auth/register" if register else "/api/v1/auth/login"
        response = self.http.post(
            base + path, json={"username": username, "password": PASSWORD}, timeout=TIMEOUT
        )
        assert response.status_code in (200, 201), response.text
        me = response.json()
        self.user_id, self.device_id = me["user"]["id"], me["device"]["id"]

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.base + path, timeout=TIMEOUT, **kwargs)

    def get(self, path: str, base: str | None = None, **kwargs) -> requests.Response:
        return self.http.get((base or self.base) + path, timeout=TIMEOUT, **kwargs)

    def send(self, conversation_id: int, body: dict) -> dict:
        response = self.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"client_msg_id": uuid.uuid4().hex, "body": body},
        )
        assert response.status_code == 201, response.text
        return response.json()["message"]

    def upload(self, data: bytes, name: str, mime: str) -> dict:
        token = self.get("/api/v1/auth/csrf").json()["csrf_token"]
        response = self.post(
            "/api/v1/uploads", files={"file": (name, data, mime)}, headers={"X-CSRFToken": token}
        )
        assert response.status_code == 201, response.text
        return response.json()["upload"]

    def history(self, conversation_id: int, base: str) -> list[dict]:
        messages, after = [], 0
        while True:
            page = self.get(
                f"/api/v1/conversations/{conversation_id}/messages",
                base,
                params={
                    "after_seq": after,
                    "limit": 100,
                },
            )
            assert page.status_code == 200, page.text
            messages += page.json()["messages"]
            if not page.json()["has_more"]:
                return messages
            after = messages[-1]["seq"]


class Writer(threading.Thread):
    """Sends text messages one after another until stopped; counts the acknowledged ones."""

    def __init__(self, device: Client, conversation_id: int):
        super().__init__(daemon=True)
        self.device, self.conversation_id = device, conversation_id
        self.acked = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.device.send(self.conversation_id, {"type": "txt", "msg": f"live {self.acked}"})
                with self.changed:
                    self.acked += 1
                    self.changed.notify_all()
                self.stopping.wait(0.01)  # a steady stream, not a flood on a shared machine
        except BaseException as error:  # reported by the test
            self.error = error
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, count: int) -> int:
        with self.changed:
            assert self.changed.wait_for(lambda: self.acked >= count or self.error, TIMEOUT)
            assert self.error is None, self.error
            return self.acked

    def stop(self) -> None:
        self.stopping.set()
        self.join(TIMEOUT)
        assert self.error is None, self.error


def test_a_backup_taken_while_parley_writes_restores_every_message_upload_and_device(instances, tmp_path):
    migrated = instances.app("source")
    source = server_env(migrated.config["SQLALCHEMY_DATABASE_URI"], tmp_path / "source", SECRET_KEY="")
    server = LiveServer(source, tmp_path / "source.log").start()
    archive = tmp_path / "parley.tar.gz"
    try:
        base = server.url
        alice, bob = Client(base, "alice", register=True), Client(base, "bob", register=True)
        laptop = Client(base, "alice")
        request = alice.post("/api/v1/friend-requests", json={"user_id": bob.user_id}).json()["request"]
        assert bob.post(f"/api/v1/friend-requests/{request['id']}/accept", json={}).status_code == 200
        conversation_id = alice.post("/api/v1/conversations", json={"user_id": bob.user_id}).json()[
            "conversation"
        ]["id"]
        photo = alice.upload(image_bytes("PNG", (64, 48)), "dot.png", "image/png")
        paper = laptop.upload(pdf_bytes(), "paper.pdf", "application/pdf")
        alice.send(conversation_id, {"type": "img", "upload_id": photo["id"]})
        laptop.send(conversation_id, {"type": "file", "upload_id": paper["id"]})
        for number in range(5):
            alice.send(conversation_id, {"type": "txt", "msg": f"before {number}"})
        media = {url: alice.get(url).content for url in (photo["url"], photo["thumb"], paper["url"])}
        assert all(media.values())

        writer = Writer(bob, conversation_id)
        writer.start()
        try:
            acked_before = writer.wait_for(3)
            backup = flask(source, "backup", "--output", str(archive))
            acked_after = writer.acked
            writer.wait_for(acked_after + 3)  # and it goes on writing after the backup
        finally:
            writer.stop()
        assert backup.returncode == 0, backup.stderr
        assert backup.stdout.startswith(f"Wrote {archive}: ")
        history = alice.history(conversation_id, base)
        stored_files = files_under(tmp_path / "source" / "uploads")
    finally:
        server.stop()

    assert archive.stat().st_mode & 0o777 == 0o600  # it holds password hashes and keys
    manifest = manifest_of(archive)
    assert manifest["database"] == TEST_DB
    assert manifest["alembic_revision"] == code_revisions()[1]
    assert manifest["secret_key"]["source"] == "instance"
    assert manifest["missing_uploads"] == []
    counts = manifest["counts"]
    assert (counts["users"], counts["uploads"], counts["devices"]) == (2, 2, 3)
    # Every message acknowledged before the backup began is in it; none sent after it ended.
    first_live = 7
    assert first_live + acked_before <= counts["messages"] <= first_live + acked_after

    target_instance = tmp_path / "target"
    target = instances.env("target")
    restored = flask(target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"Restored {archive} (made {manifest['created_at']} by Parley ")
    server = LiveServer(target, tmp_path / "target.log").start()
    try:
        # The devices signed in before the backup are still signed in (the same cookie, the same
        # device session, the instance's SECRET_KEY restored with it).
        for device in (alice, laptop, bob):
            me = device.get("/api/v1/auth/me", server.url)
            assert me.status_code == 200, me.text
            assert (me.json()["user"]["id"], me.json()["device"]["id"]) == (device.user_id, device.device_id)
        # Every message as of the backup, each as it was.
        assert bob.history(conversation_id, server.url) == history[: counts["messages"]]
        # Every upload, byte for byte, at its path, served by /media.
        assert files_under(target_instance / "uploads") == stored_files
        for url, data in media.items():
            served = bob.get(url, server.url)
            assert served.status_code == 200 and served.content == data
        # And the restored Parley takes new messages after them.
        bob.base = server.url
        sent = bob.send(conversation_id, {"type": "txt", "msg": "after the restore"})
        assert sent["seq"] == history[counts["messages"] - 1]["seq"] + 1
    finally:
        server.stop()


# --- refusals -------------------------------------------------------------------------------


def populate(application) -> dict:
    """Alice (one device) uploads a picture (stored with its thumbnail); returns the upload."""
    client = application.test_client()
    registered = client.post("/api/v1/auth/register", json={"username": "alice", "password": PASSWORD})
    assert registered.status_code == 201
    token = client.get("/api/v1/auth/csrf").get_json()["csrf_token"]
    uploaded = client.post(
        "/api/v1/uploads",
        data={"file": (io.BytesIO(image_bytes("PNG", (20, 10))), "dot.png")},
        headers={"X-CSRFToken": token},
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    return uploaded.get_json()["upload"]


@pytest.fixture(scope="module")
def backed_up(app, tmp_path_factory):
    """The archive of a small instance: a user, a device and an upload (its picture and thumbnail)."""
    folder = tmp_path_factory.mktemp("small")
    made = Instances(folder)
    try:
        source = made.app("small")
        populate(source)
        archive = folder / "small.tar.gz"
        result = run(source, "backup", "--output", str(archive))
        assert result.exit_code == 0, result.output
    finally:
        made.close()
    return archive


def assert_untouched(target, before: set[str]) -> None:
    assert not has_tables(target)
    assert files_under(Path(target.config["UPLOAD_FOLDER"])) == {}
    assert tree(Path(target.instance_path)) == before
    # No staging is left anywhere (SQLite's sits beside the database file).
    assert list(Path(target.instance_path).parent.rglob(".parley-restore-*")) == []


def upload_member(archive: Path) -> str:
    return next(name for name in manifest_of(archive)["files"] if name.startswith("uploads/"))


DAMAGES = {
    "truncated": lambda archive, damaged: damaged.write_bytes(
        archive.read_bytes()[: archive.stat().st_size // 2]
    ),
    "not an archive": lambda archive, damaged: damaged.write_bytes(b"PK\x03\x04 not a tar.gz"),
    "a changed upload": lambda archive, damaged: repack(
        archive,
        damaged,
        lambda name, data: data[:-1] + bytes([data[-1] ^ 1]) if name == upload_member(archive) else data,
    ),
    "a member left out": lambda archive, damaged: repack(
        archive, damaged, lambda name, data: None if name == upload_member(archive) else data
    ),
    "a stranger's path": lambda archive, damaged: repack(
        archive, damaged, lambda name, data: data, extra=(("uploads/../../escape", b"x"),)
    ),
}
EXPECTED = {
    "truncated": "could not be read as a Parley backup",
    "not an archive": "could not be read as a Parley backup",
    "a changed upload": "does not match its checksum",
    "a member left out": "is missing",
    "a stranger's path": "is not a Parley backup: it holds 'uploads/../../escape'",
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_archive_is_refused_and_changes_nothing(backed_up, instances, tmp_path, damage):
    damaged = tmp_path / "damaged.tar.gz"
    DAMAGES[damage](backed_up, damaged)
    target = instances.app("target", migrated=False)
    before = tree(Path(target.instance_path))
    result = run(target, "restore", str(damaged))
    assert result.exit_code == 1
    assert EXPECTED[damage] in result.output
    assert result.output.rstrip().endswith("Nothing was changed.")
    assert_untouched(target, before)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"alembic_revision": "9999"},
            "was made by a newer Parley (database revision '9999'; this Parley's newest is {head}): "
            "upgrade Parley, then restore.",
        ),
        (
            {"database": "sqlite" if TEST_DB == "postgresql" else "postgresql"},
            "holds a {other} database and this Parley uses {TEST_DB}",
        ),
    ],
    ids=["a newer revision", "the other database"],
)
def test_a_newer_or_another_databases_backup_is_refused(backed_up, instances, tmp_path, change, expected):
    changed = tmp_path / "changed.tar.gz"

    def edit(name: str, data: bytes) -> bytes:
        return json.dumps({**json.loads(data), **change}).encode() if name == "manifest.json" else data

    repack(backed_up, changed, edit)
    target = instances.app("target", migrated=False)
    before = tree(Path(target.instance_path))
    result = run(target, "restore", str(changed))
    assert result.exit_code == 1
    other = change.get("database")
    assert expected.format(head=code_revisions()[1], other=other, TEST_DB=TEST_DB) in result.output
    assert_untouched(target, before)


def test_restore_says_when_the_secret_key_differs(backed_up, instances):
    target = instances.app("target", migrated=False, SECRET_KEY="another-secret-key-0123456789")
    result = run(target, "restore", str(backed_up))
    assert result.exit_code == 0, result.output
    assert "This Parley's SECRET_KEY is not the one the backed-up Parley used" in result.output
    assert scalar(target, "SELECT username FROM users") == "alice"


def test_restore_refuses_an_instance_with_users_or_uploads_unless_forced(backed_up, instances):
    target = instances.app("target", migrated=False)
    assert run(target, "restore", str(backed_up)).exit_code == 0
    uploads = Path(target.config["UPLOAD_FOLDER"])
    restored_files = files_under(uploads)
    assert len(restored_files) == 2  # the picture and its thumbnail

    again = run(target, "restore", str(backed_up))
    assert again.exit_code == 1
    assert "This instance is not empty (1 users in its database, 2 files in" in again.output
    assert "add --force to replace them. Nothing was changed." in again.output

    # A stray file: uploads only, no users.
    empty = instances.app("empty", migrated=True)
    stray = Path(empty.config["UPLOAD_FOLDER"]) / "ab" / ("c" * 32)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left over")
    refused = run(empty, "restore", str(backed_up))
    assert refused.exit_code == 1
    assert "(0 users in its database, 1 files in" in refused.output
    assert scalar(empty, "SELECT count(*) FROM users") == 0

    forced = run(empty, "restore", "--force", str(backed_up))
    assert forced.exit_code == 0, forced.output
    assert scalar(empty, "SELECT username FROM users") == "alice"
    assert files_under(Path(empty.config["UPLOAD_FOLDER"])) == restored_files  # the stray one is gone


def test_an_older_backup_is_brought_up_to_date(instances, tmp_path):
    known, head = code_revisions()
    older = instances.app("older", revision="0011")
    archive = tmp_path / "older.tar.gz"
    made = run(older, "backup", "--output", str(archive))
    assert made.exit_code == 0, made.output
    assert manifest_of(archive)["alembic_revision"] == "0011"
    target = instances.app("target", migrated=False)
    result = run(target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    assert f"The database was upgraded from revision 0011 to {head}." in result.output
    assert scalar(target, "SELECT version_num FROM alembic_version") == head


@pytest.mark.postgresql
def test_an_older_backup_into_a_migrated_database_is_refused_and_changes_nothing(instances, tmp_path):
    """The state a container's start leaves: migrated to the newest revision, with no users."""
    older = instances.app("older", revision="0011")
    archive = tmp_path / "older.tar.gz"
    assert run(older, "backup", "--output", str(archive)).exit_code == 0
    target = instances.app("target")
    _, head = code_revisions()
    tables = set(inspect(engine_of(target)).get_table_names())
    before = tree(Path(target.instance_path))
    result = run(target, "restore", str(archive))
    assert result.exit_code == 1
    assert (
        f"The target database is at revision '{head}' and the backup at '0011': restore into an empty "
        "database, or one at the same revision. Nothing was changed."
    ) in " ".join(result.output.split())
    assert scalar(target, "SELECT version_num FROM alembic_version") == head
    assert set(inspect(engine_of(target)).get_table_names()) == tables
    assert tree(Path(target.instance_path)) == before
    assert list(Path(target.instance_path).parent.rglob(".parley-restore-*")) == []


def test_a_failure_after_the_load_says_the_instance_was_changed(backed_up, instances, tmp_path):
    lying = tmp_path / "lying.tar.gz"

    def edit(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        return json.dumps({**manifest, "counts": {**manifest["counts"], "users": 7}}).encode()

    repack(backed_up, lying, edit)
    target = instances.app("target", migrated=False)
    result = run(target, "restore", str(lying))
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "the backup's manifest says" in output
    assert "This instance has already been changed" in output
    assert "Nothing was changed" not in output


def test_a_forced_restore_leaves_no_export_file_of_the_target_behind(instances, tmp_path, monkeypatch):
    """A backup holds no export zips: the target's are removed, and the restored exports can
    serve none (ready ones expire, pending ones fail), so no id serves another instance's zip."""
    monkeypatch.setattr(queue, "execute", lambda app, job, now=None: None)  # builds run below
    source = instances.app("source")
    populate(source)
    with source.app_context():
        ready = export_services.request_export(1).id
        export_archive.build({"export_id": ready})
        pending = export_services.request_export(1).id
        assert export_archive.zip_path(ready).is_file()
    archive = tmp_path / "exports.tar.gz"
    assert run(source, "backup", "--output", str(archive)).exit_code == 0

    target = instances.app("target")
    populate(target)
    with target.app_context():
        folder = export_archive.folder()
    folder.mkdir(parents=True)
    for name in (f"{ready}.zip", f"{pending}.zip", f"{pending}.zip.part", "77.zip"):
        (folder / name).write_bytes(b"the target's own export")
    result = run(target, "restore", "--force", str(archive))
    assert result.exit_code == 0, result.output
    assert list(folder.iterdir()) == []
    with target.app_context():
        rows = {row.id: export_services.present(row) for row in db.session.scalars(select(UserExport))}
        db.session.remove()
    assert set(rows) == {ready, pending}
    assert rows[ready]["state"] == "ready" and rows[ready]["expired"] is True and rows[ready]["url"] is None
    assert rows[pending]["state"] == "failed" and rows[pending]["url"] is None


def test_backup_never_overwrites_and_needs_a_migrated_database(instances, tmp_path):
    source = instances.app("source")
    existing = tmp_path / "existing.tar.gz"
    existing.write_bytes(b"keep me")
    result = run(source, "backup", "--output", str(existing))
    assert result.exit_code == 1
    assert f"{existing} exists already: choose another --output." in result.output
    assert existing.read_bytes() == b"keep me"

    bare = instances.app("bare", migrated=False)
    result = run(bare, "backup", "--output", str(tmp_path / "bare.tar.gz"))
    assert result.exit_code == 1
    assert "The database has no Parley tables yet: there is nothing to back up." in result.output
    assert not (tmp_path / "bare.tar.gz").exists()


def test_an_upload_file_gone_from_the_disk_is_named_as_missing(instances, tmp_path):
    source = instances.app("source")
    populate(source)
    uploads = Path(source.config["UPLOAD_FOLDER"])
    thumb = next(path for path in uploads.rglob("*.thumb"))
    thumb.unlink()
    archive = tmp_path / "missing.tar.gz"
    result = run(source, "backup", "--output", str(archive))
    assert result.exit_code == 0, result.output
    assert "1 upload files the database names were not found; they are not in the archive." in result.output
    manifest = manifest_of(archive)
    assert manifest["missing_uploads"] == [str(thumb.relative_to(uploads))]
    assert [name for name in manifest["files"] if name.startswith("uploads/")] == [
        f"uploads/{path.relative_to(uploads)}" for path in uploads.rglob("*") if path.is_file()
    ]


def test_the_sqlite_copy_is_one_moment_while_another_connection_writes(app, tmp_path, monkeypatch):
    """Between every two batches of pages another connection commits a row: the copy still
    finishes, and holds the rows of the moment it began (without its read transaction SQLite
    would restart it after each write, and copy the rows written meanwhile)."""
    source, copy = tmp_path / "busy.db", tmp_path / "copy.db"
    with closing(sqlite3.connect(source)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        setup.executemany("INSERT INTO t (v) VALUES (randomblob(3000))", [()] * 1000)  # ~ 4 batches
        setup.commit()
    writer = sqlite3.connect(source)
    written = []

    def write_between_batches() -> None:
        if len(written) < 3:
            writer.execute("INSERT INTO t (v) VALUES (randomblob(10))")
            writer.commit()
            written.append(1)

    monkeypatch.setattr(make, "_pause", write_between_batches)
    try:
        with app.app_context():
            make._copy_sqlite(source, copy)
    finally:
        writer.close()
    assert len(written) == 3
    with closing(sqlite3.connect(copy)) as copied:
        assert copied.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copied.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    with closing(sqlite3.connect(source)) as now:
        assert now.execute("SELECT count(*) FROM t").fetchone() == (1003,)


def test_the_default_archive_goes_under_the_instance_folder(instances):
    source = instances.app("source")
    result = run(source, "backup")
    assert result.exit_code == 0, result.output
    made = list((Path(source.instance_path) / "backups").iterdir())
    assert len(made) == 1 and made[0].name.startswith("parley-") and made[0].name.endswith("Z.tar.gz")
    assert made[0].stat().st_mode & 0o777 == 0o600


@pytest.mark.postgresql
def test_without_pg_dump_the_backup_points_to_the_documented_commands(instances, tmp_path, monkeypatch):
    source = instances.app("source")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    result = run(source, "backup", "--output", str(tmp_path / "never.tar.gz"))
    assert result.exit_code == 1
    assert "pg_dump is not on PATH" in result.output and '"Backup and restore"' in result.output
    assert list(tmp_path.glob("*.tar.gz")) == list(tmp_path.glob(".*.partial")) == []


# --- the key's fingerprint, and members larger than the manifest says ------------------------


def member_of(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.extractfile(name).read()


def with_manifest(source: Path, target: Path, edit) -> None:
    repack(
        source,
        target,
        lambda name, data: json.dumps(edit(json.loads(data))).encode() if name == "manifest.json" else data,
    )


def test_a_backup_records_a_salted_slow_fingerprint_of_its_key(backed_up):
    key = member_of(backed_up, "instance/secret_key").decode().strip()
    recorded = manifest_of(backed_up)["secret_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", recorded["salt"])
    old_form = hashlib.sha256(f"parley backup fingerprint:{key}".encode()).hexdigest()[:16]
    assert recorded["fingerprint"] != old_form
    expected = hashlib.scrypt(key.encode(), salt=bytes.fromhex(recorded["salt"]), n=2**14, r=8, p=1, dklen=16)
    assert recorded["fingerprint"] == expected.hex()


@pytest.mark.parametrize("same_key", [True, False], ids=["the same key", "another key"])
def test_a_backup_with_the_fingerprint_of_before_salts_is_still_checked(
    backed_up, instances, tmp_path, same_key
):
    """Backups made before salts record a plain SHA-256 and no salt: still compared, still told."""
    key = member_of(backed_up, "instance/secret_key").decode().strip()
    old = tmp_path / "old.tar.gz"

    def old_form(manifest: dict) -> dict:
        fingerprint = hashlib.sha256(f"parley backup fingerprint:{key}".encode()).hexdigest()[:16]
        manifest["secret_key"] = {"source": manifest["secret_key"]["source"], "fingerprint": fingerprint}
        return manifest

    with_manifest(backed_up, old, old_form)
    overrides = {} if same_key else {"SECRET_KEY": "another-secret-key-0123456789"}
    target = instances.app("target", migrated=False, **overrides)
    result = run(target, "restore", str(old))
    assert result.exit_code == 0, result.output
    told = "This Parley's SECRET_KEY is not the one the backed-up Parley used" in result.output
    assert told is not same_key, result.output
    assert scalar(target, "SELECT username FROM users") == "alice"


def test_a_malformed_salt_is_refused_and_changes_nothing(backed_up, instances, tmp_path):
    changed = tmp_path / "changed.tar.gz"

    def bad_salt(manifest: dict) -> dict:
        manifest["secret_key"]["salt"] = "not hex"
        return manifest

    with_manifest(backed_up, changed, bad_salt)
    target = instances.app("target", migrated=False)
    before = tree(Path(target.instance_path))
    result = run(target, "restore", str(changed))
    assert result.exit_code == 1
    assert "has a malformed secret_key salt. Nothing was changed." in result.output
    assert_untouched(target, before)


def test_a_member_larger_than_its_manifest_says_is_refused_before_it_is_written(
    backed_up, instances, tmp_path, monkeypatch
):
    from app.backup import restore

    grown = tmp_path / "grown.tar.gz"
    member = upload_member(backed_up)
    declared = manifest_of(backed_up)["files"][member]["size"]
    # 8 MiB more than the manifest says (a few KiB once compressed).
    repack(backed_up, grown, lambda name, data: data + bytes(8 << 20) if name == member else data)
    staged = []
    real = restore._Staging.path_for
    monkeypatch.setattr(
        restore._Staging, "path_for", lambda self, name: staged.append(name) or real(self, name)
    )
    target = instances.app("target", migrated=False)
    before = tree(Path(target.instance_path))
    result = run(target, "restore", str(grown))
    assert result.exit_code == 1
    assert f"is damaged: {member} is larger than its manifest.json says ({declared + (8 << 20)} bytes)." in (
        result.output
    )
    assert result.output.rstrip().endswith("Nothing was changed.")
    assert member not in staged
    assert_untouched(target, before)


def test_extracting_a_member_stops_one_byte_past_its_declared_size(tmp_path):
    from app.backup import restore

    source = io.BytesIO(bytes(8 << 20))
    refusal = restore.BackupError("too large")
    with pytest.raises(restore.BackupError, match="too large"):
        restore._extract_member(source, tmp_path / "member", 10, refusal)
    assert source.tell() == 11
    assert (tmp_path / "member").stat().st_size <= 10
    # Exactly the declared size is fine.
    done = restore._extract_member(io.BytesIO(b"x" * 10), tmp_path / "exact", 10, refusal)
    assert done == {"size": 10, "sha256": hashlib.sha256(b"x" * 10).hexdigest()}
