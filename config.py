"""Parley's configuration, read once at start from the environment (and `.env`).

Every setting is an environment variable; `Config.from_env()` parses and checks
them all and raises `ConfigError` naming the first bad one, so a typo stops
start-up instead of surfacing as a strange failure later. No secret has a
default in code: in development a `SECRET_KEY` is generated once and kept in
`instance/`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

BASE_DIR = Path(__file__).resolve().parent


class ConfigError(RuntimeError):
    """A configuration variable is missing or malformed."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"configuration error: {name} {problem}")
        self.name = name


def _environ() -> dict[str, str]:
    """The process environment over the optional `.env` file (the environment wins)."""
    merged = {k: v for k, v in dotenv_values(BASE_DIR / ".env").items() if v is not None}
    merged.update(os.environ)
    return merged


class _Reader:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def int(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be an integer, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(name, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def rate(self, name: str, default: str) -> str:
        from limits import parse_many

        raw = self.str(name, default)
        try:
            parse_many(raw)
        except ValueError:
            raise ConfigError(name, f"must be a rate such as '10 per minute', got {raw!r}") from None
        return raw

    def url(self, name: str, schemes: set[str], default: str | None = None) -> str | None:
        raw = self.str(name, default)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in schemes:
            allowed = ", ".join(sorted(schemes))
            raise ConfigError(name, f"must be a URL with one of the schemes {allowed}, got {raw!r}")
        if parts.scheme not in {"sqlite"} and not parts.netloc:
            raise ConfigError(name, f"must name a host, got {raw!r}")
        return raw

    def origin(self, name: str) -> str | None:
        """A browser origin, scheme://host[:port]: a trailing slash is dropped; a path, query or
        fragment is refused (socket.io compares the Origin header with this exactly)."""
        raw = self.url(name, {"http", "https"})
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.path not in {"", "/"} or parts.query or parts.fragment or "?" in raw or "#" in raw:
            raise ConfigError(name, f"must be scheme://host[:port] with no path or query, got {raw!r}")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(name, f"must not carry a user name or password, got {raw!r}")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(name, f"has an invalid port, got {raw!r}") from None
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        default_port = {"http": 80, "https": 443}[parts.scheme.lower()]
        suffix = f":{port}" if port is not None and port != default_port else ""
        return f"{parts.scheme.lower()}://{host}{suffix}"


DATABASE_SCHEMES = {"sqlite", "postgresql", "postgresql+psycopg"}


def normalise_database_url(url: str) -> str:
    """Route PostgreSQL through psycopg 3, which cooperates with gevent."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def default_redis_namespace(database_url: str, redis_url: str | None) -> str:
    """`parley-` and a short hash of the database (scheme, user, host, port, name; never the
    password) and the Redis DB number: two deployments sharing one Redis server differ without
    configuration, and every process of one deployment agrees."""
    parts = urlsplit(normalise_database_url(database_url))
    if parts.scheme == "sqlite":
        path = database_url.split(":///", 1)[-1]
        where = "sqlite:" + (path if path in {"", ":memory:"} else os.path.abspath(path))
    else:
        host = (parts.hostname or "").lower()
        where = f"{parts.scheme}://{parts.username or ''}@{host}:{parts.port or ''}{parts.path}"
    redis_db = "0"
    if redis_url:
        redis_parts = urlsplit(redis_url)
        query_db = re.search(r"(?:^|&)db=(\d+)", redis_parts.query)
        path_db = redis_parts.path.strip("/") if redis_parts.scheme != "unix" else ""
        redis_db = query_db.group(1) if query_db else (path_db if path_db.isdigit() else "0")
    digest = hashlib.sha256(f"{where}|redis-db={int(redis_db)}".encode()).hexdigest()
    return f"parley-{digest[:12]}"


def _secret_key(reader: _Reader, instance: Path, production: bool) -> str:
    key = reader.str("SECRET_KEY")
    if key is not None:
        if len(key) < 16:
            raise ConfigError("SECRET_KEY", "must be at least 16 characters")
        return key
    if production:
        raise ConfigError("SECRET_KEY", "must be set when PARLEY_ENV=production")
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _vapid_pem(raw: str) -> str:
    """A P-256 private key given as PEM, or as its 32 raw bytes in base64url (as web-push tools
    print it), in PKCS#8 PEM; ValueError if it is neither."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = raw.strip().replace("\\n", "\n")
    try:
        if "-----BEGIN" in raw:
            key = serialization.load_pem_private_key(raw.encode(), password=None)
        else:
            scalar = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            if len(scalar) != 32:
                raise ValueError("not 32 bytes")
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    except Exception as error:  # the parsers raise ValueError, TypeError or UnsupportedAlgorithm
        raise ValueError(str(error)) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 key")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def _vapid_private_key(reader: _Reader, instance: Path) -> str:
    """The key Web Push requests are signed with (VAPID, RFC 8292): `VAPID_PRIVATE_KEY`, else one
    generated once into `instance/vapid_private.pem`. Processes starting together agree: the file
    is linked into place only if none is there yet, and every process reads the one that won."""
    raw = reader.str("VAPID_PRIVATE_KEY")
    if raw is not None:
        try:
            return _vapid_pem(raw)
        except ValueError:
            problem = "must be a P-256 private key: PEM, or 32 bytes in base64url"
            raise ConfigError("VAPID_PRIVATE_KEY", problem) from None
    path = instance / "vapid_private.pem"
    if not path.exists():
        from cryptography.hazmat.primitives.asymmetric import ec

        instance.mkdir(parents=True, exist_ok=True)
        scalar = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
        draft = path.with_name(f".vapid_private.{os.getpid()}.{secrets.token_hex(4)}")
        draft.write_text(_vapid_pem(_b64url(scalar.to_bytes(32, "big"))))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    try:
        return _vapid_pem(path.read_text())
    except ValueError:
        raise ConfigError("VAPID_PRIVATE_KEY", f"unset, and {path} holds no P-256 private key") from None


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


PUSH_HOST_PATTERN = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def _push_allowed_hosts(reader: _Reader) -> tuple[str, ...]:
    raw = reader.str("PUSH_ALLOWED_HOSTS", "")
    hosts = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    for host in hosts:
        if not PUSH_HOST_PATTERN.fullmatch(host):
            raise ConfigError("PUSH_ALLOWED_HOSTS", f"must be a comma list of host[:port], got {host!r}")
    return hosts


def _vapid_subject(reader: _Reader, public_url: str | None) -> str:
    """Who push services may contact about Parley's pushes: a mailto: or https: URL."""
    subject = reader.str("VAPID_SUBJECT")
    if subject is not None:
        if not re.fullmatch(r"mailto:[^@\s]+@[^@\s]+|https://[^\s/]+\S*", subject):
            raise ConfigError("VAPID_SUBJECT", f"must be a mailto: or https:// URL, got {subject!r}")
        return subject
    if public_url and public_url.startswith("https://"):
        return public_url
    host = urlsplit(public_url).hostname if public_url else None
    return f"mailto:admin@{host or 'localhost'}"


def _rsa_public_key(reader: _Reader) -> str | None:
    """`JWT_RS256_PUBLIC_KEY`: an RSA public key as PEM text (newlines may be written `\\n`) or
    the path of a PEM file, read once at start; returned as PEM text."""
    raw = reader.str("JWT_RS256_PUBLIC_KEY")
    if raw is None:
        return None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if "-----BEGIN" in raw:
        text = raw.replace("\\n", "\n")
    else:
        try:
            text = Path(raw).read_text()
        except (OSError, UnicodeDecodeError) as error:
            problem = f"is neither PEM text nor a readable file: {error}"
            raise ConfigError("JWT_RS256_PUBLIC_KEY", problem) from None
    try:
        key = serialization.load_pem_public_key(text.strip().encode())
    except Exception:  # ValueError, TypeError or UnsupportedAlgorithm
        key = None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ConfigError("JWT_RS256_PUBLIC_KEY", "must be an RSA public key of at least 2048 bits in PEM")
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


class Config:
    """All settings, as attributes Flask and the extensions read."""

    TESTING = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        reader = _Reader(_environ() if env is None else env)
        self = cls()
        environment = reader.str("PARLEY_ENV", "development")
        if environment not in {"development", "production", "testing"}:
            raise ConfigError("PARLEY_ENV", "must be development, production or testing")
        self.PARLEY_ENV = environment
        production = environment == "production"
        self.TESTING = environment == "testing"

        instance = Path(reader.str("INSTANCE_PATH", str(BASE_DIR / "instance")))
        self.INSTANCE_PATH = str(instance)
        self.SECRET_KEY = _secret_key(reader, instance, production)

        default_db = f"sqlite:///{instance / 'parley.db'}"
        database_url = reader.url("DATABASE_URL", DATABASE_SCHEMES, default_db)
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(database_url)
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        if self.SQLALCHEMY_DATABASE_URI.startswith("sqlite"):
            busy = reader.int("SQLITE_BUSY_TIMEOUT_MS", 5000, minimum=0)
            self.SQLITE_BUSY_TIMEOUT_MS = busy
            self.SQLALCHEMY_ENGINE_OPTIONS = {"connect_args": {"timeout": busy / 1000}}
        else:
            self.SQLALCHEMY_ENGINE_OPTIONS["pool_size"] = reader.int("DATABASE_POOL_SIZE", 10, 1)
            self.SQLALCHEMY_ENGINE_OPTIONS["max_overflow"] = reader.int("DATABASE_MAX_OVERFLOW", 20)

        self.REDIS_URL = reader.url("REDIS_URL", {"redis", "rediss", "unix"})
        namespace = reader.str("REDIS_NAMESPACE") or default_redis_namespace(database_url, self.REDIS_URL)
        if not NAMESPACE_PATTERN.fullmatch(namespace):
            raise ConfigError("REDIS_NAMESPACE", f"must be 1-64 of A-Z a-z 0-9 _ . : -, got {namespace!r}")
        self.REDIS_NAMESPACE = namespace
        self.PRESENCE_TTL_SECONDS = reader.int("PRESENCE_TTL_SECONDS", 40, 3, 3600)
        # With Redis: "targeted" (each process hears only the rooms of its own sockets,
        # app/socket_manager.py) or "broadcast" (Flask-SocketIO's queue: every process hears all).
        self.SOCKET_ROUTING = reader.str("SOCKET_ROUTING") or "targeted"
        if self.SOCKET_ROUTING not in ("targeted", "broadcast"):
            raise ConfigError("SOCKET_ROUTING", f"must be targeted or broadcast, got {self.SOCKET_ROUTING!r}")
        # An emit to more user rooms than this is one publish every process reads (its header
        # names the rooms); to fewer, one publish per room, heard only where the room has sockets.
        self.SOCKET_FANOUT_ROOMS = reader.int("SOCKET_FANOUT_ROOMS", 8, 1, 10000)
        self.MAX_SOCKETS_PER_DEVICE = reader.int("MAX_SOCKETS_PER_DEVICE", 8, 1, 10000)
        self.MAX_SOCKETS_PER_USER = reader.int("MAX_SOCKETS_PER_USER", 32, 1, 100000)
        self.PUBLIC_BASE_URL = reader.origin("PUBLIC_BASE_URL")
        self.TRUSTED_PROXIES = reader.int("TRUSTED_PROXIES", 0, 0, 5)

        self.UPLOAD_FOLDER = reader.str("UPLOAD_FOLDER", str(instance / "uploads"))
        if Path(self.UPLOAD_FOLDER).resolve().is_relative_to(BASE_DIR / "app" / "static"):
            raise ConfigError("UPLOAD_FOLDER", "must be outside the static folder (uploads are checked)")
        self.MAX_IMAGE_PIXELS = reader.int("MAX_IMAGE_PIXELS", 40_000_000, 1, 89_000_000)
        # Frames × pixels of one animation, checked before any frame is decoded.
        self.MAX_ANIMATION_PIXELS = reader.int("MAX_ANIMATION_PIXELS", 100_000_000, 1, 1_000_000_000)
        # Uploads are inspected in worker processes, apart from sign-ins (see app/concurrency.py).
        self.MEDIA_WORKERS = reader.int("MEDIA_WORKERS", 2, 1, 64)
        self.MEDIA_QUEUE = reader.int("MEDIA_QUEUE", 8, 1, 10_000)
        self.MEDIA_UPLOADS_PER_USER = reader.int("MEDIA_UPLOADS_PER_USER", 2, 1, 100)
        self.MEDIA_TIMEOUT = reader.int("MEDIA_TIMEOUT", 30, 1, 3600)
        self.MEDIA_CPU_SECONDS = reader.int("MEDIA_CPU_SECONDS", 15, 1, 3600)
        self.MEDIA_WORKER_MEMORY_MB = reader.int("MEDIA_WORKER_MEMORY_MB", 768, 256, 1 << 20)
        self.UPLOAD_RATE_LIMIT = reader.rate("UPLOAD_RATE_LIMIT", "30 per minute")
        self.MAX_IMAGE_BYTES = reader.int("MAX_IMAGE_BYTES", 10 * 1024 * 1024, 1)
        self.MAX_VIDEO_BYTES = reader.int("MAX_VIDEO_BYTES", 100 * 1024 * 1024, 1)
        self.MAX_FILE_BYTES = reader.int("MAX_FILE_BYTES", 50 * 1024 * 1024, 1)
        # Voice messages: the largest file, and the longest recording (the browser sends it when
        # this length is reached; the server refuses a longer audio track).
        self.MAX_AUDIO_BYTES = reader.int("MAX_AUDIO_BYTES", 10 * 1024 * 1024, 1)
        self.VOICE_MAX_SECONDS = reader.int("VOICE_MAX_SECONDS", 60, 1, 3600)
        largest = max(self.MAX_IMAGE_BYTES, self.MAX_VIDEO_BYTES, self.MAX_AUDIO_BYTES, self.MAX_FILE_BYTES)
        self.MAX_CONTENT_LENGTH = largest + 64 * 1024
        # Every other body (JSON, forms) is refused above this size before it is read.
        self.MAX_JSON_BYTES = reader.int("MAX_JSON_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024)

        self.GITHUB_CLIENT_ID = reader.str("GITHUB_CLIENT_ID")
        self.GITHUB_CLIENT_SECRET = reader.str("GITHUB_CLIENT_SECRET")
        if bool(self.GITHUB_CLIENT_ID) != bool(self.GITHUB_CLIENT_SECRET):
            missing = "GITHUB_CLIENT_SECRET" if self.GITHUB_CLIENT_ID else "GITHUB_CLIENT_ID"
            raise ConfigError(missing, "must be set together with the other GitHub credential")
        self.GITHUB_BASE_URL = reader.url("GITHUB_BASE_URL", {"http", "https"})
        self.GITHUB_TIMEOUT = reader.int("GITHUB_TIMEOUT", 10, 1, 120)
        if production and reader.str("OAUTHLIB_INSECURE_TRANSPORT"):
            raise ConfigError("OAUTHLIB_INSECURE_TRANSPORT", "must not be set when PARLEY_ENV=production")
        self.UNIT_API_KEY = reader.str("UNIT_API_KEY")
        self.UNIT_SECRET_KEY = reader.str("UNIT_SECRET_KEY")
        self.UNIT_SERVICE_ID = reader.str("UNIT_SERVICE_ID")
        unit_keys = ("UNIT_API_KEY", "UNIT_SECRET_KEY", "UNIT_SERVICE_ID")
        unit_set = [name for name in unit_keys if getattr(self, name)]
        if unit_set and len(unit_set) < len(unit_keys):
            missing = next(name for name in unit_keys if name not in unit_set)
            raise ConfigError(missing, "must be set together with the other UNIT credentials")
        self.UNIT_BASE_URL = reader.url("UNIT_BASE_URL", {"http", "https"}, "https://aip.baidubce.com")
        self.BOT_ENABLED = reader.bool("BOT_ENABLED", True)
        self.BOT_NICKNAME = reader.str("BOT_NICKNAME", "Parley 助手")
        if len(self.BOT_NICKNAME) > 64:
            raise ConfigError("BOT_NICKNAME", "must be at most 64 characters")
        self.BOT_REPLY_TIMEOUT = reader.int("BOT_REPLY_TIMEOUT", 5, 1, 60)

        # Web Push (app/push/): the VAPID key and subject, and how pushes are sent.
        self.VAPID_PRIVATE_KEY = _vapid_private_key(reader, instance)
        self.VAPID_SUBJECT = _vapid_subject(reader, self.PUBLIC_BASE_URL)
        self.PUSH_ALLOWED_HOSTS = _push_allowed_hosts(reader)
        self.PUSH_TIMEOUT_SECONDS = reader.int("PUSH_TIMEOUT_SECONDS", 5, 1, 60)
        self.PUSH_WORKERS = reader.int("PUSH_WORKERS", 8, 1, 256)
        self.PUSH_QUEUE_SIZE = reader.int("PUSH_QUEUE_SIZE", 10_000, 1, 1_000_000)

        # The server API (app/server_api/): requests per API key.
        self.API_KEY_RATE_LIMIT = reader.rate("API_KEY_RATE_LIMIT", "1200 per minute")
        # Signing a company's users in (app/auth/tickets.py): single-use tokens, company-signed JWTs.
        self.SIGN_IN_TOKEN_SECONDS = reader.int("SIGN_IN_TOKEN_SECONDS", 300, 10, 3600)
        self.JWT_HS256_SECRET = reader.str("JWT_HS256_SECRET")
        if self.JWT_HS256_SECRET is not None and len(self.JWT_HS256_SECRET) < 32:
            raise ConfigError("JWT_HS256_SECRET", "must be at least 32 characters")
        self.JWT_RS256_PUBLIC_KEY = _rsa_public_key(reader)
        self.JWT_ISSUER = reader.str("JWT_ISSUER")
        self.JWT_AUDIENCE = reader.str("JWT_AUDIENCE")
        self.JWT_CREATE_USERS = reader.bool("JWT_CREATE_USERS", False)

        session_days = reader.int("SESSION_DAYS", 30, 1, 3650)
        self.DEVICE_SESSION_LIFETIME = timedelta(days=session_days)
        self.PERMANENT_SESSION_LIFETIME = self.DEVICE_SESSION_LIFETIME
        self.SESSION_COOKIE_NAME = "parley_session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = reader.bool("SESSION_COOKIE_SECURE", production)
        self.REMEMBER_COOKIE_HTTPONLY = True

        self.RATELIMIT_ENABLED = reader.bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        # The storage's own prefix covers every counter, also those hit without the decorator.
        self.RATELIMIT_STORAGE_OPTIONS = {"key_prefix": f"{self.REDIS_NAMESPACE}:limits"}
        self.RATELIMIT_KEY_PREFIX = self.REDIS_NAMESPACE
        # While Redis is away, decorated limits count in this process's memory (as app/ratelimit.py does).
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = bool(self.REDIS_URL)
        self.RATELIMIT_HEADERS_ENABLED = True
        # Sign-in attempts per client address; failed ones per (username, address); failed ones per
        # username from every address, past which only addresses that have not failed may try.
        self.LOGIN_RATE_LIMIT = reader.rate("LOGIN_RATE_LIMIT", "10 per minute")
        self.LOGIN_FAILURE_LIMIT = reader.rate("LOGIN_FAILURE_LIMIT", "10 per 15 minutes")
        self.LOGIN_ACCOUNT_FAILURE_LIMIT = reader.rate("LOGIN_ACCOUNT_FAILURE_LIMIT", "100 per hour")
        self.GROUP_MEMBER_LIMIT = reader.int("GROUP_MEMBER_LIMIT", 500, 2, 100000)
        self.MESSAGE_RATE_LIMIT = reader.rate("MESSAGE_RATE_LIMIT", "20 per second")
        # Message and contact searches per user (over all their devices): heavier than a read.
        self.SEARCH_RATE_LIMIT = reader.rate("SEARCH_RATE_LIMIT", "60 per minute")
        # How long a sender may recall (2 minutes) and edit (48 hours) their own message.
        self.RECALL_WINDOW_SECONDS = reader.int("RECALL_WINDOW_SECONDS", 120, 0, 365 * 86400)
        self.EDIT_WINDOW_SECONDS = reader.int("EDIT_WINDOW_SECONDS", 48 * 3600, 0, 365 * 86400)
        # The right to speak kept in memory per process (app/speak_cache.py), and its size.
        self.GROUP_COMMIT = reader.bool("GROUP_COMMIT", True)
        self.GROUP_COMMIT_BATCH = reader.int("GROUP_COMMIT_BATCH", 64, 1, 1000)
        self.SPEAK_CACHE = reader.bool("SPEAK_CACHE", True)
        self.SPEAK_CACHE_SIZE = reader.int("SPEAK_CACHE_SIZE", 20_000, 0, 10_000_000)
        self.REGISTER_RATE_LIMIT = reader.rate("REGISTER_RATE_LIMIT", "30 per hour")
        self.PASSWORD_HASH_TIME_COST = reader.int("PASSWORD_HASH_TIME_COST", 3, 1, 20)
        self.PASSWORD_HASH_MEMORY_KIB = reader.int("PASSWORD_HASH_MEMORY_KIB", 65536, 8192, 4194304)
        self.WTF_CSRF_TIME_LIMIT = None
        self.JSON_SORT_KEYS = False
        # The server moves long-lived objects out of the garbage collector this often (0: never).
        self.GC_FREEZE_SECONDS = reader.int("GC_FREEZE_SECONDS", 5, 0, 3600)
        # Webhooks (app/webhooks): the hook list kept per process, a delivery's timeout, how long
        # a failing delivery is retried, and how long delivered rows stay in the log.
        self.WEBHOOK_CACHE_SECONDS = reader.int("WEBHOOK_CACHE_SECONDS", 5, 0, 3600)
        self.WEBHOOK_TIMEOUT_SECONDS = reader.int("WEBHOOK_TIMEOUT_SECONDS", 5, 1, 60)
        self.WEBHOOK_RETRY_HOURS = reader.int("WEBHOOK_RETRY_HOURS", 24, 1, 24 * 30)
        self.WEBHOOK_LOG_DAYS = reader.int("WEBHOOK_LOG_DAYS", 7, 1, 3650)
        self.WEBHOOK_WORKERS = reader.int("WEBHOOK_WORKERS", 8, 1, 256)
        # Whether this server process delivers from the outbox (any number of processes may).
        self.WEBHOOK_DELIVERY = reader.bool("WEBHOOK_DELIVERY", True)
        # Work that runs once across processes (app/jobs): whether this server process takes over
        # due jobs (retries, those of a process that died) and runs the periodic ones; how many of
        # those it runs at once; how long past a job's own time limit its lease lasts; attempts.
        self.JOB_WORKER = reader.bool("JOB_WORKER", True)
        self.JOB_CONCURRENCY = reader.int("JOB_CONCURRENCY", 8, 1, 256)
        self.JOB_LEASE_MARGIN_SECONDS = reader.int("JOB_LEASE_MARGIN_SECONDS", 10, 1, 600)
        self.JOB_MAX_ATTEMPTS = reader.int("JOB_MAX_ATTEMPTS", 5, 1, 100)
        # Periodic jobs: unused uploads removed (0: only by `flask cleanup-uploads`); ended mutes told.
        self.UPLOAD_CLEANUP_INTERVAL_MINUTES = reader.int("UPLOAD_CLEANUP_INTERVAL_MINUTES", 60, 0, 10080)
        self.MUTE_CHECK_SECONDS = reader.int("MUTE_CHECK_SECONDS", 30, 1, 3600)
        # The retention policy (app/retention.py): minutes between purges (0: never purged), and
        # the most messages one purge transaction deletes.
        self.RETENTION_INTERVAL_MINUTES = reader.int("RETENTION_INTERVAL_MINUTES", 60, 0, 10080)
        self.RETENTION_BATCH = reader.int("RETENTION_BATCH", 500, 1, 10000)
        # Users' data exports (app/export): how many a user may ask for per 24 hours, the longest
        # one build may take, and minutes between sweeps of expired zips (0: never swept).
        self.EXPORTS_PER_DAY = reader.int("EXPORTS_PER_DAY", 3, 1, 100)
        self.EXPORT_TIMEOUT_SECONDS = reader.int("EXPORT_TIMEOUT_SECONDS", 1800, 10, 86400)
        self.EXPORT_CLEANUP_INTERVAL_MINUTES = reader.int("EXPORT_CLEANUP_INTERVAL_MINUTES", 60, 0, 10080)
        # How long a fresh GitHub sign-in lets a GitHub-only account delete itself.
        self.DELETE_RECONFIRM_SECONDS = reader.int("DELETE_RECONFIRM_SECONDS", 300, 30, 3600)
        # The sensitive-word filter (app/wordfilter): how often each process looks for list
        # changes made by another process (its own take effect at once).
        self.WORDFILTER_CACHE_SECONDS = reader.int("WORDFILTER_CACHE_SECONDS", 5, 0, 3600)
        self.LOG_LEVEL = reader.str("LOG_LEVEL", "INFO").upper()
        if self.LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
        # `json`: one JSON object per line, with the request id (app/logging_setup.py).
        self.LOG_FORMAT = (reader.str("LOG_FORMAT") or "text").lower()
        if self.LOG_FORMAT not in {"text", "json"}:
            raise ConfigError("LOG_FORMAT", f"must be text or json, got {reader.str('LOG_FORMAT')!r}")
        _metrics_settings(self, reader, instance)
        return self


METRICS_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{16,256}")


def _metrics_settings(self: Config, reader: _Reader, instance: Path) -> None:
    """Prometheus metrics (app/metrics.py): off by default; when on, `/metrics` is served on the
    application's port behind METRICS_TOKEN and/or alone on METRICS_BIND:METRICS_PORT."""
    import ipaddress
    import socket

    self.METRICS_ENABLED = reader.bool("METRICS_ENABLED", False)
    self.METRICS_TOKEN = reader.str("METRICS_TOKEN")
    if self.METRICS_TOKEN is not None and not METRICS_TOKEN_PATTERN.fullmatch(self.METRICS_TOKEN):
        raise ConfigError("METRICS_TOKEN", "must be 16-256 printable characters without spaces")
    self.METRICS_PORT = reader.int("METRICS_PORT", 0, 0, 65535)
    self.METRICS_BIND = reader.str("METRICS_BIND", "127.0.0.1")
    try:
        ipaddress.ip_address(self.METRICS_BIND)
    except ValueError:
        raise ConfigError("METRICS_BIND", f"must be an IP address, got {self.METRICS_BIND!r}") from None
    if self.METRICS_ENABLED and not (self.METRICS_TOKEN or self.METRICS_PORT):
        problem = "needs METRICS_TOKEN or METRICS_PORT (or both) to protect /metrics"
        raise ConfigError("METRICS_ENABLED", problem)
    # The multiprocess folder: shared by the processes of one host (their sums), one per host.
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
    self.METRICS_DIR = reader.str("METRICS_DIR", str(instance / "metrics" / host))
