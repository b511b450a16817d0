"""Limits hold exactly across workers and instances sharing Redis; a Redis outage is survived."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from aura.testing.servers import RedisServer
from tests.support.metrics import parse_exposition, value

pytestmark = pytest.mark.gunicorn

LOGIN = "/api/v1/auth/login"
LIMIT = 12
LIMITS = dict(
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_LOGIN=f"{LIMIT} per hour",
    RATE_LIMIT_LOGIN_ACCOUNT="1000 per hour",
    RATE_LIMIT_DEFAULT="1000 per hour",
    RATE_LIMIT_REGISTER="1000 per hour",
)


def _login(url: str, email: str) -> int:
    return requests.post(
        url + LOGIN, json={"email": email, "password": "wrong-password"}, headers={"Connection": "close"}, timeout=10
    ).status_code


def _metrics(server) -> dict:
    return parse_exposition(requests.get(server.url + "/metrics", timeout=10).text)


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.kill()


def test_limit_holds_exactly_across_workers_and_two_instances(gunicorn, redis_server):
    env = dict(LIMITS, REDIS_URL=redis_server.url)
    first, second = gunicorn(workers=4, env=env), gunicorn(workers=2, env=env)
    email = f"{uuid.uuid4().hex}@example.com"
    codes = [_login((first, second)[i % 2].url, email) for i in range(LIMIT + 8)]
    assert codes.count(401) == LIMIT and codes.count(429) == 8
    assert codes[:LIMIT] == [401] * LIMIT

    scraped = [_metrics(first), _metrics(second)]
    evaluated = sum(value(m, "rate_limit_requests_total", endpoint=LOGIN) for m in scraped)
    hits = sum(value(m, "rate_limit_hits_total", endpoint=LOGIN, client_id="127.0.0.1") for m in scraped)
    assert (evaluated, hits) == (LIMIT + 8, 8)


def test_redis_outage_fails_open_fails_closed_and_recovers(gunicorn, redis_server):
    server = gunicorn(workers=2, env=dict(LIMITS, REDIS_URL=redis_server.url, AURA_ENV="production"))
    api = server.url + "/api/v1/auth"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/register", json=creds, timeout=10).status_code == 201
    token = requests.post(f"{api}/login", json=creds, timeout=10).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}", "Connection": "close"}

    redis_server.kill()
    during = [
        requests.post(
            f"{api}/login", json=dict(creds, password="wrong-password"), headers={"Connection": "close"}, timeout=10
        ).status_code
        for _ in range(6)
    ]
    assert set(during) <= {401, 429} and 401 in during  # the limiter failed open, no 500
    me = [requests.get(f"{api}/me", headers=bearer, timeout=10) for _ in range(4)]
    assert {r.status_code for r in me} == {503}  # revocation cannot be checked: fail closed
    assert {r.json()["error"] for r in me} == {"service_unavailable"}
    ready = requests.get(server.url + "/readyz", timeout=10)
    assert ready.status_code == 503 and "redis" in ready.json()["message"]
    samples = _metrics(server)
    for database in ("auth_db", "rate_limit_db"):
        errors = sum(
            v
            for (name, labels), v in samples.items()
            if name == "redis_connection_errors_total" and dict(labels)["database"] == database
        )
        assert errors > 0, database

    redis_server.start()
    deadline = time.monotonic() + 30  # the limiter retries Redis with a backoff capped at 8 s
    while time.monotonic() < deadline:
        if (
            requests.get(f"{api}/me", headers=bearer, timeout=10).status_code == 200
            and requests.get(server.url + "/readyz", timeout=10).status_code == 200
        ):
            break
        time.sleep(0.5)
    else:
        pytest.fail("did not recover after Redis came back")
    import redis

    client = redis.Redis.from_url(redis_server.url, db=13)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not client.keys("*"):
        _login(server.url, creds["email"])
        time.sleep(0.5)
    assert client.keys("*"), "limits are shared in Redis again"


def test_pool_gauges_and_query_histogram(gunicorn):
    server = gunicorn(workers=2, env=LIMITS)
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    registered = requests.post(server.url + "/api/v1/auth/register", json=creds, timeout=10)
    assert registered.status_code == 201, registered.text
    for _ in range(6):
        requests.post(server.url + LOGIN, json=creds, headers={"Connection": "close"}, timeout=10)
        requests.get(server.url + "/readyz", headers={"Connection": "close"}, timeout=10)

    def pooled(samples: dict) -> dict[str, float]:
        """Connections (in use + idle) per pool, summed over the workers."""
        counts = {
            "database": value(samples, "database_connections_active") + value(samples, "database_connections_idle")
        }
        for database in ("auth_db", "rate_limit_db"):
            counts[database] = value(samples, "redis_connections_active", database=database) + value(
                samples, "redis_connections_idle", database=database
            )
        return counts

    # Each worker's sampling thread writes the gauges once a second, requests or not.
    deadline = time.monotonic() + 15
    samples = _metrics(server)
    while min(pooled(samples).values()) < 1 and time.monotonic() < deadline:
        time.sleep(0.25)
        samples = _metrics(server)
    assert min(pooled(samples).values()) >= 1, pooled(samples)
    gauges = (
        "redis_connections_active",
        "redis_connections_idle",
        "database_connections_active",
        "database_connections_idle",
    )
    assert all(v >= 0 for (name, _), v in samples.items() if name in gauges)
    for operation in ("select", "insert"):
        assert value(samples, "database_query_duration_seconds_count", operation=operation) >= 1
