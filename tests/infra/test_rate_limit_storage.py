"""aura.infra.rate_limit_storage on its own: counts in Redis while it answers, per process while
it does not, Redis retried after a doubling backoff capped at MAX_BACKOFF_SECONDS, and shared
again once it answers.

The test Redis (rate-limit database) stands for Redis up, a port where nothing listens for Redis
down; the storage's clock (`time.monotonic` as the module sees it) is a counter the tests move."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from limits.storage import RedisSentinelStorage, RedisStorage

from aura.infra import rate_limit_storage
from aura.infra.rate_limit_storage import MAX_BACKOFF_SECONDS, FailoverRedisStorage
from tests.conftest import REDIS_URL, TEST_RATE_LIMIT_DB
from tests.support.metrics import registry_samples, value

URI = f"aura+{REDIS_URL}/{TEST_RATE_LIMIT_DB}"
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


class _Clock:
    """The module's `time`: only `monotonic`, moved by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def raw():
    """A client of the test rate-limit database, emptied of the storage's keys before and after."""
    client = redis.Redis.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB)
    client.ping()
    for key in client.scan_iter("LIMITS*"):
        client.delete(key)
    yield client
    for key in client.scan_iter("LIMITS*"):
        client.delete(key)
    client.close()


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(rate_limit_storage, "time", fake)
    return fake


def _errors() -> float:
    return value(
        registry_samples(), "redis_connection_errors_total", database="rate_limit_db", error_type="connection_failed"
    )


def _down(storage: FailoverRedisStorage) -> RedisStorage:
    """Point the storage's Redis side at nothing; returns the working one to put back."""
    working = storage.redis
    storage.redis = RedisStorage(DOWN, socket_connect_timeout=0.5)
    return working


def test_the_schemes_pick_plain_redis_or_sentinel():
    assert FailoverRedisStorage.STORAGE_SCHEME == ["aura+redis", "aura+redis+sentinel"]
    plain = FailoverRedisStorage(URI)
    assert type(plain.redis) is RedisStorage
    assert plain.pool is plain.redis.storage.connection_pool
    assert plain.pool.connection_kwargs["db"] == TEST_RATE_LIMIT_DB
    sentinel = FailoverRedisStorage("aura+redis+sentinel://127.0.0.1:1/aura-primary", socket_timeout=0.25, db=3)
    assert type(sentinel.redis) is RedisSentinelStorage  # built without connecting
    assert sentinel.redis.service_name == "aura-primary"
    options = sentinel.redis.storage.connection_pool.connection_kwargs  # the primary's, through Sentinel
    assert options["socket_timeout"] == 0.25 and options["db"] == 3
    assert plain.base_exceptions == () and not plain.degraded and plain.check()


def test_options_reach_redis_py():
    storage = FailoverRedisStorage(URI, socket_timeout=0.75, socket_connect_timeout=0.5)
    assert storage.pool.connection_kwargs["socket_timeout"] == 0.75
    assert storage.pool.connection_kwargs["socket_connect_timeout"] == 0.5


def test_while_redis_answers_the_counts_are_shared_there(raw):
    storage = FailoverRedisStorage(URI)
    assert storage.incr("login/ann", 60) == 1
    assert storage.incr("login/ann", 60, amount=3) == 4
    assert storage.get("login/ann") == 4
    assert int(raw.get("LIMITS:login/ann")) == 4  # in Redis, where every worker sees it
    assert FailoverRedisStorage(URI).get("login/ann") == 4  # another process's storage
    assert storage.memory.get("login/ann") == 0
    assert time.time() + 50 < storage.get_expiry("login/ann") <= time.time() + 61
    assert not storage.degraded and storage.check()

    storage.clear("login/ann")
    assert storage.get("login/ann") == 0 and raw.get("LIMITS:login/ann") is None
    storage.incr("a", 60)
    storage.incr("b", 60)
    assert storage.reset() == 2
    assert list(raw.scan_iter("LIMITS*")) == []


def test_an_unreachable_redis_fails_open_to_counts_in_this_process(raw, clock, caplog):
    storage = FailoverRedisStorage(URI)
    storage.incr("login/ann", 60)  # one in Redis, before the outage
    _down(storage)
    errors = _errors()
    with caplog.at_level(logging.WARNING, logger="aura.rate_limit"):
        assert storage.incr("login/ann", 60) == 1  # counted here, from nothing
        assert storage.degraded and storage.check()
        assert _errors() == errors + 1
        assert storage.incr("login/ann", 60, amount=2) == 3  # Redis not tried again yet
        assert storage.get("login/ann") == 3
        assert storage.memory.get("login/ann") == 3
        assert time.time() + 50 < storage.get_expiry("login/ann") <= time.time() + 61
        assert _errors() == errors + 1
    assert int(raw.get("LIMITS:login/ann")) == 1  # the shared count is left as it was
    outage = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(outage) == 1 and "ConnectionError" in outage[0].getMessage()


def test_redis_is_retried_after_a_doubling_backoff_up_to_the_cap(clock, caplog):
    storage = FailoverRedisStorage(URI)
    _down(storage)
    errors = _errors()
    with caplog.at_level(logging.WARNING, logger="aura.rate_limit"):
        storage.get("k")  # the first failure: retried 0.5 s later
        tried = 1
        for wait in (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0):
            clock.now += wait - 0.25
            storage.get("k")
            assert _errors() == errors + tried, f"Redis tried again before {wait} s"
            clock.now += 0.25
            storage.get("k")
            tried += 1
            assert _errors() == errors + tried, f"Redis not tried again after {wait} s"
    assert MAX_BACKOFF_SECONDS == 8.0
    assert storage.degraded
    assert len([r for r in caplog.records if "failing open" in r.getMessage()]) == 1  # once per outage


def test_the_counts_are_shared_again_once_redis_answers(raw, clock, caplog):
    storage = FailoverRedisStorage(URI)
    working = _down(storage)
    errors = _errors()
    storage.incr("k", 60)
    clock.now += 0.5
    storage.incr("k", 60)  # tried and failed again: Redis next tried 1 s later
    storage.redis = working  # Redis is back
    clock.now += 0.5
    assert storage.incr("k", 60) == 3  # Redis is not asked before the backoff ends
    clock.now += 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aura.rate_limit"):
        assert storage.incr("k", 60) == 1  # in Redis again
    assert not storage.degraded
    assert int(raw.get("LIMITS:k")) == 1
    assert [r.getMessage() for r in caplog.records] == ["rate-limit Redis is back: limits are shared again"]
    assert storage.get("k") == 1
    assert _errors() == errors + 2
    caplog.clear()

    # The backoff starts again from 0.5 s at the next outage.
    _down(storage)
    storage.get("k")
    clock.now += 0.5
    storage.get("k")
    assert _errors() == errors + 4
    assert len([r for r in caplog.records if "failing open" in r.getMessage()]) == 1


def test_clear_and_reset_also_forget_the_counts_made_during_an_outage(raw, clock):
    storage = FailoverRedisStorage(URI)
    working = _down(storage)
    storage.incr("k", 60, amount=5)
    storage.incr("other", 60)
    storage.redis = working
    clock.now += 0.5
    storage.clear("k")  # in Redis, and here
    assert storage.memory.get("k") == 0 and storage.memory.get("other") == 1
    assert storage.reset() == 0  # nothing in Redis
    assert storage.memory.get("other") == 0
    assert not storage.degraded


def test_clear_and_reset_while_redis_is_down_clear_the_counts_here(clock):
    storage = FailoverRedisStorage(URI)
    _down(storage)
    storage.incr("k", 60, amount=2)
    storage.incr("other", 60)
    storage.clear("k")
    assert storage.get("k") == 0 and storage.get("other") == 1
    storage.reset()
    assert storage.get("other") == 0
    assert storage.degraded
