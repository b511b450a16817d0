"""Configuration: the one place that reads the environment, validated once at start-up.

`Settings.from_env()` turns environment variables into a typed, frozen object and raises
`ConfigError` with a message that says what to set. Every other module receives values from
here (through `app.config["AURA"]`), never from `os.environ`.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENVIRONMENTS = ("development", "production", "testing")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
REDIS_SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"  # flask-limiter's (limits') form, the contract
SENTINEL_FORM = "redis+sentinel://[:password@]host1:26379,host2:26379,host3:26379/service_name"
# libpq's target_session_attrs values that only ever connect to the writable primary.
PRIMARY_SESSION_ATTRS = ("read-write", "primary")
MIN_SECRET_BYTES = 32
# Values that appear in tutorials and templates; a production key must not be one of them.
WELL_KNOWN_SECRETS = frozenset(
    s.lower()
    for s in (
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "super-secret",
        "supersecret",
        "your-secret-key",
        "your_secret_key",
        "jwt-secret",
        "jwt_secret_key",
        "dev",
        "development",
        "please-change-me-to-a-long-random-string",
        "replace-me-with-a-random-32-byte-secret",
        "0" * 32,
        "a" * 32,
        "x" * 32,
    )
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting is missing or invalid; the message says which and what to set."""


@dataclass(frozen=True)
class Settings:
    """Every setting Aura reads, with its default."""

    env: str = "development"
    instance_path: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379"
    redis_auth_db: int = 0
    redis_rate_limit_db: int = 1
    redis_socket_timeout: float = 1.0
    redis_circuit_open_seconds: float = 5.0
    jwt_secret_key: str = field(default="", repr=False)
    access_token_expires: int = 15 * 60
    refresh_token_expires: int = 14 * 24 * 3600
    login_device_token_expires: int = 30 * 24 * 3600  # a known client's device token (aura.auth.devices)
    max_content_length: int = 1024 * 1024
    password_hash_time_cost: int = 3
    password_hash_memory_cost: int = 64 * 1024  # KiB
    password_hash_max_concurrent: int = 2  # hashes in flight per instance (all workers)
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300 per minute"
    rate_limit_login: str = "10 per minute;100 per hour"
    rate_limit_login_account: str = "20 per hour"
    rate_limit_login_device: str = "5 per hour"
    rate_limit_register: str = "5 per minute;50 per hour"
    rate_limit_register_all: str = "60 per minute;1000 per hour"
    rate_limit_workflows: str = "60 per minute"
    rate_limit_max_client_ids: int = 1000
    trusted_proxy_count: int = 0
    metrics_enabled: bool = True
    metrics_auth_token: str = field(default="", repr=False)
    prometheus_multiproc_dir: str = ""
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line
    api_docs_enabled: bool | None = None  # None: on outside production
    audit_max_files: int = 50
    audit_max_file_bytes: int = 256 * 1024
    audit_max_function_lines: int = 50
    struggle_score_threshold: float = 0.5
    audit_max_cpu_seconds: float = 1.0
    workflow_max_concurrent_per_user: int = 2

    @property
    def production(self) -> bool:
        """True when running with production safeguards."""
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read and validate settings from the environment (or a given mapping)."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}  # each field's own type, checked by _validated()
        for f in fields(cls):
            name = _variable_name(f.name)
            if name in env and env[name] != "":
                raw[f.name] = _coerce(name, env[name], f.type)
        raw.update(overrides)
        raw["instance_path"] = Path(raw.get("instance_path", cls.instance_path))
        settings = cls(**raw)
        return settings._validated()

    def _validated(self) -> Settings:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"AURA_ENV={self.env!r}: not an environment; set it to one of {', '.join(ENVIRONMENTS)}")
        updates: dict[str, object] = {}
        _check_instance_path(self.instance_path)
        if not self.database_url:
            if self.production:
                raise ConfigError(
                    "DATABASE_URL is required when AURA_ENV=production "
                    "(a SQLAlchemy URL such as postgresql+psycopg://user:pass@host:5432/db)"
                )
            updates["database_url"] = f"sqlite:///{self.instance_path / 'aura.db'}"
        else:
            _check_database_url(self.database_url)
        redis_target(self.redis_url)
        for name in ("redis_auth_db", "redis_rate_limit_db"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.upper()}={getattr(self, name)}: expected a Redis database number, 0 or more")
        if not 0 < self.redis_socket_timeout < math.inf:  # nan and inf too: a hung Redis would hang requests
            raise ConfigError(f"REDIS_SOCKET_TIMEOUT={self.redis_socket_timeout}: expected a number of seconds above 0")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={self.log_level!r}: not a log level; expected one of {', '.join(LOG_LEVELS)}")
        updates["log_level"] = self.log_level.upper()
        log_format = self.log_format.lower()
        if log_format not in LOG_FORMATS:
            raise ConfigError(f"LOG_FORMAT={self.log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
        updates["log_format"] = log_format
        if self.api_docs_enabled is None:
            updates["api_docs_enabled"] = not self.production
        updates["jwt_secret_key"] = self._checked_secret()
        for name in (
            "access_token_expires",
            "refresh_token_expires",
            "max_content_length",
            "rate_limit_max_client_ids",
            "audit_max_files",
            "audit_max_file_bytes",
            "audit_max_function_lines",
            "password_hash_time_cost",
            "workflow_max_concurrent_per_user",
            "login_device_token_expires",
            "password_hash_max_concurrent",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()}={getattr(self, name)}: {name.upper()} must be a positive integer")
        if self.password_hash_memory_cost < 8:
            raise ConfigError(f"PASSWORD_HASH_MEMORY_COST={self.password_hash_memory_cost}: must be at least 8 (KiB)")
        for name in ("redis_circuit_open_seconds", "audit_max_cpu_seconds"):
            if not 0 < getattr(self, name) < math.inf:  # nan and inf too: a breaker that never closes
                raise ConfigError(f"{name.upper()}={getattr(self, name)}: must be a positive number")
        if self.trusted_proxy_count < 0:
            raise ConfigError(f"TRUSTED_PROXY_COUNT={self.trusted_proxy_count}: TRUSTED_PROXY_COUNT must be 0 or more")
        if not 0 < self.struggle_score_threshold < 1:
            raise ConfigError(
                f"STRUGGLE_SCORE_THRESHOLD={self.struggle_score_threshold}: must be between 0 and 1 (exclusive)"
            )
        for name in (
            "rate_limit_default",
            "rate_limit_login",
            "rate_limit_login_account",
            "rate_limit_register",
            "rate_limit_workflows",
            "rate_limit_login_device",
            "rate_limit_register_all",
        ):
            _check_limit(name.upper(), getattr(self, name))
        return _replace(self, **updates)

    def _checked_secret(self) -> str:
        key = self.jwt_secret_key
        if self.production:
            if not key:
                raise ConfigError(
                    "JWT_SECRET_KEY is required when AURA_ENV=production "
                    "(at least 32 random bytes, e.g. `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`)"
                )
            if len(key.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"JWT_SECRET_KEY is {len(key.encode())} bytes; production needs at least {MIN_SECRET_BYTES}"
                )
            if key.lower() in WELL_KNOWN_SECRETS or len(set(key)) < 8:
                raise ConfigError("JWT_SECRET_KEY is a well-known or trivially guessable value; generate a random one")
            return key
        if key:
            return key
        return _instance_secret(self.instance_path)


def _variable_name(field_name: str) -> str:
    """The environment variable of a Settings field."""
    return {"env": "AURA_ENV", "instance_path": "AURA_INSTANCE_PATH"}.get(field_name, field_name.upper())


def _replace(settings: Settings, **updates: object) -> Settings:
    values = {f.name: getattr(settings, f.name) for f in fields(settings)}
    values.update(updates)
    return Settings(**values)


def _instance_secret(instance_path: Path) -> str:
    """Create the development key once, so every worker and every restart shares it."""
    path = instance_path / "jwt-secret.key"
    instance_path.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when several workers start at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another worker may be between create and write
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise ConfigError(f"{path} is empty; delete it and start again")


def _coerce(name: str, value: str, typ: object) -> object:
    typ = {"int": int, "float": float, "bool": bool, "bool | None": bool, "str": str, "Path": Path}.get(str(typ), typ)
    try:
        if typ is bool:
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if typ is int:
            return int(value)
        if typ is float:
            return float(value)
        if typ is Path:
            return Path(value)
        return value
    except ValueError:
        kinds: dict[object, str] = {bool: "true or false", int: "an integer", float: "a number"}
        kind = kinds.get(typ, "a value")
        raise ConfigError(f"{name}={value!r}: expected {kind}") from None


def _check_limit(name: str, value: str) -> None:
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name}={value!r}: expected Flask-Limiter notation such as '10 per minute' (several separated by ';')"
        ) from None


def redact_url(url: str) -> str:
    """The URL with its password replaced by `***`, for logs and error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit((parts.scheme, f"{user}:***@{netloc}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<unparseable URL>"


def _check_instance_path(path: Path) -> None:
    """The instance directory must exist (or be creatable) and be writable: it holds the key."""
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"AURA_INSTANCE_PATH={str(path)!r}: exists and is not a directory; expected a writable directory"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"AURA_INSTANCE_PATH={str(path)!r}: cannot create the directory "
            f"({exc.strerror or exc.__class__.__name__}); expected a writable directory"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"AURA_INSTANCE_PATH={str(path)!r}: the directory is not writable by this "
            "user; expected a writable directory"
        )


def _check_database_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"DATABASE_URL={redact_url(url)!r}: not a SQLAlchemy URL; expected e.g. "
            "postgresql+psycopg://user:pass@host:5432/db or sqlite:////path/aura.db"
        ) from None
    given = parsed.query.get("host", ())
    hosts = [given] if isinstance(given, str) else list(given)
    if len(hosts) == 1 and "," in hosts[0] and ":" in hosts[0] and "port" not in parsed.query:
        raise ConfigError(
            f"DATABASE_URL={redact_url(url)!r}: several hosts with ports in one host= parameter; "
            "write host=a,b&port=5432,5432 (libpq's form) or host=a:5432&host=b:5432"
        )
    several = len(hosts) > 1 or any("," in h for h in hosts)
    if several and parsed.query.get("target_session_attrs") not in PRIMARY_SESSION_ATTRS:
        raise ConfigError(
            f"DATABASE_URL={redact_url(url)!r}: several hosts need target_session_attrs=read-write "
            "(or primary), else a connection may land on a read-only standby"
        )


@dataclass(frozen=True)
class RedisTarget:
    """Where REDIS_URL points: one server (`url`), or a Sentinel service (`sentinels`, `service`)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    username: str | None = None
    password: str | None = None

    @property
    def sentinel(self) -> bool:
        """True for the redis+sentinel:// form."""
        return bool(self.sentinels)


def redis_target(url: str) -> RedisTarget:
    """Parse REDIS_URL: redis[s]://[:password@]host[:port], or the Sentinel form (SENTINEL_FORM),
    read as flask-limiter's storage reads it (the password is sent to the Sentinels and to Redis)."""
    shown = redact_url(url)
    if not url.startswith(SENTINEL_SCHEME + "://"):
        _check_redis_url(url)
        return RedisTarget(url=url)
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    sentinels = []
    for location in netloc.split(","):
        host, _, port = location.strip().rpartition(":")
        if not location.strip():
            continue
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_URL={shown!r}: Sentinel {location!r} is not host:port; expected {SENTINEL_FORM}")
        sentinels.append((host.strip("[]"), int(port)))
    if not sentinels:
        raise ConfigError(f"REDIS_URL={shown!r}: names no Sentinel host; expected {SENTINEL_FORM}")
    service = parts.path.strip("/")
    if not service or "/" in service:
        raise ConfigError(
            f"REDIS_URL={shown!r}: names no Sentinel service (one path segment); expected {SENTINEL_FORM}"
        )
    if parts.query:
        raise ConfigError(
            f"REDIS_URL={shown!r}: takes no query; set REDIS_AUTH_DB and REDIS_RATE_LIMIT_DB for the databases"
        )
    return RedisTarget(
        url=url, sentinels=tuple(sentinels), service=service, username=parts.username or None, password=parts.password
    )


def _check_redis_url(url: str) -> None:
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"REDIS_URL={shown!r}: not a URL; expected redis://[:password@]host[:port]") from None
    if parts.scheme not in REDIS_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"REDIS_URL={shown!r}: expected redis://[:password@]host[:port] (or rediss:// for TLS, "
            f"or {SENTINEL_SCHEME}://... for Sentinel)"
        )
    if parts.path.strip("/") or "db=" in parts.query:
        raise ConfigError(
            f"REDIS_URL={shown!r}: must not name a database number; set REDIS_AUTH_DB "
            "and REDIS_RATE_LIMIT_DB instead (e.g. redis://host:6379)"
        )


@dataclass(frozen=True)
class GunicornSettings:
    """The Gunicorn settings gunicorn.conf.py reads, validated like the app's."""

    bind: str
    workers: int
    threads: int
    timeout: int
    graceful_timeout: int
    max_requests: int
    max_requests_jitter: int
    preload: bool
    access_log: str | None
    control_socket: str | None
    worker_tmp_dir: str | None
    metrics_port: int  # the master's metrics listener (0: none)
    metrics_host: str  # where the listener binds: METRICS_HOST, else the bind's host (loopback for unix:)


# Gunicorn's own name for the worker count, read by Gunicorn too; GUNICORN_WORKERS wins over it.
WORKERS_VARIABLES = ("GUNICORN_WORKERS", "WEB_CONCURRENCY")
# The metrics listener's host when Gunicorn listens on a unix socket (no host to follow):
# loopback, so exposing metrics stays a deliberate act (set METRICS_HOST=0.0.0.0 for that).
UNIX_BIND_METRICS_HOST = "127.0.0.1"


def gunicorn_settings(environ: Mapping[str, str] | None = None) -> GunicornSettings:
    """Read and validate the GUNICORN_* variables, GUNICORN_WORKERS/WEB_CONCURRENCY and METRICS_*."""
    env = os.environ if environ is None else environ

    def integer(name: str, default: int, minimum: int) -> int:
        value = env.get(name, "")
        if value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise ConfigError(f"{name}={value!r}: expected an integer of at least {minimum}")
        return number

    bind = env.get("GUNICORN_BIND", "") or "127.0.0.1:8000"
    _check_bind(bind)
    preload = env.get("GUNICORN_PRELOAD", "") or "true"
    preload_value = _coerce("GUNICORN_PRELOAD", preload, bool)
    requested_tmp_dir = env.get("GUNICORN_WORKER_TMP_DIR", "")
    tmp_dir = requested_tmp_dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    if requested_tmp_dir and not os.path.isdir(requested_tmp_dir):
        raise ConfigError(
            f"GUNICORN_WORKER_TMP_DIR={requested_tmp_dir!r}: not a directory; expected an "
            "existing writable directory (tmpfs preferred)"
        )
    # GUNICORN_WORKERS wins over WEB_CONCURRENCY (each validated when set), else two per core.
    workers = integer("GUNICORN_WORKERS", integer("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1), 1), 1)
    metrics_port = integer("METRICS_PORT", 0, 0)
    metrics_host = _metrics_host(env.get("METRICS_HOST", ""), bind)
    if metrics_port and not bind.startswith("unix:") and metrics_port == int(bind.rpartition(":")[2]):
        raise ConfigError(
            f"METRICS_PORT={metrics_port}: the same port as GUNICORN_BIND={bind!r}; the metrics listener "
            "needs a port of its own (e.g. 9100), or 0 for none"
        )
    return GunicornSettings(
        bind=bind,
        workers=workers,
        threads=integer("GUNICORN_THREADS", 1, 1),
        timeout=integer("GUNICORN_TIMEOUT", 30, 0),
        graceful_timeout=integer("GUNICORN_GRACEFUL_TIMEOUT", 30, 0),
        max_requests=integer("GUNICORN_MAX_REQUESTS", 10000, 0),
        max_requests_jitter=integer("GUNICORN_MAX_REQUESTS_JITTER", 1000, 0),
        preload=bool(preload_value),
        access_log=env.get("GUNICORN_ACCESS_LOG", "-") or None,
        control_socket=env.get("GUNICORN_CONTROL_SOCKET") or None,
        worker_tmp_dir=tmp_dir,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )


def _metrics_host(requested: str, bind: str) -> str:
    """METRICS_HOST (an IP address or a host name), else the bind's host, else loopback."""
    if not requested:
        return UNIX_BIND_METRICS_HOST if bind.startswith("unix:") else bind.rpartition(":")[0].strip("[]")
    host = requested.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if not all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
            raise ConfigError(
                f"METRICS_HOST={requested!r}: expected an IP address or a host name (e.g. 0.0.0.0 or "
                "127.0.0.1), without a port"
            ) from None
    return host


def _check_bind(bind: str) -> None:
    if bind.startswith("unix:") and len(bind) > 5:
        return
    host, sep, port = bind.rpartition(":")
    if sep and host and port.isdigit() and 0 < int(port) < 65536:
        return
    raise ConfigError(f"GUNICORN_BIND={bind!r}: expected HOST:PORT (e.g. 127.0.0.1:8000) or unix:PATH")


def metrics_directory(environ: Mapping[str, str] | None = None) -> str:
    """PROMETHEUS_MULTIPROC_DIR ("": single-process metrics), for what must know it before settings exist.

    Metric definitions are made when ``aura.instrumentation`` is imported, before any app or
    settings object, and must be made with the value class of the mode they run in.
    """
    env = os.environ if environ is None else environ
    return env.get(_variable_name("prometheus_multiproc_dir"), "")


def check_environment(environ: Mapping[str, str] | None = None) -> tuple[Settings, GunicornSettings]:
    """Validate every setting of the README table (the app's and Gunicorn's)."""
    return Settings.from_env(environ), gunicorn_settings(environ)


# What gunicorn_settings() reads, besides GUNICORN_WORKERS/WEB_CONCURRENCY.
GUNICORN_VARIABLES = (
    "GUNICORN_BIND",
    "GUNICORN_THREADS",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_MAX_REQUESTS_JITTER",
    "GUNICORN_PRELOAD",
    "GUNICORN_ACCESS_LOG",
    "GUNICORN_CONTROL_SOCKET",
    "GUNICORN_WORKER_TMP_DIR",
    "METRICS_PORT",
    "METRICS_HOST",
)
# Read by others, not by this module: Gunicorn's extra arguments, the metrics root a re-exec'd
# master inherits (aura/metrics/gunicorn.py), the test suite's services (tests/conftest.py).
OTHER_KNOWN_VARIABLES = ("GUNICORN_CMD_ARGS", "AURA_METRICS_ROOT", "AURA_TEST_REDIS_URL", "AURA_TEST_DATABASE_URL")
# Settings that were removed, and what replaced them: set, they are reported, never silently ignored.
REMOVED_VARIABLES = {
    "API_DOCS_ASSETS_URL": "the docs page serves Swagger UI from the pinned flask-swagger-ui package itself",
}
CHECKED_PREFIXES = ("AURA_", "GUNICORN_", "METRICS_")


def known_variables() -> tuple[str, ...]:
    """Every environment variable Aura reads (the README's configuration table, and a few more)."""
    settings = tuple(_variable_name(f.name) for f in fields(Settings))
    return settings + WORKERS_VARIABLES + GUNICORN_VARIABLES + OTHER_KNOWN_VARIABLES


def environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """Set variables that do nothing: AURA_*, GUNICORN_*, METRICS_* ones that look like a typo of
    a known name (difflib), both worker-count names with different values, removed settings."""
    env = os.environ if environ is None else environ
    known = known_variables()
    warnings = []
    for name in sorted(env):
        if name in known or not name.startswith(CHECKED_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            warnings.append(f"{name} is not a setting Aura reads; did you mean {close[0]}? (it is ignored)")
    preferred, fallback = (env.get(name, "") for name in WORKERS_VARIABLES)
    if preferred and fallback and preferred != fallback:
        warnings.append(
            f"GUNICORN_WORKERS={preferred!r} and WEB_CONCURRENCY={fallback!r} are both set: "
            "GUNICORN_WORKERS wins (set one)"
        )
    for name, why in REMOVED_VARIABLES.items():
        if env.get(name):
            warnings.append(f"{name} is no longer read ({why}); unset it")
    return warnings


def exit_on_config_error(exc: ConfigError) -> None:
    """Stop the process with one line naming the variable: no traceback, exit status 2."""
    message = " ".join(str(exc).split())  # one line, whatever the message held
    print(f"aura: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
