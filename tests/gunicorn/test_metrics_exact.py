"""Under real Gunicorn - 4 workers recycling, one SIGKILLed - /metrics totals equal what clients saw."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.support.metrics import default_metrics_root, parse_exposition, value

pytestmark = pytest.mark.gunicorn

# (method, path, expected endpoint label, expected status)
KINDS = [
    ("GET", "/healthz", "/healthz", "200"),
    ("GET", "/api/v1/auth/me", "/api/v1/auth/me", "200"),
    ("GET", "/no/such/page", "unmatched", "404"),
    ("POST", "/api/v1/auth/login", "/api/v1/auth/login", "401"),
    ("DELETE", "/api/v1/auth/login", "/api/v1/auth/login", "405"),
]
THREADS, PER_THREAD = 4, 60


def _scrape(server) -> dict:
    response = requests.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200
    return parse_exposition(response.text)


def _drive(server, bearer, completed: Counter, cut: Counter, lock: threading.Lock, seed: int):
    session = requests.Session()  # keep-alive off: each request may land on any worker
    session.headers["Connection"] = "close"
    for i in range(PER_THREAD):
        method, path, endpoint, status = KINDS[(seed + i) % len(KINDS)]
        kwargs = {"timeout": 15}
        if path == "/api/v1/auth/me":
            kwargs["headers"] = bearer
        if method == "POST":
            kwargs["json"] = {"email": "nobody@example.com", "password": "wrong-password"}
        try:
            response = session.request(method, server.url + path, **kwargs)
        # Killed before it answered, or between the answer's head and its body (Gunicorn sends
        # them in two writes: the client has the status line and a short body).
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            with lock:
                cut[(method, endpoint)] += 1
            continue
        with lock:
            completed[(method, endpoint, str(response.status_code))] += 1


def test_totals_exact_with_recycling_and_a_killed_worker(gunicorn, tmp_path):
    server = gunicorn(
        workers=4,
        GUNICORN_MAX_REQUESTS="25",
        GUNICORN_MAX_REQUESTS_JITTER="0",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    email = f"{uuid.uuid4().hex}@example.com"
    creds = {"email": email, "password": "long-enough-password"}
    requests.post(f"{server.url}/api/v1/auth/register", json=creds, timeout=10)
    token = requests.post(f"{server.url}/api/v1/auth/login", json=creds, timeout=10).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    first_workers = set(server.worker_pids())
    before = _scrape(server)

    completed, cut, lock = Counter(), Counter(), threading.Lock()
    threads = [threading.Thread(target=_drive, args=(server, bearer, completed, cut, lock, n)) for n in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    for t in threads:
        t.join(120)
    server.wait_for_workers(4)
    after = _scrape(server)

    total_sent = THREADS * PER_THREAD
    assert sum(completed.values()) + sum(cut.values()) == total_sent
    assert set(server.worker_pids()) != first_workers, "workers should have recycled"
    for (method, endpoint, status), seen in completed.items():
        expected = [k for k in KINDS if (k[0], k[2]) == (method, endpoint)][0][3]
        assert status == expected
        labels = dict(method=method, endpoint=endpoint, status_code=status)
        counted = value(after, "http_requests_total", **labels) - value(before, "http_requests_total", **labels)
        # A request cut by the kill may or may not have been counted before the worker died.
        assert seen <= counted <= seen + cut[(method, endpoint)], (labels, seen, counted, cut)
        duration_count = value(after, "http_request_duration_seconds_count", method=method, endpoint=endpoint) - value(
            before, "http_request_duration_seconds_count", method=method, endpoint=endpoint
        )
        assert duration_count >= counted

    # Only live workers own live-gauge files: the dead ones' were merged away (or dropped). The
    # scrape above can itself end a worker's last request, and the master merges its files
    # just after reaping it: allow that moment to pass.
    def dead_workers_files() -> list[str]:
        live = {str(pid) for pid in server.worker_pids()}
        return [
            path.name
            for path in Path(tmp_path / "metrics").glob("gauge_live*.db")
            if path.stem.split("_")[-1].split("-")[0] not in live
        ]

    deadline = time.monotonic() + 10
    while dead_workers_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not dead_workers_files(), "dead workers' live gauges left"


def test_metrics_output_passes_promtool(gunicorn):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install -y prometheus (.ci/run does this)"
    server = gunicorn(workers=2)
    for path in ("/healthz", "/nope", "/api/v1/auth/me"):
        requests.get(server.url + path, timeout=10)
    body = requests.get(f"{server.url}/metrics", timeout=10).text
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_multiproc_dir_from_gunicorn_conf(gunicorn):
    """Without PROMETHEUS_MULTIPROC_DIR in the environment, gunicorn.conf.py's default is used."""
    server = gunicorn(workers=3)
    assert "PROMETHEUS_MULTIPROC_DIR" not in server.env
    for _ in range(30):
        requests.get(f"{server.url}/healthz", headers={"Connection": "close"}, timeout=10)
    samples = _scrape(server)
    served = value(samples, "http_requests_total", method="GET", endpoint="/healthz", status_code="200")
    assert served >= 30  # one worker alone would show only its own share
    root = default_metrics_root()  # the instance has the root or a directory in it
    chosen = Path(re.findall(r"prometheus multiprocess directory: (\S+)", server.log())[0])
    assert chosen in (root, root / f"instance-{server.proc.pid}")
    assert any(chosen.glob("counter_*.db"))
