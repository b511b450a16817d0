"""Redis connections for the two logical databases, and how their failures are classified.

REDIS_URL names one server (redis://, rediss://) or a Sentinel service (redis+sentinel://...):
then every client asks the Sentinels for the current primary when it connects, and a
connection to a primary that died or was demoted fails once and reconnects to the new one.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from aura.config import RedisTarget, Settings, redis_target
from aura.instrumentation import recorder

log = logging.getLogger("aura.redis")

AUTH_DB = "auth_db"
RATE_LIMIT_DB = "rate_limit_db"


class CircuitOpen(redis.ConnectionError):
    """Redis was not called: it failed a moment ago and the breaker is open."""


class CircuitBreaker:
    """After a Redis call times out or cannot connect, fail fast for `open_seconds`.

    A hung Redis (SIGSTOP, a network black hole) costs a full socket timeout per call; without
    this, every request of every worker pays it, and probes queue behind them. With it, each
    process pays at most one timeout per interval: the first call after the interval is the
    trial, and its success closes the breaker.
    """

    def __init__(self, open_seconds: float):
        self.open_seconds = open_seconds
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while calls are refused without trying Redis."""
        return time.monotonic() < self._open_until

    def trip(self, exc: BaseException) -> None:
        """Open the breaker (logged when it was closed)."""
        with self._lock:
            if not self._open_until:
                log.warning(
                    "redis failed (%s): failing fast for %.1f s at a time until it answers",
                    exc.__class__.__name__,
                    self.open_seconds,
                )
            self._open_until = time.monotonic() + self.open_seconds

    def reset(self) -> None:
        """Close the breaker after a call succeeded."""
        if self._open_until:
            with self._lock:
                self._open_until = 0.0
            log.warning("redis answers again")


class GuardedRedis(redis.Redis):
    """redis.Redis whose commands go through a CircuitBreaker (pipelines: see `guarded`)."""

    breaker: CircuitBreaker

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Refuse at once while the breaker is open; trip it on a timeout or connection error."""
        with self.guarded():
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]  # redis-py: untyped

    def guarded(self) -> _Guard:
        """Context manager: the breaker's rule around any block of Redis calls."""
        return _Guard(self.breaker)


class _Guard:
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def __enter__(self) -> None:
        if self.breaker.is_open:
            raise CircuitOpen("redis circuit open: a call failed moments ago")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None:
            self.breaker.reset()
        elif isinstance(exc, (redis.TimeoutError, redis.ConnectionError)) and not isinstance(exc, CircuitOpen):
            self.breaker.trip(exc)
        return False


def classify_error(exc: BaseException) -> str:
    """Map a Redis exception to the spec's bounded `error_type` label."""
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError):
        return "connection_failed"
    return "other"


def record_error(database: str, exc: BaseException) -> None:
    """Count a Redis error against its logical database (not a call the breaker refused)."""
    if not isinstance(exc, CircuitOpen):
        recorder.redis_error(database, classify_error(exc))


class RedisClients:
    """One connection pool per logical database, shared by everything in this process."""

    def __init__(self, settings: Settings):
        self.url = settings.redis_url
        self.target = redis_target(settings.redis_url)
        self.options = client_options(settings.redis_socket_timeout)
        self.breaker = CircuitBreaker(settings.redis_circuit_open_seconds)
        self.sentinel: Sentinel | None = None
        if self.target.sentinel:
            self.sentinel = sentinel_for(self.target, settings.redis_socket_timeout)
            self.auth: GuardedRedis = self.sentinel.master_for(  # type: ignore[no-untyped-call]  # redis-py: untyped
                self.target.service, redis_class=GuardedRedis, db=settings.redis_auth_db, **self.options
            )
        else:
            self.auth = GuardedRedis.from_url(  # type: ignore[assignment]  # annotated Redis, returns cls
                settings.redis_url, db=settings.redis_auth_db, **self.options
            )
        self.auth.breaker = self.breaker
        # The rate limiter's pool, set by init_rate_limiting when it stores limits in Redis.
        self.rate_limit_pool: redis.ConnectionPool | None = None
        self.rate_limit_db = settings.redis_rate_limit_db
        self.rate_limit_uri = (
            settings.redis_url if self.target.sentinel else _with_db(settings.redis_url, settings.redis_rate_limit_db)
        )

    def rate_limit_options(self) -> dict[str, Any]:
        """The rate-limit storage's redis-py options: this module's timeouts and retry; through
        Sentinel also the database and the Sentinels' own timeouts, and no reads from replicas
        (a replica's counter may lag the primary's)."""
        if not self.target.sentinel:
            return dict(self.options)
        sentinel_kwargs = {k: v for k, v in self.options.items() if k.startswith("socket_")}
        return dict(self.options, db=self.rate_limit_db, sentinel_kwargs=sentinel_kwargs, use_replicas=False)

    def ping(self, database: str = AUTH_DB) -> bool:
        """True when Redis answers; a failure is counted and logged, never raised."""
        try:
            return bool(self.auth.ping())
        except redis.RedisError as exc:
            record_error(database, exc)
            if not isinstance(exc, CircuitOpen):
                log.warning("redis %s unreachable: %s", database, exc)
            return False


def client_options(socket_timeout: float) -> dict[str, Any]:
    """redis-py options every Aura client uses: bounded timeouts, and one immediate retry - a
    pooled connection broken by a restart or a failover fails once, and the retry reconnects
    (through Sentinel: to the current primary); a Redis that is down fails after two attempts."""
    return dict(
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )


def sentinel_for(target: RedisTarget, socket_timeout: float) -> Sentinel:
    """A Sentinel client for REDIS_URL's Sentinels, with the same timeouts (the password, as in
    flask-limiter's storage, authenticates to the Sentinels and to Redis)."""
    auth = {k: v for k, v in (("username", target.username), ("password", target.password)) if v}
    timeouts = dict(socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout)
    return Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves Sentinel's __init__ untyped
        list(target.sentinels), sentinel_kwargs={**timeouts, **auth}, **auth
    )


def _with_db(url: str, db: int) -> str:
    """The same server URL pointed at another logical database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
