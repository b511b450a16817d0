"""PROMETHEUS_MULTIPROC_DIR full or unwritable: requests are still served, metrics degrade with a
log line, no worker crashes - and nothing counted is lost once space returns.

"Full" and "unwritable" are real: a small tmpfs filled to the last byte (as a Kubernetes
`emptyDir: {medium: Memory, sizeLimit}` volume fills), and a read-only tmpfs. Mounting needs
root (CAP_SYS_ADMIN); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.resilience.conftest import TIMEOUT, scrape
from tests.support.metrics import value

pytestmark = pytest.mark.gunicorn

DEGRADED = "metrics are degraded"  # the log line's fixed part (aura/metrics/gunicorn.py, values.py)
KINDS = [
    ("GET", "/healthz", 200),
    ("GET", "/no/such/page", 404),
    ("DELETE", "/api/v1/auth/login", 405),
    ("POST", "/api/v1/auth/login", 401),
    ("GET", "/readyz", 200),
    ("PATCH", "/healthz", 405),
]


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs volumes (size, read-only) on directories under tmp_path; unmount after."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        options = f"size={size},mode=0700" + (",ro" if read_only else "")
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem has not one byte left."""
    filler = directory / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        for block in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return filler


def _burst(server, rounds: int = 5) -> None:
    """Every kind of request, several times, each on its own connection: all must be answered."""
    for _ in range(rounds):
        for method, path, status in KINDS:
            kwargs = {"json": {"email": "nobody@example.com", "password": "wrong-pass"}} if method == "POST" else {}
            response = requests.request(
                method, server.url + path, headers={"Connection": "close"}, timeout=TIMEOUT, **kwargs
            )
            assert response.status_code == status, (method, path, response.status_code, response.text[:200])


def _replace_workers(server, count: int) -> None:
    """SIGKILL every worker, one at a time, waiting for each replacement to serve."""
    for pid in server.wait_for_workers(count):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid in server.worker_pids() or len(server.worker_pids()) != count:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert requests.get(server.url + "/healthz", timeout=TIMEOUT).status_code == 200


def _healthz_total(samples: dict) -> float:
    return value(samples, "http_requests_total", method="GET", endpoint="/healthz", status_code="200")


def test_full_metrics_directory(start_gunicorn, tmpfs):
    directory = tmpfs("metrics", "2m")
    server = start_gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory))
    _burst(server)
    counted_before = _healthz_total(scrape(server))
    assert counted_before >= 5

    filler = _fill(directory)
    _replace_workers(server, 2)  # every worker now starts with no room for its metric files
    workers = sorted(server.wait_for_workers(2))
    _burst(server, rounds=8)
    assert sorted(server.worker_pids()) == workers, "a worker died serving requests"
    log = server.log_path.read_text(errors="replace")
    assert DEGRADED in log and "No space left on device" in log
    assert "SIGBUS" not in log and "Worker failed to boot" not in log
    scraped = requests.get(server.url + "/metrics", timeout=TIMEOUT)
    assert scraped.status_code == 200  # what the files hold can still be read

    # Space returns: the same workers write their files at their next retry (every 5 s), with
    # the requests they counted in memory meanwhile - the 8 of the burst, which only they served,
    # and every request sent here. The 2 readiness checks made while the old workers were being
    # killed are allowed for but not required (one went missing once in CI; see docs/security.md).
    filler.unlink()
    sent, deadline = 0, time.monotonic() + 40
    while time.monotonic() < deadline:
        assert (
            requests.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=TIMEOUT).status_code == 200
        )
        sent += 1
        if _healthz_total(scrape(server)) >= counted_before + 2 + 8 + sent:
            break
        time.sleep(0.25)
    assert counted_before + 8 + sent <= _healthz_total(scrape(server)) <= counted_before + 2 + 8 + sent
    assert sorted(server.worker_pids()) == workers
    # A worker writes its files, then logs that they are written again: wait for the line.
    deadline = time.monotonic() + 10
    while "metrics recovered" not in server.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)

    # New workers count again, and what the earlier workers counted was kept.
    _replace_workers(server, 2)
    _burst(server, rounds=2)
    counted_after = _healthz_total(scrape(server))
    assert counted_after >= counted_before + 2
    assert server.proc.poll() is None


def test_gunicorn_starts_on_a_metrics_directory_that_is_already_full(start_gunicorn, tmpfs):
    # With preload (the default) the directory is claimed while gunicorn.conf.py is read; a full
    # volume used to stop Gunicorn there (ENOSPC writing the directory marker).
    directory = tmpfs("metrics", "1m")
    _fill(directory)
    server = start_gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory))
    _burst(server, rounds=2)
    log = server.log()
    assert DEGRADED in log and "No space left on device" in log, log
    # Both workers serve (the second may still be booting on a loaded machine) and none died.
    assert server.proc.poll() is None and len(server.wait_for_workers(2)) == 2
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "exited with code" not in log and "WORKER TIMEOUT" not in log, log


def test_unwritable_metrics_directory(start_gunicorn, tmpfs):
    directory = tmpfs("metrics", "1m", read_only=True)
    server = start_gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory))
    try:
        workers = sorted(server.wait_for_workers(2))
        _burst(server, rounds=6)
        assert sorted(server.worker_pids()) == workers, "a worker died serving requests"
        scraped = requests.get(server.url + "/metrics", timeout=TIMEOUT)
        assert scraped.status_code == 503 and scraped.json()["error"] == "service_unavailable"
        log = server.log_path.read_text(errors="replace")
        assert DEGRADED in log and "Read-only file system" in log
        assert "Traceback" not in log
        _replace_workers(server, 2)  # new workers boot on it too (the master logs failed merges)
        _burst(server, rounds=2)
    finally:
        server.stop()
