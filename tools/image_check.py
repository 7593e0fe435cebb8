"""`make image-check`: build Parley's Docker image on this machine and check what is inside it.

No Docker engine and no image registry are needed, only Debian's package mirror, PyPI and npm:
1. podman, buildah and debootstrap are installed with apt-get when missing;
2. two local base images (Debian bookworm with python3.11 + venv, and with nodejs + npm) are made
   with debootstrap from the mirror apt already uses and `podman import`ed; they are kept, and
   made again only when their package list or this machine's extra CA certificates change;
3. the Dockerfile is built with `buildah bud --isolation chroot --format docker` (the Docker format
   keeps HEALTHCHECK), the bases as build arguments;
4. the image is checked without running a container: `podman image mount` gives its files
   (read-only), the checks read them, then the image's own start command runs in a chroot of
   them as the image's user, with tmpfs on /data and /tmp: migrations run, gunicorn answers
   /healthz, the image's HEALTHCHECK passes, a registration and a sign-in over HTTP succeed.
Everything mounted is unmounted at the end, on failure too. Run as root:
    python3 tools/image_check.py [--tag localhost/parley:check] [--no-build]
"""

from __future__ import annotations

import argparse
import gettext
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
TOOLS = ("podman", "buildah", "debootstrap")  # each from the Debian package of that name
# Each local base: the build argument it stands for, its name, what apt installs in it, and the
# setting that points its tool at the system's CAs when this machine trusts more than Debian does
# (pip and node keep CA lists of their own).
PYTHON_PACKAGES = ["python3.11", "python3-venv", "ca-certificates"]
NODE_PACKAGES = ["nodejs", "npm", "ca-certificates"]
BASES = {
    "PYTHON_IMAGE": ("localhost/parley-base-python", PYTHON_PACKAGES, "PIP_CERT"),
    "NODE_IMAGE": ("localhost/parley-base-node", NODE_PACKAGES, "NODE_EXTRA_CA_CERTS"),
}
RECIPE = 2  # the way a base is made: a new number makes them again
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIN_FREE_BYTES = 4 * 1024**3
START_SECONDS = 180
# In an image, nothing but these is the server's to write: its data, and the sticky /tmp kind.
WRITABLE = ("/data",)
NOT_IN_THE_APP = ("tests", "bench", "instance", "node_modules", ".git", ".venv", "tools")


class CheckFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"image-check: {text}", flush=True)


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    """A command that must succeed; its output goes to the terminal unless captured."""
    return subprocess.run(command, check=True, **kwargs)


def attempt(*command: str, **kwargs) -> subprocess.CompletedProcess:
    """A command that may fail; its status says how it went."""
    return subprocess.run(command, check=False, **kwargs)


def output(*command: str) -> str:
    return run(*command, capture_output=True, text=True).stdout.strip()


# --- what this machine has -------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        say(f"installing {' '.join(missing)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run("apt-get", "update", env=env)
        run("apt-get", "install", "-y", "--no-install-recommends", *missing, env=env)


def debian_mirror(sources: dict[str, str], suite: str = SUITE) -> str:
    """The first mirror apt uses for `suite` main, from sources.list lines or deb822 stanzas."""
    for name, text in sorted(sources.items()):
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip().lower(), value.split())
                    for key, value in re.findall(r"^([A-Za-z-]+):(.*)$", stanza, re.MULTILINE)
                )
                if (
                    "deb" in fields.get("types", [])
                    and suite in fields.get("suites", [])
                    and "main" in fields.get("components", [])
                    and fields.get("uris")
                ):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
                    return words[1]
    raise CheckFailed(f"no apt source for {suite} main in /etc/apt/sources.list*")


def apt_sources() -> dict[str, str]:
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return {str(path): path.read_text() for path in paths if path.is_file()}


def certificates(bundle: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle, re.DOTALL)


def extra_certificates(host_bundle: str, base_bundle: str) -> list[str]:
    """The CAs this machine trusts beyond Debian's (a TLS-inspecting proxy's): the bases trust
    them too, or pip and npm could not reach PyPI and npm from inside the build."""
    known = {" ".join(cert.split()) for cert in certificates(base_bundle)}
    return [cert for cert in certificates(host_bundle) if " ".join(cert.split()) not in known]


def check_disk(path: Path) -> None:
    free = shutil.disk_usage(path).free
    say(f"{free / 1024**3:.1f} GB free under {path}")
    if free < MIN_FREE_BYTES:
        raise CheckFailed(f"at least {MIN_FREE_BYTES // 1024**3} GB must be free under {path}")


# --- mounts that are always undone -----------------------------------------------------------


@contextmanager
def mounted(*args: str, target: Path) -> Iterator[Path]:
    run("mount", *args, str(target))
    try:
        yield target
    finally:
        if attempt("umount", str(target)).returncode != 0:
            run("umount", "--lazy", str(target))


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [point for point in points if (point + "/").startswith(prefix)]


def release(work: Path) -> None:
    """Detach whatever is still mounted under the work folder (debootstrap's /proc and /sys when it
    was killed), deepest first, then remove the folder: never delete through a mount."""
    for point in sorted(mounts_under(work), key=len, reverse=True):
        say(f"unmounting {point}, left behind")
        attempt("umount", "--lazy", point)
    if mounts_under(work):
        say(f"could not unmount {mounts_under(work)}: {work} is left for you to remove")
    else:
        shutil.rmtree(work, ignore_errors=True)


# --- the local base images -------------------------------------------------------------------


def base_tag(name: str, packages: list[str], host_bundle: str) -> str:
    """Named by what is in it: made again when the packages or this machine's CAs change."""
    key = json.dumps([RECIPE, SUITE, packages, sorted(certificates(host_bundle))]).encode()
    return f"{name}:{SUITE}-{hashlib.sha256(key).hexdigest()[:12]}"


def image_exists(tag: str) -> bool:
    return attempt("podman", "image", "exists", tag).returncode == 0


def make_base(tag: str, packages: list[str], ca_setting: str, bundle: str, mirror: str, work: Path) -> None:
    """debootstrap a minimal bookworm, apt-get the packages in it (debootstrap's own resolver
    cannot install npm's dependencies), trust this machine's extra CAs, import it."""
    root = work / tag.rsplit("/", 1)[-1].replace(":", "-")
    say(f"debootstrap {SUITE} from {mirror} into {root}")
    run("nice", "debootstrap", "--variant=minbase", SUITE, str(root), mirror)
    env = {"PATH": DEFAULT_PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
    try:
        with ExitStack() as stack:
            stack.enter_context(mounted("-t", "proc", "proc", target=root / "proc"))
            stack.enter_context(mounted("--bind", "/dev", target=root / "dev"))
            stack.enter_context(mounted("--bind", "/dev/pts", target=root / "dev/pts"))
            shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
            chroot = ("nice", "chroot", str(root))
            run(*chroot, "apt-get", "update", env=env)
            run(*chroot, "apt-get", "install", "-y", "--no-install-recommends", *packages, env=env)
            extra = extra_certificates(bundle, (root / HOST_BUNDLE.relative_to("/")).read_text())
            for index, cert in enumerate(extra):
                path = root / f"usr/local/share/ca-certificates/parley-host-{index}.crt"
                path.write_text(cert + "\n")
            if extra:
                say(f"the base trusts this machine's {len(extra)} extra CA certificate(s)")
                run(*chroot, "update-ca-certificates", env=env)
            run(*chroot, "apt-get", "clean", env=env)
        if mounts_under(root):
            raise CheckFailed(f"still mounted under {root}: {mounts_under(root)}")
        shutil.rmtree(root / "var/lib/apt/lists")
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        (root / "etc/resolv.conf").write_text("")
        changes = [f"ENV=PATH={DEFAULT_PATH}", "ENV=LANG=C.UTF-8", 'CMD=["bash"]']
        if extra:
            changes.append(f"ENV={ca_setting}={HOST_BUNDLE}")
        archive = ["tar", "--numeric-owner", "-C", str(root), "-c", "."]
        tar = subprocess.Popen(archive, stdout=subprocess.PIPE)
        flags = [part for change in changes for part in ("--change", change)]
        run("podman", "import", "--quiet", *flags, "-", tag, stdin=tar.stdout, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise CheckFailed(f"tar of {root} failed")
    finally:
        if not mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def base_images(work: Path) -> dict[str, str]:
    """The local bases by build argument, made when missing."""
    mirror = debian_mirror(apt_sources())
    host_bundle = HOST_BUNDLE.read_text() if HOST_BUNDLE.exists() else ""
    found: dict[str, str] = {}
    for argument, (name, packages, ca_setting) in BASES.items():
        tag = base_tag(name, packages, host_bundle)
        if image_exists(tag):
            say(f"{argument}: {tag} (cached)")
        else:
            check_disk(work)
            started = time.monotonic()
            make_base(tag, packages, ca_setting, host_bundle, mirror, work)
            say(f"{argument}: {tag} made in {time.monotonic() - started:.0f} s")
        found[argument] = tag
    return found


# --- the build -------------------------------------------------------------------------------


def build(tag: str, bases: dict[str, str]) -> None:
    arguments = [part for name, base in bases.items() for part in ("--build-arg", f"{name}={base}")]
    previous = image_id(tag)
    run(
        "nice", "buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers", "--force-rm",
        *arguments, "-f", str(ROOT / "Dockerfile"), "-t", tag, str(ROOT),
    )  # fmt: skip
    if previous and previous != image_id(tag):  # the last build's image, now untagged
        attempt("podman", "rmi", previous, capture_output=True)


def image_id(tag: str) -> str | None:
    if not image_exists(tag):
        return None
    return output("podman", "image", "inspect", "--format", "{{.Id}}", tag)


# --- what the image holds --------------------------------------------------------------------


def user_ids(root: Path, user: str) -> tuple[int, int]:
    """The image's USER as uid and gid, by name (its /etc/passwd) or by number."""
    name, _, group = user.partition(":")
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name or fields[2] == name:
            uid, gid = int(fields[2]), int(fields[3])
            break
    else:
        if not name.isdigit():
            raise CheckFailed(f"the image's user {name!r} is not in its /etc/passwd")
        uid, gid = int(name), int(name)
    return uid, int(group) if group.isdigit() else gid


def writable_by(mode: int, owner: int, group: int, uid: int, gid: int) -> bool:
    return bool(
        (owner == uid and mode & stat.S_IWUSR)
        or (group == gid and mode & stat.S_IWGRP)
        or mode & stat.S_IWOTH
    )


def image_problems(root: Path, workdir: str, uid: int, gid: int, code_owner: int = 0) -> list[str]:
    """What must not be in the image, or not be the server's to change: secrets, tests, local
    state, host dependencies; anything its user could write outside /data and sticky /tmp-like
    folders; code not owned by root."""
    problems = []
    if uid == 0:
        problems.append("the image runs as root")
    app = root / workdir.lstrip("/")
    for name in NOT_IN_THE_APP:
        if (app / name).exists():
            problems.append(f"{workdir}/{name} is in the image")
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        here = "/" if relative == "." else f"/{relative}"
        if here in ("/proc", "/sys", "/dev"):
            dirs[:] = []
            continue
        for name in [*dirs, *files]:
            path = Path(folder, name)
            shown = f"{here.rstrip('/')}/{name}"
            info = path.lstat()
            if name == "node_modules" or name == ".git":
                problems.append(f"{shown} is in the image")
            if name == ".env" or name.startswith(".env."):
                problems.append(f"{shown} is in the image (a secret)")
            if shown.startswith(workdir + "/") and info.st_uid != code_owner:
                problems.append(f"{shown} is owned by uid {info.st_uid}, not {code_owner}")
            ours = any(shown == path or shown.startswith(path + "/") for path in WRITABLE)
            if uid == 0 or ours or stat.S_ISLNK(info.st_mode):
                continue
            sticky_tmp = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
            if not sticky_tmp and writable_by(info.st_mode, info.st_uid, info.st_gid, uid, gid):
                problems.append(f"{shown} is writable by the server's user (uid {uid})")
    return problems


def data_problems(root: Path, uid: int) -> list[str]:
    problems = []
    for path in WRITABLE:
        if not (root / path.lstrip("/")).is_dir():
            problems.append(f"{path} is not in the image")
            continue
        info = (root / path.lstrip("/")).stat()
        if info.st_uid != uid:
            problems.append(f"{path} is owned by uid {info.st_uid}, not the server's user")
    return problems


def vendored_problems(app: Path) -> list[str]:
    """Every vendor/ file the image's own templates and scripts load is in the image."""
    sources = [*app.glob("templates/**/*.html"), *app.glob("app/static/js/**/*.js")]
    names = set()
    for path in sources:
        names.update(re.findall(r"vendor/([A-Za-z0-9_./-]+\.(?:js|css))", path.read_text(encoding="utf-8")))
    if not names:
        return ["no page loads a vendored library (the templates are missing?)"]
    vendor = app / "app/static/vendor"
    return [f"app/static/vendor/{name} is missing" for name in sorted(names) if not (vendor / name).is_file()]


def catalogue_problems(app: Path) -> list[str]:
    """Each committed .po catalogue has its compiled .mo, with translations in it."""
    catalogues = sorted(app.glob("app/translations/*/LC_MESSAGES/messages.po"))
    if not catalogues:
        return ["no translation catalogue in the image"]
    problems = []
    for po in catalogues:
        mo = po.with_suffix(".mo")
        if not mo.is_file():
            problems.append(f"{mo.relative_to(app)} was not compiled")
            continue
        with mo.open("rb") as file:
            if len(gettext.GNUTranslations(file)._catalog) < 2:
                problems.append(f"{mo.relative_to(app)} holds no translation")
    return problems


def migration_head(versions: Path) -> str:
    revisions, parents = set(), set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revisions.update(re.findall(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE))
        parents.update(re.findall(r"^down_revision\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE))
    heads = revisions - parents
    if len(heads) != 1:
        raise CheckFailed(f"the image's migrations have heads {sorted(heads)}, not one")
    return heads.pop()


# --- the image's start command, in a chroot --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, cookie: str = "") -> tuple[int, dict, str]:
    """One request: status, JSON answer and the cookies it set, as a Cookie header (sent back by
    hand: the production session cookie is Secure, and this is plain HTTP on the loopback)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1 only)
    request.add_header("Content-Type", "application/json")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the same request)
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    cookies = [value.split(";", 1)[0] for value in headers.get_all("Set-Cookie") or []]
    session = "; ".join(cookies)
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"raw": raw[:200].decode(errors="replace")}
    return status, answer, session


def in_image(
    root: Path, config: dict, command: list[str], uid: int, gid: int, env: dict, log: Path
) -> subprocess.Popen:
    """A command as the image would run it: in its WORKDIR, as its user, inside the mounted image."""
    workdir = config.get("WorkingDir") or "/"

    def enter() -> None:
        os.chroot(root)
        os.chdir(workdir)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, preexec_fn=enter, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_health(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailed(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if http("GET", f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)  # polling for start-up, bounded by the deadline
    raise CheckFailed(f"/healthz did not answer within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def healthcheck(root: Path, config: dict, uid: int, gid: int, env: dict, work: Path) -> None:
    """The image's HEALTHCHECK, run in it against the running server, succeeds."""
    test = (config.get("Healthcheck") or {}).get("Test") or []
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        raise CheckFailed(f"the image has no HEALTHCHECK command: {test}")
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    log = work / "healthcheck.log"
    status = in_image(root, config, command, uid, gid, env, log).wait(timeout=60)
    if status != 0:
        raise CheckFailed(f"the image's HEALTHCHECK exited with {status}:\n{log.read_text()[-2000:]}")
    say("the image's HEALTHCHECK succeeds")


def serve_and_sign_in(root: Path, config: dict, uid: int, gid: int, work: Path) -> None:
    """Start the image's command on an empty /data; check health, sign-up, sign-in, migrations."""
    port = free_port()
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    env.update(DATABASE_URL="sqlite:////data/parley.db", SECRET_KEY=secrets.token_hex(32), PORT=str(port))
    log = work / "server.log"
    base = f"http://127.0.0.1:{port}"
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    process = in_image(root, config, command, uid, gid, env, log)
    try:
        wait_for_health(process, base, log)
        say(f"/healthz answers 200 on port {port}")
        healthcheck(root, config, uid, gid, env, work)
        account = {"username": "imagecheck", "password": secrets.token_urlsafe(16)}
        status, answer, session = http("POST", f"{base}/api/v1/auth/register", account)
        if status != 201 or not session:
            raise CheckFailed(f"registration answered {status}: {answer}")
        status, answer, session = http("POST", f"{base}/api/v1/auth/login", account)
        if status != 200 or not session:
            raise CheckFailed(f"sign-in answered {status}: {answer}")
        status, answer, _ = http("GET", f"{base}/api/v1/auth/me", cookie=session)
        if status != 200 or answer.get("user", {}).get("username") != account["username"]:
            raise CheckFailed(f"/auth/me with the session answered {status}: {answer}")
        say("registration, sign-in and the signed-in session work over HTTP")
    finally:
        stop(process)
    database = root / "data/parley.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    connection.close()
    head = migration_head(root / (config.get("WorkingDir") or "/").lstrip("/") / "migrations/versions")
    if version != head:
        raise CheckFailed(f"the database is at migration {version}, the image's head is {head}")
    say(f"the start command migrated the database to {head}")


def check_image(tag: str, work: Path) -> None:
    # buildah's view keeps the Docker-format fields (HEALTHCHECK) that podman's leaves out.
    config = json.loads(output("buildah", "inspect", "--type", "image", tag))["Docker"]["config"]
    root = Path(output("podman", "image", "mount", tag))
    try:
        with ExitStack() as stack:
            workdir = config.get("WorkingDir") or "/"
            uid, gid = user_ids(root, config.get("User") or "root")
            app = root / workdir.lstrip("/")
            problems = image_problems(root, workdir, uid, gid) + data_problems(root, uid)
            problems += vendored_problems(app)
            problems += catalogue_problems(app)
            if problems:
                more = [f"... and {len(problems) - 40} more"] if len(problems) > 40 else []
                raise CheckFailed("the image's files:\n  " + "\n  ".join(problems[:40] + more))
            say(f"files: nothing secret or local, root's code, uid {uid} writes /data alone")
            stack.enter_context(mounted("-t", "proc", "proc", target=root / "proc"))
            stack.enter_context(mounted("--bind", "/dev", target=root / "dev"))
            stack.enter_context(mounted("-t", "tmpfs", "-o", "mode=1777", "tmpfs", target=root / "tmp"))
            options = f"uid={uid},gid={gid},mode=0755"
            stack.enter_context(mounted("-t", "tmpfs", "-o", options, "tmpfs", target=root / "data"))
            serve_and_sign_in(root, config, uid, gid, work)
    finally:
        attempt("podman", "image", "unmount", tag, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tag", default="localhost/parley:check", help="the image to build and check")
    parser.add_argument("--no-build", action="store_true", help="check the image already built")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("image-check: run as root (podman, debootstrap, mounts and chroot need it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks unmount
    times, started = {}, time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="parley-image-", dir="/var/tmp"))
    try:
        if not args.no_build:
            ensure_tools()
            bases = base_images(work)
            times["base images"] = time.monotonic() - started
            mark = time.monotonic()
            build(args.tag, bases)
            times["build"] = time.monotonic() - mark
        mark = time.monotonic()
        check_image(args.tag, work)
        times["check"] = time.monotonic() - mark
    except (CheckFailed, subprocess.CalledProcessError) as error:
        print(f"image-check: FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        release(work)
    size = int(output("podman", "image", "inspect", "--format", "{{.Size}}", args.tag))
    times["total"] = time.monotonic() - started
    say(f"{args.tag}: {size / 1024**2:.0f} MB; " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
