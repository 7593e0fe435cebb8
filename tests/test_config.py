"""Configuration: read once, checked, and never a shipped secret."""

from __future__ import annotations

import pytest

from config import Config, ConfigError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root:root@localhost/im"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("SESSION_DAYS", "thirty"),
        ("SESSION_DAYS", "0"),
        ("MAX_IMAGE_BYTES", "-1"),
        ("RATELIMIT_ENABLED", "maybe"),
        ("LOGIN_RATE_LIMIT", "lots"),
        ("PARLEY_ENV", "staging"),
        ("LOG_LEVEL", "LOUD"),
        ("SECRET_KEY", "short"),
        ("PUBLIC_BASE_URL", "parley.example.com"),
        ("SOCKET_ROUTING", "everywhere"),
        ("SOCKET_FANOUT_ROOMS", "0"),
        ("JOB_WORKER", "maybe"),
        ("JOB_MAX_ATTEMPTS", "0"),
        ("JOB_CONCURRENCY", "many"),
        ("MUTE_CHECK_SECONDS", "0"),
    ],
)
def test_a_malformed_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), name: value})
    assert caught.value.name == name
    assert name in str(caught.value)


def test_a_lone_github_credential_names_the_missing_one(tmp_path):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "GITHUB_CLIENT_ID": "only-the-id"})
    assert caught.value.name == "GITHUB_CLIENT_SECRET"


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    first = Config.from_env({"INSTANCE_PATH": str(tmp_path)}).SECRET_KEY
    second = Config.from_env({"INSTANCE_PATH": str(tmp_path)}).SECRET_KEY
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    other = Config.from_env({"INSTANCE_PATH": str(tmp_path / "elsewhere")}).SECRET_KEY
    assert other != first


def test_production_needs_an_explicit_secret_key(tmp_path):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "PARLEY_ENV": "production"})
    assert caught.value.name == "SECRET_KEY"
    config = Config.from_env(
        {"INSTANCE_PATH": str(tmp_path), "PARLEY_ENV": "production", "SECRET_KEY": "k" * 40}
    )
    assert config.SESSION_COOKIE_SECURE is True


def test_defaults_are_a_sqlite_file_in_the_instance_folder(tmp_path):
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert f"sqlite:///{tmp_path / 'parley.db'}" == config.SQLALCHEMY_DATABASE_URI
    assert config.REDIS_URL is None
    assert config.RATELIMIT_STORAGE_URI == "memory://"
    assert config.SESSION_COOKIE_HTTPONLY is True
    assert config.SESSION_COOKIE_SAMESITE == "Lax"


def test_postgresql_urls_use_the_gevent_friendly_psycopg_driver(tmp_path):
    config = Config.from_env(
        {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "postgresql://parley@db/parley"}
    )
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://parley@db/parley"


def test_redis_url_moves_rate_limits_to_redis(tmp_path):
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert config.RATELIMIT_STORAGE_URI == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://chat.example.com/", "https://chat.example.com"),
        ("https://chat.example.com", "https://chat.example.com"),
        ("HTTPS://Chat.Example.com:443/", "https://chat.example.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_public_base_url_becomes_the_origin_browsers_send(tmp_path, value, origin):
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path), "PUBLIC_BASE_URL": value})
    assert origin == config.PUBLIC_BASE_URL


@pytest.mark.parametrize(
    "value",
    [
        "https://chat.example.com/parley",
        "https://chat.example.com/parley/",
        "https://chat.example.com/?x=1",
        "https://chat.example.com/?",
        "https://chat.example.com/#top",
        "https://user:pw@chat.example.com",
        "https://chat.example.com:99999",
    ],
)
def test_public_base_url_with_a_path_or_query_stops_start_up(tmp_path, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "PUBLIC_BASE_URL": value})
    assert caught.value.name == "PUBLIC_BASE_URL"
    assert "PUBLIC_BASE_URL" in str(caught.value)


@pytest.mark.parametrize("public_url", ["http://parley.example:8080/", "http://parley.example:8080"])
def test_a_socket_from_the_public_origin_is_accepted(make_app, public_url):
    """socket.io compares the browser's Origin header with PUBLIC_BASE_URL exactly."""
    application = make_app(PUBLIC_BASE_URL=public_url)
    client = application.test_client()
    handshake = "/socket.io/?EIO=4&transport=polling"
    accepted = client.get(handshake, headers={"Origin": "http://parley.example:8080"})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    assert accepted.get_data(as_text=True).startswith('0{"sid"')
    refused = client.get(handshake, headers={"Origin": "http://elsewhere.example:8080"})
    assert refused.status_code == 400
