"""A hung Redis (SIGSTOP: connections accepted, nothing answered) costs each worker one timeout
per interval, not one per call: the circuit breaker fails fast in between, and /healthz never
touches Redis. Redis continued: everything recovers by itself."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
import requests

from tests.resilience.conftest import TIMEOUT, scrape
from tests.support.errors import SECURITY_HEADERS, assert_error
from tests.support.metrics import value

pytestmark = [pytest.mark.gunicorn, pytest.mark.serial]  # short timeouts: run alone (make test)

# The breaker's interval: the burst below takes a few seconds, and recovery waits one interval
# out; the bound on timeouts counts the intervals the burst spanned, however long it took.
OPEN_SECONDS = 5
WORKERS = 2


def _timeouts(samples: dict) -> float:
    return value(samples, "redis_connection_errors_total", database="auth_db", error_type="timeout")


def test_a_hung_redis_costs_one_timeout_per_worker_and_interval(start_gunicorn, redis_server):
    server = start_gunicorn(
        workers=WORKERS,
        env=dict(
            AURA_ENV="production",
            REDIS_URL=redis_server.url,
            REDIS_SOCKET_TIMEOUT="1",
            REDIS_CIRCUIT_OPEN_SECONDS=str(OPEN_SECONDS),
        ),
    )
    api = server.url + "/api/v1"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT).status_code == 201
    token = requests.post(f"{api}/auth/login", json=creds, timeout=TIMEOUT).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}", "Connection": "close"}
    assert requests.get(f"{api}/auth/me", headers=bearer, timeout=TIMEOUT).status_code == 200
    before = scrape(server)

    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        calls = 0
        for _ in range(8):
            assert_error(
                requests.get(f"{api}/auth/me", headers=bearer, timeout=TIMEOUT),
                503,
                "service_unavailable",
                headers=SECURITY_HEADERS,
            )
            ready = requests.get(server.url + "/readyz", headers={"Connection": "close"}, timeout=TIMEOUT)
            assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "unavailable"
            health = requests.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=TIMEOUT)
            assert health.status_code == 200
            calls += 2
        elapsed = time.monotonic() - started
        during = scrape(server)
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)

    # Without the breaker each of the 16 Redis calls waits out its timeout. With it, each worker
    # pays one per interval (the interval count comes from how long the burst took, so a slow
    # machine loosens the bound instead of failing it).
    intervals = 1 + int(elapsed // OPEN_SECONDS) + 1
    timeouts = _timeouts(during) - _timeouts(before)
    assert 1 <= timeouts <= WORKERS * intervals < calls, (timeouts, elapsed, calls)

    deadline = time.monotonic() + OPEN_SECONDS * 3 + 30
    while requests.get(f"{api}/auth/me", headers=bearer, timeout=TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "did not recover after Redis continued"
        time.sleep(0.5)
    for _ in range(4):  # every worker, one connection each
        while requests.get(f"{api}/auth/me", headers=bearer, timeout=TIMEOUT).status_code != 200:
            assert time.monotonic() < deadline, "a worker did not recover"
            time.sleep(0.5)
