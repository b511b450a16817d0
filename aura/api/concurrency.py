"""A per-user cap on requests in progress, shared by every worker through Redis.

A rate limit bounds how many requests a user starts per minute, not how many run at once: 60
audits a minute of 2 s each kept every sync worker busy. With this cap one user holds at most
WORKFLOW_MAX_CONCURRENT_PER_USER workers at a time, across all workers and instances sharing the
Redis; the next request gets 429 `too_many_concurrent_requests` at once.

Each request in progress is a member of a sorted set (`aura:inflight:<user>`) scored with its
start time; members older than STALE_SECONDS (a worker killed mid-request never removes its own)
are dropped before counting. The check and the insert are one Lua script, so two workers cannot
both take the last slot.

Redis down (or its circuit breaker open): the cap fails OPEN - the request runs, the error is
counted in redis_connection_errors_total. While Redis is down the revocation check answers 503
before any workflow runs in production, so this opens nothing there. Standalone mode (no Redis):
no cap.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

import redis
from flask import current_app

from aura.api.context import services
from aura.api.jwt import current_user_id
from aura.api.openapi import View
from aura.errors import ErrorCode, TooManyRequests
from aura.infra.redis import AUTH_DB, record_error

log = logging.getLogger("aura.concurrency")

KEY_PREFIX = "aura:inflight:"
STALE_SECONDS = 120  # longer than any request may run (GUNICORN_TIMEOUT is 30 s)
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _acquire(client: redis.Redis, key: str, token: str, limit: int) -> bool:
    now = time.time()
    return bool(client.eval(_ACQUIRE, 1, key, now, now - STALE_SECONDS, token, limit, STALE_SECONDS))


def per_user_concurrency(view: View) -> View:
    """Decorator (inside jwt_required): refuse a user's request while they have the cap running."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _run_capped(view, args, kwargs)

    return wrapper


def _run_capped(view: View, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The wrapper's work (a plain function: mutmut does not mutate decorated ones)."""
    user_id = current_user_id()
    if user_id is None or not services().uses_redis:
        return view(*args, **kwargs)
    client = services().redis.auth
    limit = current_app.config["AURA"].workflow_max_concurrent_per_user
    key, token = f"{KEY_PREFIX}{user_id}", uuid.uuid4().hex
    try:
        acquired = _acquire(client, key, token, limit)
    except redis.RedisError as exc:
        record_error(AUTH_DB, exc)
        return view(*args, **kwargs)  # fail open, see the module docstring
    if not acquired:
        raise TooManyRequests(
            ErrorCode.TOO_MANY_CONCURRENT_REQUESTS,
            f"At most {limit} workflow requests of one user run at once; retry when one has finished.",
            limit=f"{limit} at once",
            per="user",
            retry_after=1,
        )
    try:
        return view(*args, **kwargs)
    finally:
        try:
            client.zrem(key, token)
        except redis.RedisError as exc:  # the member goes stale and is dropped later
            record_error(AUTH_DB, exc)
