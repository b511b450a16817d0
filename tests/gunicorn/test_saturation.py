"""Saturation and worker lifecycle under real Gunicorn, read from the master's metrics listener.

The slow and CPU-burning routes live in tests/support/slow_app.py, not in the product.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.listener import Listener
from tests.support.metrics import parse_exposition, value

pytestmark = pytest.mark.gunicorn
# The tests marked serial wait on 1-3 s deadlines (heartbeat timeouts, a backlog seen within 3 s):
# make test runs them alone, after the rest, where CPU contention cannot make them miss.


def _get(url: str, timeout: float = 30.0) -> int:
    return requests.get(url, headers={"Connection": "close"}, timeout=timeout).status_code


def _in_threads(urls: list[str]) -> list[threading.Thread]:
    threads = [threading.Thread(target=_get, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    return threads


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_busy_seconds_grow_by_busy_time_and_not_while_idle(gunicorn):
    metrics = Listener(gunicorn)  # scrapes go to the master: they add no busy time
    busy = "gunicorn_worker_busy_seconds_total"
    before = metrics.value(busy)
    for t in _in_threads([metrics.server.url + "/test/slow?s=2"] * 2):  # N=2 workers busy for T=2 s
        t.join(30)
    during = metrics.value(busy) - before
    # Each request is busy for its 2 s sleep plus a few ms of Flask: N x T, within 0.25 s.
    assert 4.0 <= during <= 4.25, during
    time.sleep(2)  # idle: nothing but the listener's scrapes
    assert metrics.value(busy) - before - during < 0.01


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_backlog_and_busy_workers_read_from_the_listener_while_every_worker_is_busy(gunicorn):
    metrics = Listener(gunicorn)
    threads = _in_threads([metrics.server.url + "/test/slow?s=6"] * 2)
    metrics.wait_for(lambda s: value(s, "gunicorn_workers_busy") == 2, "both workers busy", timeout=10)
    waiting = []
    for _ in range(3):  # connections that no worker can accept now
        sock = socket.create_connection(("127.0.0.1", metrics.server.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        waiting.append(sock)
    try:
        samples = metrics.wait_for(lambda s: value(s, "gunicorn_listen_backlog") > 0, "a backlog", timeout=3)
        assert value(samples, "gunicorn_listen_backlog") == 3
        assert value(samples, "gunicorn_listen_backlog_limit") == 2048  # Gunicorn's default backlog
        assert value(samples, "gunicorn_workers") == 2
        # The listener answers at once although no worker is free (1 s is the bound).
        assert requests.get(metrics.url + "/healthz", timeout=1.0).json() == {"status": "alive"}
        metrics.scrape(timeout=1.0)
    finally:
        for t in threads:
            t.join(30)
        for sock in waiting:
            sock.close()


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def _settled_workers(server, count: int = 2) -> list[int]:
    """Workers that are neither being replaced nor on their way out (unchanged for a second)."""
    deadline = time.monotonic() + 30
    while True:
        first = server.wait_for_workers(count)
        time.sleep(1)
        if server.worker_pids() == first:
            return first
        assert time.monotonic() < deadline, "workers did not settle"


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_worker_exits_are_counted_by_reason(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_TIMEOUT="3", GUNICORN_MAX_REQUESTS="10")
    server = metrics.server
    exits = "gunicorn_worker_exits_total"

    def count(reason: str) -> float:
        return metrics.value(exits, reason=reason)

    for _ in range(30):  # recycles: each worker ends after 10 requests
        assert _get(server.url + "/healthz") == 200
    metrics.wait_for(lambda s: value(s, exits, reason="max_requests") >= 1, "a recycled worker")

    # Under load a worker can miss its 3 s heartbeat and be timed out on its own: count the
    # events this test causes by the change they make, and wait on conditions, not sleeps.
    crashes = count("crash")
    victim = _settled_workers(server)[0]
    os.kill(victim, signal.SIGKILL)
    metrics.wait_for(lambda s: value(s, exits, reason="crash") >= crashes + 1, "the killed worker")

    timeouts = count("timeout")
    stuck = _settled_workers(server)[0]
    os.kill(stuck, signal.SIGSTOP)  # past GUNICORN_TIMEOUT the master aborts, then kills it
    try:
        metrics.wait_for(
            lambda s: value(s, exits, reason="timeout") >= timeouts + 1 and _dead(stuck), "the stuck worker", timeout=60
        )
    finally:
        if not _dead(stuck):
            os.kill(stuck, signal.SIGCONT)
    assert count("crash") == crashes + 1 and count("shutdown") == 0


def test_cpu_seconds_never_decrease_across_recycles(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_MAX_REQUESTS="4")
    seen = [metrics.value("process_cpu_seconds_total")]
    for _ in range(12):
        for _ in range(3):
            assert _get(metrics.server.url + "/test/spin?ms=30") == 200
        seen.append(metrics.value("process_cpu_seconds_total"))
    assert seen == sorted(seen), seen
    # 36 requests burnt at least 30 ms each, in workers most of which have died since
    assert seen[-1] - seen[0] >= 36 * 0.03
    assert metrics.value("gunicorn_worker_exits_total", reason="max_requests") >= 6


def test_queue_time_is_recorded_from_a_trusted_proxys_x_request_start(gunicorn):
    metrics = Listener(gunicorn, TRUSTED_PROXY_COUNT="1")
    stamp = time.time() - 2.5  # the proxy received the request 2.5 s ago
    response = requests.get(
        metrics.server.url + "/healthz",
        timeout=10,
        headers={"X-Request-Start": f"t={stamp:.3f}", "X-Forwarded-For": "10.0.0.1"},
    )
    assert response.status_code == 200
    samples = metrics.scrape()
    assert value(samples, "http_request_queue_seconds_count") == 1
    assert 2.5 <= value(samples, "http_request_queue_seconds_sum") <= 5.0  # 2.5 s plus however long it took to get here
    assert value(samples, "http_request_queue_seconds_bucket", le="2.5") == 0
    assert value(samples, "http_request_queue_seconds_bucket", le="5.0") == 1


def test_process_metrics_describe_the_whole_instance_without_per_worker_labels(gunicorn):
    started = time.time()
    metrics = Listener(gunicorn, workers=3)
    for _ in range(6):
        assert _get(metrics.server.url + "/test/garbage?n=5000") == 200
    samples = metrics.wait_for(
        lambda s: value(s, "python_gc_collections_total", generation="0") > 0, "GC counts from the workers' samplers"
    )
    pids = [metrics.server.proc.pid, *metrics.server.worker_pids()]
    rss = sum(int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") for p in pids)
    pss = value(samples, "process_resident_memory_bytes")
    assert 0 < pss < rss  # preload shares pages: PSS counts them once, the RSS sum once per worker
    assert 0 < value(samples, "aura_worker_unique_memory_bytes_max") < pss
    assert value(samples, "process_open_fds") >= 3 * len(pids)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # the test's, inherited by Gunicorn
    assert value(samples, "process_max_fds") == limit  # the lowest of the processes' limits
    assert started - 5 <= value(samples, "process_start_time_seconds") <= time.time()
    assert value(samples, "gunicorn_workers") == 3
    build = [labels for (name, labels), v in samples.items() if name == "aura_build_info" and v == 1]
    assert len(build) == 1 and {k for k, _ in build[0]} == {"version", "python", "gunicorn", "prometheus_client"}
    assert not any(k in ("pid", "worker") for _, labels in samples for k, _ in labels)
    # the app port serves the same exposition (the same families)
    app_port = parse_exposition(requests.get(metrics.server.url + "/metrics", timeout=10).text)
    assert {n for n, _ in app_port} == {n for n, _ in samples}


def test_listen_overflows_count_the_network_namespaces_dropped_connections(gunicorn):
    metrics = Listener(gunicorn)
    before = metrics.value("gunicorn_listen_overflows_total")
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)  # an accept queue of one that nobody accepts from
    clients = []
    try:
        for _ in range(8):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(full.getsockname())
            clients.append(client)
        samples = metrics.wait_for(
            lambda s: value(s, "gunicorn_listen_overflows_total") > before, "the kernel's count to move", timeout=10
        )
    finally:
        for client in clients:
            client.close()
        full.close()
    assert value(samples, "gunicorn_listen_overflows_total") - before >= 1
