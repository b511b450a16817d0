"""Redis connections for the two logical databases, and how their failures are classified."""

from __future__ import annotations

import logging

import redis

from aura.config import Settings
from aura.instrumentation import recorder

log = logging.getLogger("aura.redis")

AUTH_DB = "auth_db"
RATE_LIMIT_DB = "rate_limit_db"


def classify_error(exc: BaseException) -> str:
    """Map a Redis exception to the spec's bounded `error_type` label."""
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connection_failed"
    return "other"


def record_error(database: str, exc: BaseException) -> None:
    """Count a Redis error against its logical database."""
    recorder.redis_error(database, classify_error(exc))


class RedisClients:
    """One connection pool per logical database, shared by everything in this process."""

    def __init__(self, settings: Settings):
        common = dict(
            socket_timeout=settings.redis_socket_timeout,
            socket_connect_timeout=settings.redis_socket_timeout,
            health_check_interval=30,
        )
        self.url = settings.redis_url
        self.auth = redis.Redis.from_url(settings.redis_url, db=settings.redis_auth_db, **common)
        self.rate_limit_uri = _with_db(settings.redis_url, settings.redis_rate_limit_db)

    def ping(self, database: str = AUTH_DB) -> bool:
        """True when Redis answers; a failure is counted and logged, never raised."""
        try:
            return bool(self.auth.ping())
        except redis.RedisError as exc:
            record_error(database, exc)
            log.warning("redis %s unreachable: %s", database, exc)
            return False


def _with_db(url: str, db: int) -> str:
    """The same server URL pointed at another logical database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
