"""The Redis circuit breaker, as the metrics and /readyz see it."""

from __future__ import annotations

import pytest
import redis

from aura.api.context import services
from aura.config import Settings
from aura.infra.redis import (
    CircuitBreaker,
    CircuitOpen,
    GuardedRedis,
    RedisClients,
    _Guard,
    classify_error,
    client_options,
    record_error,
)
from tests.support.metrics import delta, registry_samples, value

UNREACHABLE = "redis://127.0.0.1:1"  # nothing listens: connection refused at once


def test_calls_the_open_breaker_refuses_are_not_counted_as_redis_errors(make_app):
    app = make_app(env="production", redis_url=UNREACHABLE, redis_circuit_open_seconds=3600)
    client = app.test_client()
    errors = dict(database="auth_db", error_type="connection_failed")
    before = value(registry_samples(), "redis_connection_errors_total", **errors)
    codes = [client.get("/readyz").status_code for _ in range(4)]
    assert codes == [503] * 4
    assert services(app).redis.breaker.is_open  # the last three were refused, Redis untried
    assert value(registry_samples(), "redis_connection_errors_total", **errors) == before + 1


# In-process checks of aura/infra/redis.py's rules (mutation testing's redis-client group).


def test_errors_are_classified_into_the_bounded_labels():
    assert classify_error(redis.TimeoutError("slow")) == "timeout"
    assert classify_error(redis.ConnectionError("refused")) == "connection_failed"
    assert classify_error(redis.ResponseError("WRONGTYPE")) == "other"
    assert classify_error(ValueError("not redis")) == "other"


def test_an_error_is_counted_against_its_database_and_a_refused_call_is_not(app):
    samples = registry_samples()
    record_error("rate_limit_db", redis.TimeoutError("slow"))
    record_error("rate_limit_db", CircuitOpen("refused"))
    moved = {k: v for k, v in delta(samples, registry_samples()).items() if k[0] == "redis_connection_errors_total"}
    assert moved == {("redis_connection_errors_total", (("database", "rate_limit_db"), ("error_type", "timeout"))): 1.0}


def test_the_breaker_opens_on_a_trip_and_closes_on_reset():
    breaker = CircuitBreaker(3600)
    assert not breaker.is_open
    breaker.trip(redis.ConnectionError("refused"))
    assert breaker.is_open
    breaker.reset()
    assert not breaker.is_open
    breaker.trip(redis.ConnectionError("refused"))  # a second outage opens it again
    assert breaker.is_open


def _guarded(breaker: CircuitBreaker, exc: BaseException | None) -> None:
    with _Guard(breaker):
        if exc is not None:
            raise exc


def test_the_guard_trips_on_timeouts_and_connection_errors_only():
    for error in (redis.TimeoutError("slow"), redis.ConnectionError("refused")):
        breaker = CircuitBreaker(3600)
        with pytest.raises(type(error)):
            _guarded(breaker, error)
        assert breaker.is_open
    breaker = CircuitBreaker(3600)
    with pytest.raises(redis.ResponseError):  # Redis answered: not a reason to stop calling it
        _guarded(breaker, redis.ResponseError("WRONGTYPE"))
    assert not breaker.is_open


def test_a_refused_call_neither_reaches_redis_nor_extends_the_interval():
    breaker = CircuitBreaker(3600)
    breaker.trip(redis.ConnectionError("refused"))
    opened_until = breaker._open_until
    reached = []
    with pytest.raises(CircuitOpen):
        with _Guard(breaker):
            reached.append(True)
    assert reached == [] and breaker._open_until == opened_until
    # A CircuitOpen raised inside a guarded block (a nested guard) does not re-trip it either.
    breaker = CircuitBreaker(3600)
    with pytest.raises(CircuitOpen):
        _guarded(breaker, CircuitOpen("refused further in"))
    assert not breaker.is_open


def test_a_success_closes_the_breaker_once_its_interval_is_over():
    breaker = CircuitBreaker(0.0)  # the interval is over at once: the next call is the trial
    breaker.trip(redis.ConnectionError("refused"))
    assert breaker._open_until
    _guarded(breaker, None)
    assert breaker._open_until == 0.0


def test_client_options_bound_every_wait_and_retry_once():
    options = client_options(0.25)
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.25
    assert options["health_check_interval"] == 30
    assert options["retry"].get_retries() == 1


def test_one_server_url_gets_a_pool_per_database(tmp_path):
    settings = Settings.from_env(
        {"REDIS_URL": "redis://cache:6390", "REDIS_AUTH_DB": "4", "REDIS_RATE_LIMIT_DB": "5"},
        instance_path=tmp_path,
    )
    clients = RedisClients(settings)
    assert clients.sentinel is None
    assert clients.auth.connection_pool.connection_kwargs["db"] == 4
    assert clients.auth.breaker is clients.breaker
    assert clients.breaker.open_seconds == settings.redis_circuit_open_seconds
    kwargs = clients.auth.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["retry"]) == (settings.redis_socket_timeout, clients.options["retry"])
    assert clients.rate_limit_uri == "redis://cache:6390/5"
    assert clients.rate_limit_options() == clients.options
    assert clients.rate_limit_pool is None  # until the rate limiter stores its limits here (aura.infra.pools)
    clients.auth.close()


def test_a_sentinel_url_reaches_the_primary_of_the_service(tmp_path):
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis+sentinel://aura:pw@s0:26379,s1:26380/aura-main",
            "REDIS_AUTH_DB": "4",
            "REDIS_RATE_LIMIT_DB": "5",
            "REDIS_SOCKET_TIMEOUT": "0.5",
        },
        instance_path=tmp_path,
    )
    clients = RedisClients(settings)
    assert clients.sentinel is not None
    assert [s.connection_pool.connection_kwargs["host"] for s in clients.sentinel.sentinels] == ["s0", "s1"]
    sentinel_kwargs = clients.sentinel.sentinel_kwargs
    assert (sentinel_kwargs["password"], sentinel_kwargs["socket_timeout"]) == ("pw", 0.5)
    assert (sentinel_kwargs["socket_connect_timeout"], sentinel_kwargs["username"]) == (0.5, "aura")
    assert clients.sentinel.connection_kwargs == {"username": "aura", "password": "pw"}
    pool = clients.auth.connection_pool
    assert pool.service_name == "aura-main" and pool.connection_kwargs["db"] == 4
    assert isinstance(clients.auth, GuardedRedis)  # its commands go through the breaker
    assert (pool.connection_kwargs["socket_timeout"], pool.connection_kwargs["retry"]) == (
        0.5,
        clients.options["retry"],
    )
    assert clients.auth.breaker is clients.breaker
    assert clients.rate_limit_uri == settings.redis_url  # the limiter reads the service from it
    options = clients.rate_limit_options()
    assert options["db"] == 5 and options["use_replicas"] is False
    assert options["sentinel_kwargs"] == {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    assert options["retry"] is clients.options["retry"]


def test_ping_answers_true_and_false_without_raising(app, make_app):
    assert services(app).redis.ping() is True
    down = make_app(redis_url=UNREACHABLE, redis_circuit_open_seconds=3600)
    assert services(down).redis.ping() is False
    assert services(down).redis.ping() is False  # refused by the breaker, still no exception


def test_commands_through_the_breaker_keep_their_options(app):
    client = services(app).redis.auth
    client.zadd("aura-test:scores", {"a": 1.5})
    # zrange passes withscores as an option of execute_command: dropped, the reply is not paired
    assert client.zrange("aura-test:scores", 0, -1, withscores=True) == [(b"a", 1.5)]
