"""Several workers SIGKILLed, again and again, under load: the master replaces each one, no answer
is ever a 5xx, and /metrics totals equal what clients saw (give or take the requests the kills cut).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.resilience.conftest import TIMEOUT, Load, scrape
from tests.support.metrics import value

pytestmark = pytest.mark.gunicorn

WORKERS, ROUNDS, VICTIMS_PER_ROUND = 3, 3, 2
# name -> (method, path, endpoint label, expected status)
KINDS = {
    "healthz": ("GET", "/healthz", "/healthz", 200),
    "me": ("GET", "/api/v1/auth/me", "/api/v1/auth/me", 200),
    "missing": ("GET", "/no/such/page", "unmatched", 404),
    "login": ("POST", "/api/v1/auth/login", "/api/v1/auth/login", 401),
    "wrong method": ("DELETE", "/api/v1/auth/login", "/api/v1/auth/login", 405),
}


def test_repeated_kills_of_several_workers_under_load(start_gunicorn, tmp_path):
    metrics_dir = tmp_path / "metrics"
    server = start_gunicorn(workers=WORKERS, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    requests.post(f"{server.url}/api/v1/auth/register", json=creds, timeout=TIMEOUT)
    token = requests.post(f"{server.url}/api/v1/auth/login", json=creds, timeout=TIMEOUT).json()["access_token"]
    mix = []
    for name, (method, path, _, _) in KINDS.items():
        kwargs = {"headers": {"Authorization": f"Bearer {token}"}} if name == "me" else {}
        if method == "POST":
            kwargs["json"] = {"email": "nobody@example.com", "password": "wrong-password"}
        mix.append((name, method, path, kwargs))
    original = set(server.wait_for_workers(WORKERS))
    before = scrape(server)

    killed: set[int] = set()
    with Load(server.url, mix, threads=3, cap=300) as load:
        load.wait_for("before", "healthz", 200, count=5)
        for _ in range(ROUNDS):
            victims = server.worker_pids()[:VICTIMS_PER_ROUND]
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            killed.update(victims)
            # The master notices, merges the dead workers' metrics and forks replacements.
            deadline = time.monotonic() + 30
            while set(victims) & set(server.worker_pids()) or len(server.worker_pids()) != WORKERS:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            served = load.seen("before", "healthz", 200)
            load.wait_for("before", "healthz", 200, count=served + 3)  # serving again
        # Enough answers to judge, however slowly a loaded machine serves them.
        deadline = time.monotonic() + 60
        while sum(n for (_, _, _, result), n in load.summary().items() if isinstance(result, int)) <= 100:
            assert time.monotonic() < deadline, load.summary()
            time.sleep(0.05)
    assert server.proc.poll() is None, "the master died"
    survivors = set(server.wait_for_workers(WORKERS))
    assert len(killed) == ROUNDS * VICTIMS_PER_ROUND and not killed & survivors and survivors != original
    after = scrape(server)

    completed, cut = Counter(), Counter()
    for (_, _, name, result), n in load.summary().items():
        if isinstance(result, int):
            completed[(name, result)] += n
        else:
            # A kill cuts a request before or during its answer; nothing may time out.
            assert result in ("ConnectionError", "ChunkedEncodingError"), result
            cut[name] += n
    assert sum(completed.values()) > 100
    for (name, status), seen in completed.items():
        method, _, endpoint, expected = KINDS[name]
        assert status == expected, (name, status)
        labels = dict(method=method, endpoint=endpoint, status_code=str(status))
        counted = value(after, "http_requests_total", **labels) - value(before, "http_requests_total", **labels)
        # A request cut by a kill may or may not have been counted before its worker died.
        assert seen <= counted <= seen + cut[name], (labels, seen, counted, cut)
    assert value(after, "aura_metrics_merges_total") > value(before, "aura_metrics_merges_total")

    # Dead workers' files were folded into the archive; only live workers own live-gauge files.
    live = {str(pid) for pid in survivors}
    for path in Path(metrics_dir).glob("gauge_live*.db"):
        assert path.stem.split("_")[-1].split("-")[0] in live, f"dead worker's live gauge left: {path.name}"
