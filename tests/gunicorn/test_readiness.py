"""Readiness (the metrics listener's /readyz, the pod's readiness probe) answers whether this
instance can serve - not whether the dependencies every pod shares are up.

During a Redis outage the pod stays ready and Aura answers 503 in the JSON error shape, which its
own metrics count (the availability SLO pages on them); if readiness failed instead, every pod
would leave the Service at once and the ingress's 503s would reach no Aura metric. An instance
whose workers have not loaded the app is not ready, and /healthz (liveness) still says alive.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from aura.testing.servers import Gunicorn, RedisServer, free_port
from tests.support.errors import assert_error
from tests.support.metrics import parse_exposition
from tests.support.programs import path as program_path

pytestmark = pytest.mark.gunicorn

TIMEOUT = 20


def _get(url: str) -> requests.Response:
    return requests.get(url, headers={"Connection": "close"}, timeout=TIMEOUT)


def _answered_503(listener: str) -> float:
    """http_requests_total of 503 answers, all endpoints, from the metrics listener."""
    samples = parse_exposition(_get(listener + "/metrics").text)
    return sum(
        v for (name, labels), v in samples.items() if name == "http_requests_total" and ("status_code", "503") in labels
    )


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.kill()


def test_a_redis_outage_leaves_the_pod_ready_and_shows_as_503s_in_its_metrics(gunicorn, redis_server):
    metrics_port = free_port()
    server = gunicorn(
        workers=2,
        env={"AURA_ENV": "production", "REDIS_URL": redis_server.url, "REDIS_SOCKET_TIMEOUT": "1"},
        METRICS_PORT=str(metrics_port),
    )
    listener = f"http://127.0.0.1:{metrics_port}"
    api = server.url + "/api/v1"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT).status_code == 201
    token = requests.post(f"{api}/auth/login", json=creds, timeout=TIMEOUT).json()["access_token"]
    me = {"Authorization": f"Bearer {token}", "Connection": "close"}
    assert requests.get(f"{api}/auth/me", headers=me, timeout=TIMEOUT).status_code == 200
    ready = _get(listener + "/readyz")
    assert ready.status_code == 200 and ready.json()["serving"] >= 1, ready.text
    before = _answered_503(listener)

    redis_server.kill()
    answers = 0
    for _ in range(6):
        response = requests.get(f"{api}/auth/me", headers=me, timeout=TIMEOUT)
        assert_error(response, 503, "service_unavailable")  # fails closed, in the JSON error shape
        answers += 1
        ready = _get(listener + "/readyz")
        assert ready.status_code == 200, ready.text  # still in the Service
        assert _get(listener + "/healthz").status_code == 200  # and not restarted
    # The dependency report says what is wrong, for people; it is no probe.
    assert _get(server.url + "/readyz").json()["checks"]["redis"] == "unavailable"
    # Every 503 is in Aura's own metrics, where the SLO alerts look.
    assert _answered_503(listener) - before >= answers

    redis_server.start()
    deadline = time.monotonic() + 30
    while requests.get(f"{api}/auth/me", headers=me, timeout=TIMEOUT).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover after Redis came back"
        time.sleep(0.5)


def test_not_ready_until_a_worker_has_loaded_the_app(tmp_path, server_env):
    gate = tmp_path / "gate"
    metrics_port = free_port()
    listener = f"http://127.0.0.1:{metrics_port}"
    env = {**server_env, "BOOT_GATE": str(gate), "GUNICORN_PRELOAD": "false", "METRICS_PORT": str(metrics_port)}
    assert program_path("gated_app.py")
    server = Gunicorn(tmp_path, env, workers=2, app="tests.support.programs.gated_app:app")
    try:
        server.start(ready_url=listener + "/healthz")  # the master is up; its workers wait at the gate
        for _ in range(3):
            not_ready = _get(listener + "/readyz")
            assert_error(
                not_ready, 503, "service_unavailable", extra={"workers", "serving"}, headers={"Retry-After": "1"}
            )
            assert not_ready.json()["workers"] >= 1 and not_ready.json()["serving"] == 0
            assert _get(listener + "/healthz").status_code == 200  # alive all the same: no restart
            time.sleep(0.5)
        gate.touch()
        deadline = time.monotonic() + 30
        while (ready := _get(listener + "/readyz")).status_code != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert ready.json()["status"] == "ready" and ready.json()["serving"] >= 1
        assert _get(server.url + "/healthz").status_code == 200  # and it does serve
    finally:
        server.stop()
