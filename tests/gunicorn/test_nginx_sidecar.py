"""Behind the pod's nginx sidecar (k8s/nginx/nginx.conf, Debian's nginx-light), what a client sends
as X-Request-Start or X-Request-ID never reaches Aura's metrics or logs: nginx writes both.

Aura trusts those headers because TRUSTED_PROXY_COUNT=1 says one proxy sits in front of it, so
the same forged headers sent straight to Gunicorn do move the queue-time histogram (the control
below): nginx is what makes trusting them safe. Queue time is read from the master's metrics
listener, as Prometheus reads it in the pod.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from aura.testing.servers import free_port
from tests.support.metrics import parse_exposition, value

pytestmark = pytest.mark.gunicorn

TIMEOUT = 20
FORGED_AGE = 80_000  # seconds: within the day Aura accepts from a proxy, so a believed forgery counts
REQUESTS = 3


def _queue(listener: str) -> tuple[float, float]:
    """(count, sum) of http_request_queue_seconds, from the metrics listener."""
    response = requests.get(listener, timeout=TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    samples = parse_exposition(response.text)
    return value(samples, "http_request_queue_seconds_count"), value(samples, "http_request_queue_seconds_sum")


def _forged_headers(forged_id: str) -> dict[str, str]:
    return {
        "X-Request-Start": f"t={time.time() - FORGED_AGE:.3f}",
        "X-Request-ID": forged_id,
        "Connection": "close",
    }


def _logged_request_ids(log: str) -> set[str]:
    ids = set()
    for line in log.splitlines():
        if line.startswith("{"):
            ids.add(json.loads(line).get("request_id"))
    return ids


def test_nginx_stamps_request_start_and_id_over_the_clients(gunicorn, nginx):
    metrics_port = free_port()
    server = gunicorn(
        workers=2,
        env={"TRUSTED_PROXY_COUNT": "1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"},
        METRICS_PORT=str(metrics_port),
        GUNICORN_ACCESS_LOG="-",  # one JSON access line per request, with its request id
    )
    listener = f"http://127.0.0.1:{metrics_port}/metrics"
    proxy = nginx(f"127.0.0.1:{server.port}")
    forged_id = f"forged{uuid.uuid4().hex}"

    count, total = _queue(listener)
    answered_ids = []
    for _ in range(REQUESTS):
        response = requests.get(proxy.url + "/api/v1/openapi.json", headers=_forged_headers(forged_id), timeout=TIMEOUT)
        assert response.status_code == 200
        # nginx's $request_id, once (not Aura's and nginx's side by side), never the client's
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"]), response.headers["X-Request-ID"]
        answered_ids.append(response.headers["X-Request-ID"])
    after_count, after_total = _queue(listener)
    # Every request got a queue time from nginx's stamp - a real one, milliseconds on loopback,
    # not the day the client claimed (generous bound: a busy test machine).
    assert after_count - count == REQUESTS
    assert 0 <= after_total - total < REQUESTS * 2.0, after_total - total
    assert len(set(answered_ids)) == REQUESTS

    # The logs carry nginx's ids, never the forged one.
    deadline = time.monotonic() + 10
    while not set(answered_ids) <= _logged_request_ids(server.log_path.read_text()):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    assert forged_id not in server.log_path.read_text()

    # Control: the same headers straight to Gunicorn (which the pod never allows: it binds
    # loopback) are believed - the forged day lands in the histogram and the forged id in the log.
    direct = requests.get(server.url + "/api/v1/openapi.json", headers=_forged_headers(forged_id), timeout=TIMEOUT)
    assert direct.headers["X-Request-ID"] == forged_id
    _, forged_total = _queue(listener)
    assert forged_total - after_total > FORGED_AGE - 60


def test_nginx_answers_its_own_errors_in_the_json_error_shape(gunicorn, nginx):
    server = gunicorn(workers=1, env={"TRUSTED_PROXY_COUNT": "1"})
    proxy = nginx(f"127.0.0.1:{server.port}")
    # Over client_max_body_size (1 MiB): nginx refuses it before Gunicorn sees a byte.
    too_big = requests.post(
        proxy.url + "/api/v1/auth/login",
        data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert too_big.status_code == 413
    assert too_big.headers["Content-Type"] == "application/json"
    assert too_big.json()["error"] == "payload_too_large"
    assert re.fullmatch(r"[0-9a-f]{32}", too_big.headers["X-Request-ID"])
    # Gunicorn gone: nginx's 502, still JSON, still with a request id.
    server.stop()
    gone = requests.get(proxy.url + "/api/v1/openapi.json", timeout=TIMEOUT)
    assert gone.status_code == 502
    assert gone.json() == {"error": "bad_gateway", "message": "The server ended without answering; try again."}
    assert re.fullmatch(r"[0-9a-f]{32}", gone.headers["X-Request-ID"])
