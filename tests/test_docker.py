"""The Docker image and compose file: no secret in the image, settings reach the container,
health is checked, and Parley is published on the loopback interface only.

No Docker daemon is needed: the files are read as Docker reads them, and the healthcheck
command is run against a live server.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys

import pytest
import yaml

from config import BASE_DIR
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
        "bench/__main__.py",
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


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def test_compose_passes_every_setting_in_dot_env_to_parley(compose):
    parley = compose["services"]["parley"]
    assert {"path": ".env", "required": False} in parley["env_file"]
    environment = parley["environment"]
    # What compose sets itself wins over .env, and keeps the image's layout.
    assert environment["PARLEY_ENV"] == "production"
    assert environment["INSTANCE_PATH"] == "/data"
    assert environment["PORT"] == "5000"
    assert environment["REDIS_URL"].startswith("redis://redis:")


def test_compose_publishes_parley_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), (name, mapping)
    assert compose["services"]["parley"]["ports"] == ["127.0.0.1:5000:5000"]


def test_compose_checks_the_health_of_parley_and_its_services(compose):
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    test = services["parley"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "/healthz" in test[3]
    assert "curl" not in json.dumps(services["parley"]["healthcheck"])
    depends = services["parley"]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def dockerfile_healthcheck() -> list[str]:
    text = (BASE_DIR / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no HEALTHCHECK"
    return json.loads(match.group(1))


def run_healthcheck(command: list[str], port: int) -> int:
    assert command[0] == "python"
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=20).returncode


def test_the_image_healthcheck_asks_healthz(live_server):
    command = dockerfile_healthcheck()
    assert run_healthcheck(command, live_server.port) == 0
    assert run_healthcheck(command, free_port()) != 0


def test_the_compose_healthcheck_runs_with_the_image_python(compose, live_server):
    command = compose["services"]["parley"]["healthcheck"]["test"][1:]
    script = command[2].replace("127.0.0.1:5000", f"127.0.0.1:{live_server.port}")
    assert run_healthcheck([command[0], "-c", script], live_server.port) == 0
    assert run_healthcheck([command[0], "-c", command[2].replace("5000", str(free_port()))], 0) != 0
