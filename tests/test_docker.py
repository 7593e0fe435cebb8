"""The Docker image and compose file: no secret in the image, settings reach the containers,
health is checked, one nginx in front of two Parley processes that share everything they must,
migrations run once, and only nginx is published, on the loopback interface.

No Docker daemon is needed: the files are read as Docker reads them, the healthcheck and start
commands are run here (against a live server, or with stand-ins for flask and gunicorn), and the
compose nginx configuration is checked by the real nginx.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import BASE_DIR, Config
from tests.cluster import nginx_config
from tests.conftest import free_port


def ignore_patterns() -> list[str]:
    lines = (BASE_DIR / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(pattern.startswith("!") for pattern in patterns), "no exceptions expected"
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matches the path or one of its parent folders; `**/` any depth."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]):
                return True
    return False


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "app/.env",
        "instance/secret_key",
        "instance/parley.db",
        "instance/uploads/ab/cd.jpg",
        "parley.db",
        ".venv/bin/python",
        "node_modules/socket.io-client/package.json",
        "app/static/vendor/socket.io.esm.min.js",
        ".git/config",
        "tests/conftest.py",
        "tests/e2e/vendor/axe.min.js",
        "bench/__main__.py",
        "tools/image_check.py",
        "instance/exports/1.zip",
        "backups/parley-20260101T000000Z.tar.gz",
        "parley-20260101T000000Z.tar.gz",
        "deploy/old/parley.tar.gz",
        "parley.pgdump",
        "dumps/parley.pgdump",
        ".parley-20260101T000000Z.tar.gz.0a1b2c3d.partial",
        "somewhere/.parley.tar.gz.0a1b2c3d.partial",
        "app/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/README.md",
    ],
)
def test_secrets_and_local_state_stay_out_of_the_image(path):
    assert ignored(path, ignore_patterns()), path


@pytest.mark.parametrize(
    "path",
    [
        "wsgi.py",
        "config.py",
        "requirements.txt",
        "app/__init__.py",
        "app/static/js/app.js",
        "templates/app.html",
    ],
)
def test_the_application_itself_is_in_the_image(path):
    assert (BASE_DIR / path).exists()
    assert not ignored(path, ignore_patterns()), path


def test_migrations_are_in_the_image():
    versions = list((BASE_DIR / "migrations/versions").glob("*.py"))
    assert versions
    for version in versions:
        assert not ignored(str(version.relative_to(BASE_DIR)), ignore_patterns())


PROCESSES = ("parley-1", "parley-2")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_CONF = BASE_DIR / "deploy" / "nginx" / "nginx.conf"
PROXY_CONF = BASE_DIR / "deploy" / "nginx" / "proxy.conf"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def parley_services(compose: dict) -> dict[str, dict]:
    """The services run from Parley's image: the processes and the one-shot migration."""
    return {name: service for name, service in compose["services"].items() if service.get("build") == "."}


def port_of(compose: dict, name: str) -> int:
    return int(compose["services"][name]["environment"]["PORT"])


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` (a KeyError for the last)."""

    def one(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if variables.get(name):
            return variables[name]
        if operator == ":-":
            return argument
        raise KeyError(f"{name}: {argument}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def test_compose_runs_two_processes_and_a_migration_from_one_image(compose):
    assert set(parley_services(compose)) == {*PROCESSES, "migrate"}


def test_compose_passes_every_setting_in_dot_env_to_parley(compose):
    for name, service in parley_services(compose).items():
        assert {"path": ".env", "required": False} in service["env_file"], name
        environment = service["environment"]
        # What compose sets itself wins over .env, and keeps the image's layout.
        assert environment["PARLEY_ENV"] == "production", name
        assert environment["INSTANCE_PATH"] == "/data", name
        assert environment["REDIS_URL"].startswith("redis://redis:"), name
        assert environment["DATABASE_URL"].endswith("@postgres:5432/parley"), name
        assert "${SECRET_KEY:?" in environment["SECRET_KEY"], name


def test_the_processes_share_settings_and_instance_folder_and_differ_only_in_port(compose):
    services = compose["services"]
    names = (*PROCESSES, "migrate")
    own = {"PORT", "PARLEY_MIGRATE"}
    settings = [{k: v for k, v in services[name]["environment"].items() if k not in own} for name in names]
    assert all(each == settings[0] for each in settings), "one SECRET_KEY, database, Redis, URL"
    assert settings[0]["TRUSTED_PROXIES"] == "1"
    # Uploads and the generated VAPID key: one volume where INSTANCE_PATH points, in every container.
    for name in names:
        assert services[name]["volumes"] == ["parley-data:/data"], name
    assert "parley-data" in compose["volumes"]
    processes = [{k: v for k, v in services[name].items() if k != "environment"} for name in PROCESSES]
    assert processes[0] == processes[1]
    assert len({port_of(compose, name) for name in PROCESSES}) == len(PROCESSES)


def test_parley_accepts_what_compose_gives_every_process(compose, tmp_path):
    variables = {"SECRET_KEY": "compose-secret-key-0123456789", "POSTGRES_PASSWORD": "secret"}
    configs = []
    for name in PROCESSES:
        environment = compose["services"][name]["environment"]
        env = {key: interpolate(str(value), variables) for key, value in environment.items()}
        env["INSTANCE_PATH"] = str(tmp_path)  # the shared volume
        configs.append(Config.from_env(env))
        with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
            interpolate(environment["DATABASE_URL"], {"SECRET_KEY": variables["SECRET_KEY"]})
    first, second = configs
    assert first.TRUSTED_PROXIES == second.TRUSTED_PROXIES == 1
    assert first.PUBLIC_BASE_URL == "http://localhost:5000"
    # One Redis namespace: the processes share presence, limits, socket routing and caches.
    assert first.REDIS_URL == "redis://redis:6379/0"
    assert first.REDIS_NAMESPACE == second.REDIS_NAMESPACE
    assert first.UPLOAD_FOLDER == second.UPLOAD_FOLDER == str(tmp_path / "uploads")
    assert first.VAPID_PRIVATE_KEY == second.VAPID_PRIVATE_KEY
    assert first.SECRET_KEY == second.SECRET_KEY


def test_compose_migrates_once_before_the_processes_start(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["flask", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"disable": True}
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in PROCESSES:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The image's start command migrates unless PARLEY_MIGRATE=false: only `migrate` does.
    migrating = [
        name
        for name, service in parley_services(compose).items()
        if "command" in service or service["environment"].get("PARLEY_MIGRATE", "true") != "false"
    ]
    assert migrating == ["migrate"]


def test_compose_publishes_nginx_alone_on_loopback(compose):
    published = {
        name: service["ports"] for name, service in compose["services"].items() if "ports" in service
    }
    assert published == {"nginx": ["127.0.0.1:5000:80"]}


def test_compose_nginx_runs_the_deployment_files(compose):
    nginx = compose["services"]["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert sorted(nginx["volumes"]) == [
        "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro",
        "./deploy/nginx/proxy.conf:/etc/nginx/parley/proxy.conf:ro",
    ]
    assert "include /etc/nginx/parley/proxy.conf;" in NGINX_CONF.read_text()
    # nginx looks the processes' names up when it starts.
    for name in PROCESSES:
        assert nginx["depends_on"][name]["condition"] == "service_healthy"


def test_compose_checks_the_health_of_parley_and_its_services(compose):
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in services["nginx"]["healthcheck"]["test"][-1]
    for name in PROCESSES:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert "/healthz" in test[3]
        assert "curl" not in json.dumps(services[name]["healthcheck"])
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def nginx_blocks(text: str) -> dict[tuple[str, str], list[str]]:
    """The `upstream` and `map` blocks of an nginx configuration, statement by statement."""
    text = re.sub(r"#[^\n]*", "", text)
    blocks = {}
    for kind, name, body in re.findall(r"\b(upstream|map)\s+([^{;]+?)\s*\{([^{}]*)\}", text):
        statements = [" ".join(statement.split()) for statement in body.split(";") if statement.strip()]
        blocks[(kind, " ".join(name.split()))] = statements
    return blocks


def test_nginx_routes_to_the_ports_the_processes_listen_on(compose):
    blocks = nginx_blocks(NGINX_CONF.read_text())
    assert blocks[("upstream", "parley")] == [f"server {name}:{port_of(compose, name)}" for name in PROCESSES]
    routes = blocks[("map", "$cookie_parley_route $parley_upstream")]
    answered = blocks[("map", "$upstream_addr $parley_route_out")]
    for name in PROCESSES:
        port, route = port_of(compose, name), name.rsplit("-", 1)[1]
        own = blocks[("upstream", f"parley_{route}")]
        assert own[0] == f"server {name}:{port} max_fails=1 fail_timeout=10s"
        assert sorted(own[1:]) == [
            f"server {other}:{port_of(compose, other)} backup" for other in PROCESSES if other != name
        ]
        assert f'"{route}" parley_{route}' in routes
        assert f'"~:{port}$" "{route}"' in answered


def test_the_compose_nginx_routes_as_the_tests_cluster_does(compose, tmp_path):
    """tests/cluster.py generates this routing for its processes: the multi-process tests run it."""
    ports = {name.rsplit("-", 1)[1]: port_of(compose, name) for name in PROCESSES}
    ours = nginx_blocks(re.sub(r"\bparley-\d+:", "127.0.0.1:", NGINX_CONF.read_text()))
    assert ours == nginx_blocks(nginx_config(tmp_path, free_port(), ports))


def compose_nginx_config_here(proxy_conf: Path = PROXY_CONF) -> str:
    """deploy/nginx/nginx.conf as compose's nginx reads it, the containers' names pointing at this
    machine and the include at proxy.conf (mounted there in the container)."""
    text = re.sub(r"\bparley-\d+:", "127.0.0.1:", NGINX_CONF.read_text())
    return text.replace("/etc/nginx/parley/proxy.conf", str(proxy_conf))


def nginx_check(config: str, directory: Path) -> subprocess.CompletedProcess:
    path = directory / "nginx.conf"
    path.write_text(config)
    where = f"pid {directory / 'nginx.pid'}; error_log {directory / 'error.log'};"
    command = [NGINX, "-t", "-p", str(directory), "-c", str(path), "-g", where]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_the_compose_nginx_config_is_valid_for_nginx(tmp_path):
    result = nginx_check(compose_nginx_config_here(), tmp_path)
    assert result.returncode == 0, result.stderr
    # The check bites: a bad value in the proxy rules stops nginx.
    broken = tmp_path / "proxy.conf"
    broken.write_text(PROXY_CONF.read_text().replace("proxy_buffering off;", "proxy_buffering sometimes;"))
    result = nginx_check(compose_nginx_config_here(broken), tmp_path)
    assert result.returncode != 0
    assert "proxy_buffering" in result.stderr


def self_signed(directory: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.write_bytes(pem)
    return cert_path, key_path


def test_the_tls_server_nginx_conf_shows_is_valid_for_nginx(tmp_path):
    """The commented `server` block deploy/nginx/nginx.conf tells production to add."""
    text = compose_nginx_config_here()
    example = re.search(r"^ *#   server \{\n(?: *#   .*\n)*? *#   \}\n", text, re.MULTILINE)
    assert example, "nginx.conf shows no TLS server block"
    block = re.sub(r"^ *#   ", "    ", example.group(0), flags=re.MULTILINE)
    assert "listen 443 ssl;" in block
    cert_path, key_path = self_signed(tmp_path)
    block = block.replace("/etc/nginx/tls/fullchain.pem", str(cert_path))
    block = block.replace("/etc/nginx/tls/privkey.pem", str(key_path))
    result = nginx_check(text.replace(example.group(0), block), tmp_path)
    assert result.returncode == 0, result.stderr


def dockerfile_instruction(name: str) -> list[str]:
    text = (BASE_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} .*?(\[.*\])\s*$", text, re.MULTILINE)
    assert match, f"the Dockerfile has no {name}"
    return json.loads(match.group(1))


def dockerfile_healthcheck() -> list[str]:
    return dockerfile_instruction("HEALTHCHECK")


def run_healthcheck(command: list[str], port: int) -> int:
    assert command[0] == "python"
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=20).returncode


def test_the_image_healthcheck_asks_healthz(live_server):
    command = dockerfile_healthcheck()
    assert run_healthcheck(command, live_server.port) == 0
    assert run_healthcheck(command, free_port()) != 0


def test_the_compose_healthcheck_runs_with_the_image_python(compose, live_server):
    command = compose["services"]["parley-1"]["healthcheck"]["test"][1:]
    assert run_healthcheck(command, live_server.port) == 0
    assert run_healthcheck(command, free_port()) != 0


@pytest.mark.parametrize(
    ("settings", "status", "calls"),
    [
        ({}, 0, ["flask db upgrade", "gunicorn"]),
        ({"PARLEY_MIGRATE": "true"}, 0, ["flask db upgrade", "gunicorn"]),
        ({"PARLEY_MIGRATE": "false"}, 0, ["gunicorn"]),
        ({"FLASK_STATUS": "3"}, 3, ["flask db upgrade"]),
        ({"PARLEY_MIGRATE": "no"}, 2, []),
    ],
    ids=["by-default", "when-true", "not-when-false", "not-after-a-failed-migration", "bad-value"],
)
def test_the_image_migrates_then_serves_unless_told_not_to(tmp_path, settings, status, calls):
    """The image's start command, with stand-ins for flask and gunicorn that record their calls."""
    log = tmp_path / "calls"
    for name, exit_status in (("flask", "${FLASK_STATUS:-0}"), ("gunicorn", "0")):
        stand_in = tmp_path / name
        stand_in.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit {exit_status}\n')
        stand_in.chmod(0o755)
    command = dockerfile_instruction("CMD")
    assert command[:2] == ["sh", "-c"]
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "PORT": "5002", **settings}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == status, result.stderr
    made = log.read_text().splitlines() if log.exists() else []
    assert [call if call.startswith("flask") else call.split()[0] for call in made] == calls
    if "gunicorn" in calls:
        assert "--bind 0.0.0.0:5002 wsgi:app" in made[-1]
    if status == 2:
        assert "PARLEY_MIGRATE must be true or false, got 'no'" in result.stderr


def _vendored_files() -> set[str]:
    """Every file under static/vendor/ that a template or the client loads."""
    found: set[str] = set()
    sources = [*BASE_DIR.glob("templates/**/*.html"), *BASE_DIR.glob("app/static/js/**/*.js")]
    for path in sources:
        found.update(re.findall(r"vendor/([A-Za-z0-9_./-]+\.(?:js|css))", path.read_text(encoding="utf-8")))
    return found


def test_the_image_carries_every_vendored_library_the_pages_load():
    dockerfile = (BASE_DIR / "Dockerfile").read_text(encoding="utf-8")
    vendored = _vendored_files()
    assert "socket.io.esm.min.js" in vendored
    for name in vendored:
        assert Path(name).name in dockerfile, f"the Dockerfile does not copy vendor/{name}"


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = (BASE_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_base_images_are_build_arguments_defaulting_to_maintained_images():
    """`make image-check` builds the same Dockerfile on local bases (tools/image_check.py)."""
    lines = dockerfile_lines()
    arguments = dict(line.split(None, 1)[1].split("=", 1) for line in lines if line.startswith("ARG "))
    assert arguments["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    node = re.fullmatch(r"node:(\d+)-bookworm-slim", arguments["NODE_IMAGE"])
    assert node, arguments["NODE_IMAGE"]
    # An LTS line (even) still maintained: 20 reached its end of life in April 2026.
    assert int(node.group(1)) % 2 == 0 and int(node.group(1)) >= 22
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM ${NODE_IMAGE} AS vendor", "FROM ${PYTHON_IMAGE}"]
    # Declared before the first FROM, so that both FROM lines can use them.
    assert lines.index(stages[0]) > max(i for i, line in enumerate(lines) if line.startswith("ARG "))


def test_the_image_installs_into_a_virtualenv_first_in_path():
    """Debian's python3 refuses `pip install` into itself; the official image's does not care. Both
    have `python3 -m venv`, and the venv gives `python`, `flask`, `gunicorn` to what follows."""
    lines = dockerfile_lines()
    runs = [line for line in lines if line.startswith("RUN ")]
    assert runs[1].startswith("RUN python3 -m venv /opt/venv && pip install -r requirements.txt")
    env = next(line for line in lines if line.startswith("ENV ") and "PATH=" in line)
    assert "PATH=/opt/venv/bin:$PATH" in env.split()


def test_the_image_user_owns_nothing_but_data():
    lines = dockerfile_lines()
    useradd = next(line for line in lines if "useradd" in line)
    assert "--uid 10001" in useradd
    assert "--no-create-home" in useradd and "--create-home" not in useradd.replace("--no-create-home", "")
    assert re.findall(r"chown (?:-R )?\S+ (\S+)", useradd) == ["/data"]
    assert [line for line in lines if line.startswith("USER ")] == ["USER parley"]
    # Everything copied in is root's: no --chown on a COPY.
    assert not any("--chown" in line for line in lines if line.startswith("COPY "))


def test_make_image_check_runs_the_check_and_is_not_part_of_make_test():
    makefile = (BASE_DIR / "Makefile").read_text()
    target = re.search(r"^image-check:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target and "tools/image_check.py" in target.group(1)
    tests = re.search(r"^test:(.*)$", makefile, re.MULTILINE).group(1)
    assert "image-check" not in tests
