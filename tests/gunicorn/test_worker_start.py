"""What each Gunicorn worker starts when it starts, before it serves any request."""

from __future__ import annotations

import time

import pytest
import requests

from aura.testing.servers import free_port
from tests.support.metrics import parse_exposition, value

pytestmark = pytest.mark.gunicorn


def test_every_worker_samples_its_pools_without_serving_a_request(gunicorn):
    # The readiness check is the only request, so one of the two workers serves none. Each
    # worker pinged Redis while its app was built (one idle auth_db connection each): the sum
    # reaches 2 only if both sampling threads run. Read from the master's listener, which is
    # no worker and so cannot start one.
    port = free_port()
    gunicorn(workers=2, METRICS_PORT=str(port))

    def idle_auth_connections() -> float:
        response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert response.status_code == 200
        return value(parse_exposition(response.text), "redis_connections_idle", database="auth_db")

    deadline = time.monotonic() + 15
    idle = idle_auth_connections()
    while idle < 2 and time.monotonic() < deadline:
        time.sleep(0.25)
        idle = idle_auth_connections()
    assert idle == 2
