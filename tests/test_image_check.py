"""tools/image_check.py's own rules (`make image-check` runs them on the real image, as root, in
minutes): where the Debian mirror is, which CAs the local bases must add, and what an image may
hold. Here they run on small file trees that look like an image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from config import BASE_DIR
from tools import image_check

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_mirror_is_read_from_deb822_sources():
    sources = {
        "/etc/apt/sources.list.d/nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
        "Suites: nodistro\nComponents: main\n",
        "/etc/apt/sources.list.d/debian.sources": DEB822,
    }
    assert image_check.debian_mirror(sources) == "http://deb.debian.org/debian"


def test_the_mirror_is_read_from_one_line_sources():
    sources = {
        "/etc/apt/sources.list": "# deb http://old.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main contrib\n"
    }
    assert image_check.debian_mirror(sources) == "http://mirror.example/debian"


def test_no_bookworm_mirror_is_a_clear_failure():
    sources = {"/etc/apt/sources.list": "deb http://mirror.example/debian trixie main\n"}
    with pytest.raises(image_check.CheckFailed, match="no apt source for bookworm main"):
        image_check.debian_mirror(sources)


def pem(body: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def test_the_bases_add_only_the_cas_debian_does_not_have():
    debian = "\n".join([pem("QUJD"), pem("REVG")])
    assert image_check.extra_certificates(debian, debian) == []
    host = "\n".join([pem("QUJD"), pem("UFJPWFk="), pem("REVG")])
    assert image_check.extra_certificates(host, debian) == [pem("UFJPWFk=")]


def test_a_base_is_made_again_when_this_machines_cas_change():
    one = image_check.base_tag("localhost/b", ["python3"], pem("QUJD"))
    assert one == image_check.base_tag("localhost/b", ["python3"], pem("QUJD"))
    assert one.startswith("localhost/b:bookworm-")
    assert one != image_check.base_tag("localhost/b", ["python3"], pem("QUJD") + pem("UFJPWFk="))
    assert one != image_check.base_tag("localhost/b", ["python3", "npm"], pem("QUJD"))


def fake_image(root: Path) -> Path:
    """A tree shaped like Parley's image: its code, a venv, /data, a sticky /tmp."""
    app = root / "srv/parley"
    for folder in ("app/static/vendor", "templates", "migrations/versions"):
        (app / folder).mkdir(parents=True)
    (root / "opt/venv/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nparley:x:10001:10001::/nonexistent:/x\n"
    )
    (app / "wsgi.py").write_text("app = None\n")
    (root / "data").mkdir(mode=0o777)
    (root / "data").chmod(0o777)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    for path in root.rglob("*"):
        if path.is_dir() and path.name not in ("data", "tmp"):
            path.chmod(0o755)
    return app


def problems(root: Path) -> list[str]:
    return image_check.image_problems(root, "/srv/parley", 10001, 10001, code_owner=os.getuid())


def test_a_clean_image_has_no_problems(tmp_path):
    fake_image(tmp_path)
    assert problems(tmp_path) == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda app, root: (app / ".env").write_text("SECRET_KEY=x"),
            "/srv/parley/.env is in the image (a secret)",
        ),
        (lambda app, root: (app / "app/.env.production").write_text("x"), "/srv/parley/app/.env.production"),
        (lambda app, root: (app / "tests").mkdir(), "/srv/parley/tests is in the image"),
        (lambda app, root: (app / "instance").mkdir(), "/srv/parley/instance is in the image"),
        (
            lambda app, root: (root / "usr/lib/node_modules").mkdir(parents=True),
            "/usr/lib/node_modules is in",
        ),
        (lambda app, root: (app / ".git").mkdir(), "/srv/parley/.git is in the image"),
        (lambda app, root: (app / "wsgi.py").chmod(0o666), "/srv/parley/wsgi.py is writable by the server's"),
        (lambda app, root: (root / "opt/venv/bin").chmod(0o777), "/opt/venv/bin is writable by the server's"),
    ],
    ids=["dot-env", "dot-env-variant", "tests", "instance", "node-modules", "git", "code-writable", "venv"],
)
def test_what_an_image_must_not_hold_is_reported(tmp_path, make, expected):
    make(fake_image(tmp_path), tmp_path)
    found = problems(tmp_path)
    assert any(problem.startswith(expected) for problem in found), found


def test_data_must_be_the_server_users(tmp_path):
    fake_image(tmp_path)
    assert image_check.data_problems(tmp_path, os.getuid()) == []
    assert image_check.data_problems(tmp_path, os.getuid() + 1) == [
        f"/data is owned by uid {os.getuid()}, not the server's user"
    ]


def test_the_image_user_is_read_from_its_passwd(tmp_path):
    fake_image(tmp_path)
    assert image_check.user_ids(tmp_path, "parley") == (10001, 10001)
    assert image_check.user_ids(tmp_path, "10001:20") == (10001, 20)
    with pytest.raises(image_check.CheckFailed, match="'nobody' is not in its /etc/passwd"):
        image_check.user_ids(tmp_path, "nobody")


def test_every_vendored_file_a_page_loads_must_be_there(tmp_path):
    app = fake_image(tmp_path)
    (app / "templates/app.html").write_text(
        '<script type="module" src="/static/vendor/socket.io.esm.min.js">'
    )
    assert image_check.vendored_problems(app) == ["app/static/vendor/socket.io.esm.min.js is missing"]
    (app / "app/static/vendor/socket.io.esm.min.js").write_text("export {}")
    assert image_check.vendored_problems(app) == []


def test_every_catalogue_must_be_compiled_with_its_translations(tmp_path):
    app = fake_image(tmp_path)
    folder = app / "app/translations/zh_Hans_CN/LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text('msgid "Sign in"\nmsgstr "登录"\n')
    assert image_check.catalogue_problems(app) == [
        "app/translations/zh_Hans_CN/LC_MESSAGES/messages.mo was not compiled"
    ]
    catalog = Catalog(locale="zh_Hans_CN")
    catalog.add("Sign in", "登录")
    with (folder / "messages.mo").open("wb") as file:
        write_mo(file, catalog)
    assert image_check.catalogue_problems(app) == []


def test_the_migration_head_is_alembics():
    versions = BASE_DIR / "migrations/versions"
    alembic = AlembicConfig(str(BASE_DIR / "migrations/alembic.ini"))
    alembic.set_main_option("script_location", str(BASE_DIR / "migrations"))
    assert image_check.migration_head(versions) == ScriptDirectory.from_config(alembic).get_current_head()


def test_two_migration_heads_are_a_failure(tmp_path):
    (tmp_path / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (tmp_path / "b.py").write_text('revision = "b"\ndown_revision = None\n')
    with pytest.raises(image_check.CheckFailed, match=r"heads \['a', 'b'\], not one"):
        image_check.migration_head(tmp_path)


def test_an_image_running_as_root_is_reported(tmp_path):
    fake_image(tmp_path)
    found = image_check.image_problems(tmp_path, "/srv/parley", 0, 0, code_owner=os.getuid())
    assert found == ["the image runs as root"]


def test_the_work_folder_is_removed_when_nothing_is_mounted_in_it(tmp_path):
    work = tmp_path / "work"
    (work / "base/proc").mkdir(parents=True)
    assert image_check.mounts_under(work) == []
    assert "/proc" in image_check.mounts_under(Path("/"))
    image_check.release(work)
    assert not work.exists()
