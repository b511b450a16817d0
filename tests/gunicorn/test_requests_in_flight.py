"""Requests in flight under real Gunicorn: busy while stuck, and counted when their worker dies.

Workers call a dependency (a TCP server of the test's) that stops answering; the test reads
the master's metrics listener while they wait, then lets them finish, times them out or kills
them. tests/support/slow_app.py has the route (``/test/dependency``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
import requests

from tests.support.listener import Listener
from tests.support.metrics import value

pytestmark = pytest.mark.gunicorn
# The tests marked serial run Gunicorn with a 2 s heartbeat timeout, which CPU contention can
# trip: make test runs them alone, after the rest. The others allow 120 s.

BUSY = "gunicorn_worker_busy_seconds_total"
ROUTE = "/test/dependency"
# docs/metrics.md: over any interval, busy seconds grow by at most workers x threads x the
# interval, within 1 %.
RATE_TOLERANCE = 0.01


class FrozenDependency:
    """A TCP server that accepts callers and answers none of them until ``release``."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.callers: list[tuple[socket.socket, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            pid = int(conn.makefile().readline())  # the worker says who it is
            self.callers.append((conn, pid))

    def wait_for_callers(self, count: int, timeout: float = 30) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.callers) < count:
            assert time.monotonic() < deadline, f"{len(self.callers)} of {count} callers arrived"
            time.sleep(0.05)
        return [pid for _, pid in self.callers]

    def release(self) -> None:
        for conn, _ in self.callers:
            try:
                conn.sendall(b"late")
            except OSError:
                pass  # its worker is gone
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()
        self.release()

    def __enter__(self) -> FrozenDependency:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(url: str, results: list) -> None:
    started = time.monotonic()
    try:
        results.append((requests.get(url, headers={"Connection": "close"}, timeout=60).status_code, started))
    except requests.RequestException:
        results.append((None, started))  # the worker died: a reset, as a client without a proxy sees it


def _clients(url: str, count: int) -> tuple[list[threading.Thread], list]:
    results: list = []
    threads = [threading.Thread(target=_call, args=(url, results)) for _ in range(count)]
    for t in threads:
        t.start()
    return threads, results


class Readings:
    """Busy-seconds scrapes with the wall-clock interval each was read within."""

    def __init__(self, metrics: Listener):
        self.metrics = metrics
        self.seen: list[tuple[float, float, float]] = []  # (before, after, busy)

    def read(self) -> dict:
        before = time.monotonic()
        samples = self.metrics.scrape()
        self.seen.append((before, time.monotonic(), value(samples, BUSY)))
        return samples

    def never_decreased(self) -> None:
        busy = [b for _, _, b in self.seen]
        assert busy == sorted(busy), busy

    def within_capacity(self, capacity: int, min_interval: float = 1.0) -> int:
        """Busy growth between any two readings at least ``min_interval`` apart <= capacity x time."""
        checked = 0
        for i, (before_i, after_i, busy_i) in enumerate(self.seen):
            for before_j, after_j, busy_j in self.seen[i + 1 :]:
                if before_j - after_i < min_interval:
                    continue
                allowed = capacity * (after_j - before_i) * (1 + RATE_TOLERANCE)
                assert busy_j - busy_i <= allowed, (busy_j - busy_i, allowed)
                checked += 1
        return checked


def test_workers_stuck_on_a_dependency_read_busy_for_the_whole_time(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_TIMEOUT="120")
    readings = Readings(metrics)
    with FrozenDependency() as dependency:
        readings.read()
        threads, results = _clients(f"{metrics.server.url}{ROUTE}?port={dependency.port}", 2)
        dependency.wait_for_callers(2)
        stuck = len(readings.seen)
        for _ in range(6):  # 3 s of both workers stuck
            time.sleep(0.5)
            readings.read()
        during = readings.seen[stuck:]
        for (before_i, after_i, busy_i), (before_j, after_j, busy_j) in zip(during, during[1:], strict=False):
            # both workers were stuck throughout: 2 x the time between the two reads, exactly
            assert 2 * (before_j - after_i) - 0.01 <= busy_j - busy_i <= 2 * (after_j - before_i) + 0.01
        first, last = during[0], during[-1]
        assert last[2] - first[2] >= 2 * (last[0] - first[1]) - 0.01 >= 4.9
        dependency.release()
        for t in threads:
            t.join(30)
    assert [status for status, _ in results] == [200, 200]
    samples = readings.read()
    readings.never_decreased()
    assert readings.within_capacity(2) > 0
    assert value(samples, "http_requests_total", method="GET", endpoint=ROUTE, status_code="200") == 2


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_requests_gunicorns_timeout_kills_are_counted_once_as_504(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_TIMEOUT="2")
    server = metrics.server
    readings = Readings(metrics)
    labels = {"method": "GET", "endpoint": ROUTE}
    with FrozenDependency() as dependency:
        threads, results = _clients(f"{server.url}{ROUTE}?port={dependency.port}", 2)
        pids = dependency.wait_for_callers(2)
        sent = time.monotonic()
        # the workers count their own exits before they end; the 504s come with the master's merge
        while value(readings.read(), "http_requests_total", status_code="504", **labels) < 2:
            assert time.monotonic() - sent < 60, "the master did not time the workers out and merge them"
            time.sleep(0.2)
        for t in threads:
            t.join(30)
        waited = time.monotonic() - min(started for _, started in results)
    # Gunicorn's aborted sync worker answers its own 500 where it still can (no proxy here)
    assert all(status in (None, 500) for status, _ in results), results
    assert not set(pids) & set(server.worker_pids())

    def check(samples: dict) -> None:
        assert value(samples, "http_requests_total", status_code="504", **labels) == 2
        assert value(samples, "http_request_duration_seconds_count", **labels) == 2
        # each waited past the 2 s timeout until the master noticed and reaped it
        assert 2 * 2.0 <= value(samples, "http_request_duration_seconds_sum", **labels) <= 2 * waited
        assert value(samples, "http_request_duration_seconds_bucket", le="1.0", **labels) == 0
        assert value(samples, "gunicorn_worker_exits_total", reason="timeout") == 2

    check(readings.read())
    # a later merge (a worker recycled) leaves them counted once
    victim = server.wait_for_workers(2)[0]
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while value(readings.read(), "gunicorn_worker_exits_total", reason="shutdown") < 1:
        assert time.monotonic() < deadline, "the recycled worker was not merged"
        time.sleep(0.2)
    check(readings.read())
    readings.never_decreased()
    readings.within_capacity(2)


def test_a_request_whose_worker_is_killed_is_counted_once_as_502(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_TIMEOUT="120")
    readings = Readings(metrics)
    labels = {"method": "GET", "endpoint": ROUTE}
    with FrozenDependency() as dependency:
        threads, results = _clients(f"{metrics.server.url}{ROUTE}?port={dependency.port}", 1)
        (pid,) = dependency.wait_for_callers(1)
        time.sleep(1.0)
        readings.read()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 30
        while value(readings.read(), "gunicorn_worker_exits_total", reason="crash") < 1:
            assert time.monotonic() < deadline, "the killed worker was not merged"
            time.sleep(0.2)
        for t in threads:
            t.join(30)
    ((status, started),) = results
    assert status is None
    samples = readings.read()
    assert value(samples, "http_requests_total", status_code="502", **labels) == 1
    assert value(samples, "http_request_duration_seconds_count", **labels) == 1
    assert 1.0 <= value(samples, "http_request_duration_seconds_sum", **labels) <= time.monotonic() - started
    readings.never_decreased()
    # a later merge: still once
    os.kill(metrics.server.wait_for_workers(2)[0], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while value(readings.read(), "gunicorn_worker_exits_total", reason="shutdown") < 1:
        assert time.monotonic() < deadline, "the recycled worker was not merged"
        time.sleep(0.2)
    assert value(readings.read(), "http_requests_total", status_code="502", **labels) == 1
    readings.never_decreased()


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_busy_time_never_decreases_and_stays_within_capacity_through_bursts_timeouts_and_recycles(gunicorn):
    metrics = Listener(gunicorn, GUNICORN_TIMEOUT="2", GUNICORN_MAX_REQUESTS="15")
    readings = Readings(metrics)
    done = threading.Event()

    def scrape_until_done() -> None:
        while not done.is_set():
            readings.read()
            time.sleep(0.1)

    scraper = threading.Thread(target=scrape_until_done)
    scraper.start()
    try:
        with FrozenDependency() as dependency:
            stuck, _ = _clients(f"{metrics.server.url}{ROUTE}?port={dependency.port}", 1)  # timed out at 2 s
            burst, results = _clients(metrics.server.url + "/test/slow?s=0.1", 60)  # 6 s of work for 2 workers
            for t in [*burst, *stuck]:
                t.join(60)
        time.sleep(1.0)
    finally:
        done.set()
        scraper.join(30)
    samples = readings.read()
    assert value(samples, "gunicorn_worker_exits_total", reason="max_requests") >= 2
    assert value(samples, "gunicorn_worker_exits_total", reason="timeout") == 1
    assert sum(1 for status, _ in results if status == 200) >= 50
    readings.never_decreased()
    assert readings.within_capacity(2) > 10
