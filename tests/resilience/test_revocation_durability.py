"""Revocations survive a Redis restart without persistence: they are rows in the database first,
and Redis - the fast path - is loaded again from them when it comes back empty."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.resilience.conftest import TIMEOUT
from tests.support.errors import SECURITY_HEADERS, assert_error

pytestmark = pytest.mark.gunicorn


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Connection": "close"}


def test_logged_out_and_rotated_tokens_stay_dead_after_redis_restarts_empty(start_gunicorn, redis_server):
    server = start_gunicorn(
        workers=2, env=dict(AURA_ENV="production", REDIS_URL=redis_server.url, REDIS_CIRCUIT_OPEN_SECONDS="1")
    )
    api = server.url + "/api/v1/auth"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/register", json=creds, timeout=TIMEOUT).status_code == 201
    logged_out = requests.post(f"{api}/login", json=creds, timeout=TIMEOUT).json()
    assert (
        requests.post(f"{api}/logout", headers=_bearer(logged_out["access_token"]), timeout=TIMEOUT).status_code == 200
    )
    rotated = requests.post(f"{api}/login", json=creds, timeout=TIMEOUT).json()
    current = requests.post(f"{api}/refresh", headers=_bearer(rotated["refresh_token"]), timeout=TIMEOUT).json()
    for token in (logged_out["access_token"],):
        assert_error(
            requests.get(f"{api}/me", headers=_bearer(token), timeout=TIMEOUT),
            401,
            "revoked_token",
            headers=SECURITY_HEADERS,
        )

    redis_server.kill()  # no persistence: everything in it is gone
    redis_server.start()

    deadline = time.monotonic() + 60
    while requests.get(f"{api}/me", headers=_bearer(current["access_token"]), timeout=TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "did not recover after Redis restarted"
        time.sleep(0.5)
    for _attempt in range(4):  # every worker
        for token in (logged_out["access_token"],):
            assert_error(
                requests.get(f"{api}/me", headers=_bearer(token), timeout=TIMEOUT),
                401,
                "revoked_token",
                headers=SECURITY_HEADERS,
            )
        assert_error(
            requests.post(f"{api}/refresh", headers=_bearer(logged_out["refresh_token"]), timeout=TIMEOUT),
            401,
            "revoked_token",
            headers=SECURITY_HEADERS,
        )
    # The rotated token is still spent: presenting it is reuse, and ends that session too.
    assert_error(
        requests.post(f"{api}/refresh", headers=_bearer(rotated["refresh_token"]), timeout=TIMEOUT),
        401,
        "revoked_token",
        headers=SECURITY_HEADERS,
    )
    assert_error(
        requests.get(f"{api}/me", headers=_bearer(current["access_token"]), timeout=TIMEOUT),
        401,
        "revoked_token",
        headers=SECURITY_HEADERS,
    )
