"""Every Gunicorn instance keeps its own exact metrics, however it is started; metrics can be off."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests

from aura.testing.servers import RedisServer
from tests.support import programs
from tests.support.metrics import default_metrics_root, parse_exposition, value

pytestmark = pytest.mark.gunicorn

HEALTHZ = dict(method="GET", endpoint="/healthz", status_code="200")


def _scrape(server, path: str = "/metrics") -> dict:
    response = requests.get(server.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return parse_exposition(response.text)


def _hit(server, n: int, path: str = "/healthz") -> None:
    for _ in range(n):
        assert requests.get(server.url + path, headers={"Connection": "close"}, timeout=10).status_code == 200


def _directory(server) -> Path:
    """The metrics directory the master chose, as it logged it at start-up."""
    [chosen] = re.findall(r"prometheus multiprocess directory: (\S+)", server.log())
    return Path(chosen)


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_gone(pids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still alive"
        time.sleep(0.05)


def test_two_instances_started_from_the_cli_keep_their_own_counts(gunicorn):
    # The reproduction: no PROMETHEUS_MULTIPROC_DIR, no GUNICORN_BIND, `gunicorn -w 2 -b ...`.
    # Readiness is checked on /metrics, so the /healthz totals are exactly what this test sent.
    a = gunicorn(workers=2, cli=True, ready_path="/metrics")
    _hit(a, 20)
    b = gunicorn(workers=2, cli=True, ready_path="/metrics")
    _hit(b, 5)
    assert value(_scrape(a), "http_requests_total", **HEALTHZ) == 20
    assert value(_scrape(b), "http_requests_total", **HEALTHZ) == 5
    dir_a, dir_b = _directory(a), _directory(b)
    assert dir_a != dir_b, dir_a
    # One root per user, taken by whichever instance finds it free; the others get
    # instance-<pid> inside it (other instances on this machine come and go meanwhile).
    root = default_metrics_root()
    assert all(d == root or d.parent == root for d in (dir_a, dir_b)), (dir_a, dir_b)
    for server in (a, b):  # a normal start logs no warning (no "adopting", no "removed")
        assert "WARNING" not in server.log() and "ERROR" not in server.log(), server.log()

    # B dies hard (master and workers): a third instance, started while A lives, cleans up B's
    # directory and starts from zero; A is untouched.
    b_pids = [b.proc.pid, *b.worker_pids()]
    os.killpg(b.proc.pid, signal.SIGKILL)
    b.proc.wait(10)
    _wait_gone(b_pids)
    c = gunicorn(workers=2, cli=True, ready_path="/metrics")
    _hit(c, 3)
    assert value(_scrape(c), "http_requests_total", **HEALTHZ) == 3
    assert value(_scrape(a), "http_requests_total", **HEALTHZ) == 20
    if dir_b.name.startswith("instance-"):  # B had a directory of its own (not the root)
        assert not dir_b.exists(), f"{dir_b} of a dead instance was not removed"


def test_a_configured_directory_in_use_is_never_cleaned_by_a_second_instance(gunicorn, tmp_path):
    shared = tmp_path / "metrics"
    a = gunicorn(workers=2, ready_path="/metrics", PROMETHEUS_MULTIPROC_DIR=str(shared))
    _hit(a, 7)
    b = gunicorn(workers=2, ready_path="/metrics", PROMETHEUS_MULTIPROC_DIR=str(shared))
    _hit(b, 2)
    assert _directory(a) == shared and _directory(b) == shared / f"instance-{b.proc.pid}"
    assert value(_scrape(a), "http_requests_total", **HEALTHZ) == 7
    assert value(_scrape(b), "http_requests_total", **HEALTHZ) == 2


def test_a_usr2_reexec_gets_its_own_directory(gunicorn):
    a = gunicorn(workers=2, ready_path="/metrics")
    _hit(a, 4)
    os.kill(a.proc.pid, signal.SIGUSR2)  # the new master is a child of the old, logging to the same file
    deadline = time.monotonic() + 60
    while len(chosen := re.findall(r"\[(\d+)\] \[INFO\] prometheus multiprocess directory: (\S+)", a.log())) < 2:
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.2)
    (old_pid, old_dir), (new_pid, new_dir) = chosen
    assert int(old_pid) == a.proc.pid and int(new_pid) != a.proc.pid
    assert new_dir != old_dir and Path(new_dir).is_dir() and Path(old_dir).is_dir()
    # The old instance's files are intact: its workers still count from where they were.
    assert value(_parse_files(Path(old_dir)), "http_requests_total", **HEALTHZ) >= 4
    os.kill(int(new_pid), signal.SIGQUIT)  # quick stop; the old master reaps it (its child)
    _wait_gone([int(new_pid)])


def _parse_files(directory: Path) -> dict:
    """What a scrape of ``directory`` returns (read directly, so no request adds to the counts)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from aura.metrics import AuraMultiProcessCollector

    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, str(directory))
    return parse_exposition(generate_latest(registry).decode())


def test_production_server_without_prometheus_client(gunicorn):
    blocker = programs.HERE / "without_prometheus_client"  # its sitecustomize blocks the import
    server = gunicorn(workers=2, PYTHONPATH=str(blocker))
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    api = server.url + "/api/v1/auth"
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    assert requests.post(f"{api}/register", json=creds, timeout=10).status_code == 201
    token = requests.post(f"{api}/login", json=creds, timeout=10).json()["access_token"]
    assert requests.get(f"{api}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    metrics = requests.get(server.url + "/metrics", timeout=10)
    assert metrics.status_code == 404 and metrics.json()["error"] == "not_found"
    assert server.log().count("metrics are off") == 1, server.log()


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.kill()


@pytest.mark.slow(30)
def test_client_id_values_stay_bounded_per_instance_across_recycles(gunicorn, redis_server):
    cap, clients = 20, 400
    server = gunicorn(
        workers=2,
        env=dict(REDIS_URL=redis_server.url),
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_DEFAULT="1 per hour",
        RATE_LIMIT_MAX_CLIENT_IDS=str(cap),
        TRUSTED_PROXY_COUNT="1",
        GUNICORN_MAX_REQUESTS="20",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    net = uuid.uuid4().int % 250
    session = requests.Session()
    for i in range(clients):  # each client: one request allowed, one rejected
        headers = {"X-Forwarded-For": f"10.{net}.{i // 250}.{i % 250}"}
        codes = [session.get(server.url + "/api/v1/auth/me", headers=headers, timeout=10).status_code for _ in range(2)]
        assert codes == [401, 429], codes
    samples = _scrape(server)
    hits = {labels["client_id"]: v for (name, labels), v in _by_labels(samples, "rate_limit_hits_total")}
    assert len(set(hits) - {"other"}) <= cap, sorted(hits)
    assert sum(hits.values()) == clients  # every rejection counted, none lost to a recycle
    assert value(samples, "aura_metrics_merges_total") >= 30  # dozens of workers recycled and merged


def _by_labels(samples: dict, name: str):
    for key, v in samples.items():
        sample_name, labels = key
        if sample_name == name:
            yield (sample_name, dict(labels)), v


def test_metrics_content_negotiation(gunicorn):
    server = gunicorn(workers=1)
    off = requests.get(server.url + "/metrics", headers={"Accept-Encoding": "gzip;q=0"}, timeout=10, stream=True)
    assert "Content-Encoding" not in off.headers
    on = requests.get(server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
    assert on.headers["Content-Encoding"] == "gzip"
    for response in (off, on):
        vary = {v.strip().lower() for v in response.headers["Vary"].split(",")}
        assert {"accept", "accept-encoding"} <= vary
        response.close()  # streamed and unread: else its socket is left to the garbage collector


def test_an_untested_prometheus_client_runs_on_its_stock_value_class(gunicorn):
    # The version check at start-up: an installed prometheus-client whose internals this code was
    # not tested against gets one warning, and exact counts from its own value class and collector.
    patch = programs.HERE / "untested_prometheus_client"  # its sitecustomize reports version 0.99.0
    server = gunicorn(
        workers=2,
        ready_path="/metrics",
        PYTHONPATH=str(patch),
        GUNICORN_MAX_REQUESTS="4",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    _hit(server, 12)  # the workers recycle: stock mark_process_dead keeps their counts
    assert value(_scrape(server), "http_requests_total", **HEALTHZ) == 12
    log = server.log()
    assert log.count("prometheus-client 0.99.0 is not a version") == 1, log
    assert not list(_directory(server).glob("aura-archive.json"))  # no merging in this mode
