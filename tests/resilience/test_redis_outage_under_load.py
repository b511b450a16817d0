"""Redis killed under load and started again: the limiter fails open and recovers, revocation
checks fail closed (503, production mode), no other 5xx, no dropped connection, errors counted."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
import requests

from tests.resilience.conftest import TIMEOUT, Load, scrape
from tests.support.errors import SECURITY_HEADERS, assert_error
from tests.support.metrics import value

pytestmark = pytest.mark.gunicorn

LIMITS = dict(
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_LOGIN="100000 per hour",
    RATE_LIMIT_LOGIN_ACCOUNT="100000 per hour",
    RATE_LIMIT_DEFAULT="100000 per hour",
    RATE_LIMIT_WORKFLOWS="100000 per hour",
)


def _redis_errors(samples: dict, database: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "redis_connection_errors_total" and dict(labels)["database"] == database
    )


def test_redis_killed_under_load_and_restarted(start_gunicorn, redis_server):
    server = start_gunicorn(workers=2, env=dict(LIMITS, AURA_ENV="production", REDIS_URL=redis_server.url))
    api = server.url + "/api/v1"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT).status_code == 201
    token = requests.post(f"{api}/auth/login", json=creds, timeout=TIMEOUT).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    mix = [
        ("login", "POST", "/api/v1/auth/login", {"json": dict(creds, password="wrong-password")}),
        ("me", "GET", "/api/v1/auth/me", {"headers": bearer}),
        ("healthz", "GET", "/healthz", {}),
        (
            "struggle",
            "POST",
            "/api/v1/workflows/struggle",
            {"headers": bearer, "json": {"exercise_id": "x", "edit_frequency": 1, "error_count": 0}},
        ),
    ]
    before = scrape(server)

    with Load(server.url, mix, threads=3) as load:
        for name, status in (("login", 401), ("me", 200), ("struggle", 201)):
            load.wait_for("before", name, status, count=3)

        load.phase = "killing"
        redis_server.kill()
        load.phase = "outage"
        for name, status in (("login", 401), ("me", 503), ("struggle", 503), ("healthz", 200)):
            load.wait_for("outage", name, status, count=5)
        # Answers during the outage, one by one, in the error shape and with the security headers.
        me = requests.get(f"{api}/auth/me", headers=bearer, timeout=TIMEOUT)
        assert_error(me, 503, "service_unavailable", headers=SECURITY_HEADERS)
        # A 503 asks the client to come back in 5 s (not at the end of a rate-limit window).
        assert me.headers["Retry-After"] == "5"
        ready = requests.get(server.url + "/readyz", timeout=TIMEOUT)
        assert_error(ready, 503, "service_unavailable", extra={"status", "mode", "checks"}, headers=SECURITY_HEADERS)
        assert ready.json()["checks"]["redis"] == "unavailable" and "redis" in ready.json()["message"]
        during = scrape(server)

        load.phase = "restarting"
        redis_server.start()
        load.phase = "recovery"
        load.wait_for("recovery", "me", 200, count=3)
        load.wait_for("recovery", "struggle", 201, count=3)
        load.phase = "after"
        for name, status in (("login", 401), ("me", 200), ("struggle", 201)):
            load.wait_for("after", name, status, count=3)

    outcomes = load.summary()
    # Nothing was dropped or timed out, whatever the phase: every request got an HTTP answer.
    assert all(isinstance(result, int) for result in load.results()), outcomes
    # The only 5xx is the fail-closed 503, and only for requests that need a revocation check.
    assert load.results(name="healthz") == {200}, outcomes
    assert load.results(name="login") <= {401}, outcomes  # the limiter failed open, never 5xx
    assert load.results("before", "me") == {200} and load.results("after", "me") == {200}, outcomes
    assert load.results("outage", "me") == {503}, outcomes  # fail closed, every time
    assert load.results("outage", "struggle") == {503}, outcomes
    assert {r for r in load.results() if r >= 500} == {503}, outcomes

    # Error counters moved for both logical databases while Redis was down.
    for database in ("auth_db", "rate_limit_db"):
        assert _redis_errors(during, database) > _redis_errors(before, database), database
    after = scrape(server)
    assert value(after, "http_requests_total", method="GET", endpoint="/api/v1/auth/me", status_code="500") == 0
    assert ready_again(server)

    # The limiter is shared in Redis again (it retries with a backoff capped at 8 s).
    client = redis.Redis.from_url(redis_server.url, db=13)
    deadline = time.monotonic() + 30
    while not client.keys("*"):
        assert time.monotonic() < deadline, "rate limits never went back to Redis"
        requests.post(
            f"{api}/auth/login",
            json=dict(creds, password="wrong-password"),
            headers={"Connection": "close"},
            timeout=TIMEOUT,
        )
        time.sleep(0.5)


def ready_again(server) -> bool:
    response = requests.get(server.url + "/readyz", timeout=TIMEOUT)
    return response.status_code == 200 and response.json()["checks"] == {"database": "ok", "redis": "ok"}
