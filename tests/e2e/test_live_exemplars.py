"""From a latency spike to the request behind it, with real Gunicorn workers and a real Prometheus.

Requests with known W3C trace ids go to several workers; every worker is then replaced (its
files folded into the archive) before anything scrapes; a Prometheus with exemplar storage then
returns, for each latency bucket, the trace id of the latest request that landed in it - the
slowest requests' ids in the slow buckets - and the trace id of the 5xx.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from tests.support.listener import APP
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]

WORKERS = 3


def _call(server, path: str) -> tuple[str, requests.Response]:
    """GET ``path`` as a trusted proxy passing on a fresh W3C trace; (trace id, response)."""
    trace = os.urandom(16).hex()
    headers = {"traceparent": f"00-{trace}-{os.urandom(8).hex()}-01"}
    return trace, requests.get(server.url + path, headers=headers, timeout=15)


def _wait(predicate, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _pid(exemplar_file: str) -> int:
    """The worker pid of ``.aura-exemplars.<pid>-<age>``."""
    return int(exemplar_file.removeprefix(".aura-exemplars.").split("-")[0])


def _by_le(series: list[dict]) -> dict[str, list[tuple[str, float]]]:
    """le -> [(trace id, value)] of query_exemplars' answer for one histogram."""
    return {
        s["seriesLabels"]["le"]: [(e["labels"]["trace_id"], float(e["value"])) for e in s["exemplars"]] for s in series
    }


def test_prometheus_finds_the_slowest_requests_by_their_trace_ids_after_the_workers_recycle(gunicorn, tmp_path):
    metrics = tmp_path / "metrics"
    server = gunicorn(
        workers=WORKERS,
        app=APP,
        TRUSTED_PROXY_COUNT="1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    started = time.time()
    fast = [_call(server, "/test/slow?s=0")[0] for _ in range(30)]  # the same series as the slow ones
    half = [_call(server, "/test/slow?s=0.3")[0] for _ in range(2)]  # bucket le=0.5: the second replaces the first
    slowest, _ = _call(server, "/test/slow?s=1.2")  # bucket le=2.5
    failed, response = _call(server, "/test/fail")
    assert response.status_code == 500 and response.json()["error"] == "internal_error"

    # Exemplars are OpenMetrics only: the text format has none.
    text = requests.get(server.url + "/metrics", timeout=10)
    openmetrics = requests.get(server.url + "/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10)
    assert text.headers["Content-Type"].startswith("text/plain") and " # {" not in text.text
    assert f'# {{trace_id="{slowest}"}}' in openmetrics.text

    # Every worker that served them is replaced (a reload) and merged before anything scrapes.
    old = set(server.worker_pids())
    os.kill(server.proc.pid, signal.SIGHUP)
    _wait(lambda: len(server.worker_pids()) == WORKERS and old.isdisjoint(server.worker_pids()), "new workers")
    _wait(
        lambda: not [p for p in metrics.glob(".aura-exemplars.*") if _pid(p.name) in old],
        "the old workers' exemplar files to be folded into the archive",
    )
    archived = {row[1] for row in json.loads((metrics / "aura-archive.json").read_text())["exemplars"]}
    assert {half[-1], slowest, failed} <= archived

    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{server.port}"], [], interval="1s", features=("exemplar-storage",))
    prometheus.start()
    try:
        slow = _wait(
            lambda: prometheus.query_exemplars(
                'http_request_duration_seconds_bucket{endpoint="/test/slow"}', started - 60, time.time() + 60
            ),
            "exemplars of /test/slow",
        )
        by_le = _by_le(slow)
        [(trace, seconds)] = by_le.pop("0.5")
        assert trace == half[-1] and 0.3 <= seconds <= 0.5
        [(trace, seconds)] = by_le.pop("2.5")
        assert trace == slowest and 1.2 <= seconds <= 2.5
        # The other buckets hold fast requests only, the latest of them among them.
        assert all(float(le) <= 0.25 for le in by_le), by_le
        traces = {trace for found in by_le.values() for trace, _ in found}
        assert traces <= set(fast) and fast[-1] in traces

        [errors] = prometheus.query_exemplars('http_requests_total{status_code="500"}', started - 60, time.time() + 60)
        assert [e["labels"]["trace_id"] for e in errors["exemplars"]] == [failed]
        assert errors["seriesLabels"]["endpoint"] == "/test/fail"
    finally:
        prometheus.stop()
