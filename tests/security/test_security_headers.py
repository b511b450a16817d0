"""Security headers on every answer the app gives, over a real socket - errors included.

(503 answers are checked where outages are made: tests/resilience.)
"""

from __future__ import annotations

import pytest

from tests.security.conftest import HARDENED, METRICS_TOKEN
from tests.support.auth import AuthActions, bearer

pytestmark = pytest.mark.gunicorn

ALWAYS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def assert_security_headers(response, no_store: bool) -> None:
    for name, expected in ALWAYS.items():
        assert response.headers.get(name) == expected, (response.status_code, name, dict(response.headers))
    if no_store:
        assert response.headers.get("Cache-Control") == "no-store", dict(response.headers)
        assert response.headers.get("Pragma") == "no-cache", dict(response.headers)


def test_headers_on_every_kind_of_answer(hardened):
    client = hardened.client()
    account = AuthActions(client)
    answers = {
        "healthz 200": (client.get("/healthz"), 200, False),
        "readyz 200": (client.get("/readyz"), 200, False),
        "openapi 200": (client.get("/api/v1/openapi.json"), 200, False),
        "register 201": (account.register(), 201, True),
        "login 200": (account.login(), 200, True),
        "me 200": (account.me(), 200, True),
        "refresh 200": (account.refresh(), 200, True),
        "struggle 201": (
            client.post(
                "/api/v1/workflows/struggle",
                headers=bearer(account.access),
                json={"exercise_id": "x", "edit_frequency": 1, "error_count": 0},
            ),
            201,
            False,
        ),
        "me 401": (client.get("/api/v1/auth/me"), 401, True),
        "login 400": (
            client.post("/api/v1/auth/login", data=b"{nope", headers={"Content-Type": "application/json"}),
            400,
            True,
        ),
        "no such page 404": (client.get("/no/such/page"), 404, False),
        "no such result 404": (client.get("/api/v1/workflows/audit/nope", headers=bearer(account.access)), 404, False),
        "wrong method 405": (client.request("DELETE", "/api/v1/auth/login"), 405, True),
        "too large 413": (
            client.post(
                "/api/v1/auth/login", data=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
            ),
            413,
            True,
        ),
        "not JSON 415": (client.post("/api/v1/auth/login", data=b"email=a"), 415, True),
        "invalid 422": (client.post("/api/v1/auth/register", json={"email": "nope"}), 422, True),
        "metrics 401": (client.get("/metrics"), 401, False),
        "metrics 200": (client.get("/metrics", headers=bearer(METRICS_TOKEN)), 200, False),
    }
    for name, (response, status, no_store) in answers.items():
        assert response.status_code == status, (name, response.status_code, response.text[:200])
        assert_security_headers(response, no_store)
    # Token-bearing answers are never cached anywhere.
    assert "access_token" in answers["login 200"][0].json()
    assert answers["metrics 200"][0].headers["Cache-Control"] == "no-store"


def test_headers_on_429(hardened):
    client = hardened.client()
    limit = int(HARDENED["RATE_LIMIT_LOGIN"].split()[0])
    for n in range(limit):
        client.post("/api/v1/auth/login", json={"email": f"h{n}@example.com", "password": "guess-1234"})
    response = client.post("/api/v1/auth/login", json={"email": "h@example.com", "password": "guess-1234"})
    assert response.status_code == 429
    assert_security_headers(response, no_store=True)


def test_headers_on_an_unexpected_500(app):
    """A genuine 500 cannot be provoked over the socket without a bug, so one is planted in-process."""

    @app.get("/api/v1/auth/boom")
    def boom():
        raise RuntimeError("planted fault")

    response = app.test_client().get("/api/v1/auth/boom")
    assert response.status_code == 500 and response.get_json()["error"] == "internal_error"
    assert_security_headers(response, no_store=True)
