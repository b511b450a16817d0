"""The Redis circuit breaker, as the metrics and /readyz see it."""

from __future__ import annotations

from aura.api.context import services
from tests.support.metrics import registry_samples, value

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
