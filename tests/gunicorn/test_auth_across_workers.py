"""A token issued by one worker is accepted by every worker; once revoked, rejected by all."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.gunicorn


def test_auth_flow_across_four_workers(gunicorn):
    server = gunicorn(workers=4)
    api = f"{server.url}/api/v1/auth"
    email = f"{uuid.uuid4().hex}@example.com"
    creds = {"email": email, "password": "long-enough-password"}
    assert requests.post(f"{api}/register", json=creds, timeout=10).status_code == 201
    tokens = requests.post(f"{api}/login", json=creds, timeout=10).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    # A new connection per request, so the kernel hands them to different workers.
    served_by_all = [requests.get(f"{api}/me", headers=bearer, timeout=10) for _ in range(40)]
    assert {r.status_code for r in served_by_all} == {200}

    assert requests.post(f"{api}/logout", headers=bearer, timeout=10).status_code == 200
    after = [requests.get(f"{api}/me", headers=bearer, timeout=10) for _ in range(40)]
    assert {r.status_code for r in after} == {401}
    assert {r.json()["error"] for r in after} == {"revoked_token"}
