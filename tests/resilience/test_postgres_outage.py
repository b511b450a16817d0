"""PostgreSQL stopped and started again under a running Gunicorn: 503 in the JSON error shape,
/readyz says why, and the same workers recover by themselves (no restart).

The database is a private PostgreSQL cluster (initdb in a temp dir, its own port), so stopping it
touches nothing else on the machine.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.resilience.conftest import TIMEOUT, scrape
from tests.support.errors import SECURITY_HEADERS, assert_error
from tests.support.metrics import value

pytestmark = pytest.mark.gunicorn

STRUGGLE = {"exercise_id": "loops-1", "edit_frequency": 25, "error_count": 14}


def _answers(server, creds: dict, bearer: dict) -> dict[str, requests.Response]:
    """One of each request that needs the database, each on a new connection (any worker)."""
    api, close = server.url + "/api/v1", {"Connection": "close"}
    return {
        "register": requests.post(
            f"{api}/auth/register",
            timeout=TIMEOUT,
            headers=close,
            json={"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-pw"},
        ),
        "login": requests.post(f"{api}/auth/login", json=creds, headers=close, timeout=TIMEOUT),
        "me": requests.get(f"{api}/auth/me", headers={**bearer, **close}, timeout=TIMEOUT),
        "struggle": requests.post(
            f"{api}/workflows/struggle", json=STRUGGLE, headers={**bearer, **close}, timeout=TIMEOUT
        ),
        "readyz": requests.get(server.url + "/readyz", headers=close, timeout=TIMEOUT),
    }


def test_postgres_stopped_and_restarted(start_gunicorn, private_postgres):
    server = start_gunicorn(workers=2, database_url=private_postgres.url)
    master, workers = server.proc.pid, sorted(server.wait_for_workers(2))
    api = server.url + "/api/v1"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT).status_code == 201
    bearer = {
        "Authorization": "Bearer "
        + requests.post(f"{api}/auth/login", json=creds, timeout=TIMEOUT).json()["access_token"]
    }
    for _ in range(2):  # both workers hold pooled connections that the outage will break
        assert {k: r.status_code for k, r in _answers(server, creds, bearer).items()} == {
            "register": 201,
            "login": 200,
            "me": 200,
            "struggle": 201,
            "readyz": 200,
        }
    before = scrape(server)

    private_postgres.stop()
    for _ in range(3):
        answers = _answers(server, creds, bearer)
        for name in ("register", "login", "me", "struggle"):
            body = assert_error(answers[name], 503, "service_unavailable", headers=SECURITY_HEADERS)
            assert "database" in body["message"], (name, body)
        ready = assert_error(
            answers["readyz"], 503, "service_unavailable", extra={"status", "mode", "checks"}, headers=SECURITY_HEADERS
        )
        # Public: says what, never which exception (that is in the log).
        assert ready["checks"]["database"] == "unavailable" and ready["checks"]["redis"] == "ok"
        assert ready["message"] == "unavailable: database"
        assert requests.get(server.url + "/healthz", timeout=TIMEOUT).status_code == 200  # alive
    during = scrape(server)
    assert value(during, "workflow_failures_total", workflow_type="struggle", error_type="service_unavailable") > value(
        before, "workflow_failures_total", workflow_type="struggle", error_type="service_unavailable"
    )
    assert value(during, "http_requests_total", method="POST", endpoint="/api/v1/auth/login", status_code="503") >= 3

    private_postgres.start()  # same port, same data
    deadline = time.monotonic() + 30
    while True:
        statuses = {k: r.status_code for k, r in _answers(server, creds, bearer).items()}
        if statuses == {"register": 201, "login": 200, "me": 200, "struggle": 201, "readyz": 200}:
            break
        assert time.monotonic() < deadline, f"no recovery: {statuses}"
        time.sleep(0.5)
    for _ in range(3):  # every worker's pool recovered, not just one
        assert {k: r.status_code for k, r in _answers(server, creds, bearer).items()} == {
            "register": 201,
            "login": 200,
            "me": 200,
            "struggle": 201,
            "readyz": 200,
        }
    assert (server.proc.pid, sorted(server.worker_pids())) == (master, workers), "something restarted"
    after = scrape(server)
    assert (
        sum(
            v
            for (name, labels), v in after.items()
            if name == "http_requests_total" and dict(labels)["status_code"] == "500"
        )
        == 0
    )


def test_a_spent_refresh_token_while_the_database_is_down_is_a_503(start_gunicorn, private_postgres):
    """Reuse of a rotated refresh token ends its session - a database write. With the database
    down that write cannot happen: 503 in the JSON shape (it was a 500: the error handler for a
    revoked token raised), and once the database is back the retry ends the session."""
    server = start_gunicorn(workers=1, database_url=private_postgres.url)
    api = server.url + "/api/v1/auth"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/register", json=creds, timeout=TIMEOUT).status_code == 201
    spent = requests.post(f"{api}/login", json=creds, timeout=TIMEOUT).json()["refresh_token"]
    current = requests.post(f"{api}/refresh", headers={"Authorization": f"Bearer {spent}"}, timeout=TIMEOUT)
    assert current.status_code == 200, current.text

    private_postgres.stop()
    for _ in range(2):
        answer = requests.post(f"{api}/refresh", headers={"Authorization": f"Bearer {spent}"}, timeout=TIMEOUT)
        body = assert_error(answer, 503, "service_unavailable", headers=SECURITY_HEADERS)
        assert "database" in body["message"], body
    private_postgres.start()
    deadline = time.monotonic() + 30
    while True:
        answer = requests.post(f"{api}/refresh", headers={"Authorization": f"Bearer {spent}"}, timeout=TIMEOUT)
        if answer.status_code != 503:
            break
        assert time.monotonic() < deadline, "no recovery"
        time.sleep(0.5)
    assert_error(answer, 401, "revoked_token", headers=SECURITY_HEADERS)
    rotated = current.json()["refresh_token"]  # the reuse ended the whole session
    assert_error(
        requests.post(f"{api}/refresh", headers={"Authorization": f"Bearer {rotated}"}, timeout=TIMEOUT),
        401,
        "revoked_token",
        headers=SECURITY_HEADERS,
    )
