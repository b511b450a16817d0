"""Rate-limit storage that prefers shared Redis and fails open to per-process memory.

Flask-Limiter's own fallback swaps the configured limits for a separate fallback list while
Redis is down; this storage keeps the same limits, counted per process instead, so brute-force
protection on login holds (per worker) through an outage. Every Redis error is counted in
`redis_connection_errors_total{database="rate_limit_db"}`, and Redis is retried with a capped
backoff, so the shared counts resume by themselves when it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from limits.storage import MemoryStorage, RedisSentinelStorage, RedisStorage, Storage

from aura.infra.redis import RATE_LIMIT_DB, record_error

log = logging.getLogger("aura.rate_limit")

MAX_BACKOFF_SECONDS = 8.0


class FailoverRedisStorage(Storage):
    """limits Storage: Redis while it answers, in-process memory while it does not."""

    STORAGE_SCHEME = ["aura+redis", "aura+redis+sentinel"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        """`uri` is aura+redis://host:port/db, or aura+redis+sentinel://host:port,.../service
        (flask-limiter's Sentinel storage; the database is then an option); options go to
        redis-py (socket timeouts...)."""
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        inner = uri.removeprefix("aura+")
        if inner.startswith("redis+sentinel://"):
            self.redis: RedisStorage = RedisSentinelStorage(inner, **options)
        else:
            self.redis = RedisStorage(inner, **options)
        self.memory = MemoryStorage()
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which Redis is not tried again
        self._backoff = 0.5

    @property
    def pool(self) -> redis.ConnectionPool:
        """The Redis connection pool, for the pool gauges."""
        pool: redis.ConnectionPool = self.redis.storage.connection_pool  # limits types `storage` Any
        return pool

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        """Nothing escapes: failures are handled inside `_call`."""
        return ()

    @property
    def degraded(self) -> bool:
        """True while limits are counted per process."""
        return self._down_until > 0.0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """`name` of the Redis storage, or of the memory one while Redis is down (either's result)."""
        now = time.monotonic()
        if now >= self._down_until:
            try:
                result = getattr(self.redis, name)(*args, **kwargs)
            except redis.RedisError as exc:
                self._mark_down(exc)
            else:
                if self._down_until:
                    with self._lock:
                        self._down_until, self._backoff = 0.0, 0.5
                    log.warning("rate-limit Redis is back: limits are shared again")
                return result
        return getattr(self.memory, name)(*args, **kwargs)

    def _mark_down(self, exc: redis.RedisError) -> None:
        record_error(RATE_LIMIT_DB, exc)
        with self._lock:
            if not self._down_until:
                log.warning(
                    "rate-limit Redis unreachable (%s): failing open to per-process limits until it returns",
                    exc.__class__.__name__,
                )
            self._down_until = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Increment a window counter."""
        count: int = self._call("incr", key, expiry, amount=amount)
        return count

    def get(self, key: str) -> int:
        """Read a window counter."""
        count: int = self._call("get", key)
        return count

    def get_expiry(self, key: str) -> float:
        """When a window ends."""
        expiry: float = self._call("get_expiry", key)
        return expiry

    def check(self) -> bool:
        """Healthy as far as callers are concerned: the fallback always answers."""
        return True

    def reset(self) -> int | None:
        """Clear every limit (tests)."""
        self.memory.reset()
        cleared: int | None = self._call("reset")
        return cleared

    def clear(self, key: str) -> None:
        """Clear one limit."""
        self.memory.clear(key)
        self._call("clear", key)
