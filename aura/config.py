"""Configuration: the one place that reads the environment, validated once at start-up.

`Settings.from_env()` turns environment variables into a typed, frozen object and raises
`ConfigError` with a message that says what to set. Every other module receives values from
here (through `app.config["AURA"]`), never from `os.environ`.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ENVIRONMENTS = ("development", "production", "testing")
MIN_SECRET_BYTES = 32
# Values that appear in tutorials and templates; a production key must not be one of them.
WELL_KNOWN_SECRETS = frozenset(
    s.lower()
    for s in (
        "secret", "changeme", "change-me", "change_me", "super-secret", "supersecret",
        "your-secret-key", "your_secret_key", "jwt-secret", "jwt_secret_key", "dev", "development",
        "please-change-me-to-a-long-random-string", "replace-me-with-a-random-32-byte-secret",
        "0" * 32, "a" * 32, "x" * 32,
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
    max_content_length: int = 1024 * 1024
    password_hash_time_cost: int = 3
    password_hash_memory_cost: int = 64 * 1024  # KiB
    rate_limit_enabled: bool = True
    rate_limit_default: str = "300 per minute"
    rate_limit_login: str = "10 per minute;100 per hour"
    rate_limit_login_account: str = "20 per hour"
    rate_limit_register: str = "5 per minute;50 per hour"
    rate_limit_workflows: str = "60 per minute"
    rate_limit_max_client_ids: int = 1000
    trusted_proxy_count: int = 0
    metrics_enabled: bool = True
    metrics_auth_token: str = field(default="", repr=False)
    prometheus_multiproc_dir: str = ""
    log_level: str = "INFO"
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
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Read and validate settings from the environment (or a given mapping)."""
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for f in fields(cls):
            name = f.name.upper()
            if f.name == "env":
                name = "AURA_ENV"
            elif f.name == "instance_path":
                name = "AURA_INSTANCE_PATH"
            if name in env and env[name] != "":
                raw[f.name] = _coerce(name, env[name], f.type)
        raw.update(overrides)
        raw["instance_path"] = Path(raw.get("instance_path", cls.instance_path))
        settings = cls(**raw)  # type: ignore[arg-type]
        return settings._validated()

    def _validated(self) -> Settings:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(f"AURA_ENV={self.env!r}: set it to one of {', '.join(ENVIRONMENTS)}")
        updates: dict[str, object] = {}
        if not self.database_url:
            if self.production:
                raise ConfigError("DATABASE_URL is required when AURA_ENV=production")
            updates["database_url"] = f"sqlite:///{self.instance_path / 'aura.db'}"
        updates["jwt_secret_key"] = self._checked_secret()
        for name in ("access_token_expires", "refresh_token_expires", "max_content_length",
                     "rate_limit_max_client_ids", "audit_max_files", "audit_max_file_bytes",
                     "audit_max_function_lines", "password_hash_time_cost",
                     "workflow_max_concurrent_per_user"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.upper()} must be a positive integer")
        if self.password_hash_memory_cost < 8:
            raise ConfigError("PASSWORD_HASH_MEMORY_COST must be at least 8 (KiB)")
        for name in ("redis_circuit_open_seconds", "audit_max_cpu_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.upper()} must be a positive number")
        if self.trusted_proxy_count < 0:
            raise ConfigError("TRUSTED_PROXY_COUNT must be 0 or more")
        if not 0 < self.struggle_score_threshold < 1:
            raise ConfigError("STRUGGLE_SCORE_THRESHOLD must be between 0 and 1")
        for name in ("rate_limit_default", "rate_limit_login", "rate_limit_login_account",
                     "rate_limit_register", "rate_limit_workflows"):
            _check_limit(name.upper(), getattr(self, name))
        return _replace(self, **updates)

    def _checked_secret(self) -> str:
        key = self.jwt_secret_key
        if self.production:
            if not key:
                raise ConfigError("JWT_SECRET_KEY is required when AURA_ENV=production "
                                  "(at least 32 random bytes, e.g. `python -c 'import secrets; "
                                  "print(secrets.token_urlsafe(48))'`)")
            if len(key.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"JWT_SECRET_KEY is {len(key.encode())} bytes; production needs "
                                  f"at least {MIN_SECRET_BYTES}")
            if key.lower() in WELL_KNOWN_SECRETS or len(set(key)) < 8:
                raise ConfigError("JWT_SECRET_KEY is a well-known or trivially guessable value; "
                                  "generate a random one")
            return key
        if key:
            return key
        return _instance_secret(self.instance_path)


def _replace(settings: Settings, **updates) -> Settings:
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
    typ = {"int": int, "float": float, "bool": bool, "str": str, "Path": Path}.get(str(typ), typ)
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
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(typ, "a value")
        raise ConfigError(f"{name}={value!r}: expected {kind}") from None


def _check_limit(name: str, value: str) -> None:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected Flask-Limiter notation such as "
                          "'10 per minute' (several separated by ';')") from None
