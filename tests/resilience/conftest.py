"""Real processes to break: Gunicorn, a private redis-server, a private PostgreSQL cluster, and
load threads that record every answer (or failure) by phase."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import requests

from aura.testing.postgres import PrivatePostgres, running
from aura.testing.servers import Gunicorn, RedisServer, app_env, migrate
from tests.conftest import TEST_DATABASE_URL
from tests.support.metrics import parse_exposition

TIMEOUT = 20  # seconds: a request that takes longer has hung (the machine may be busy)


@pytest.fixture
def start_gunicorn(tmp_path, migrated_sqlite):
    """Start Gunicorn instances on a freshly migrated database; each is stopped after the test."""
    started: list[Gunicorn] = []
    migrated: set[str] = set()

    def start(workers: int = 2, env: dict | None = None, database_url: str | None = None, **settings: str) -> Gunicorn:
        url = database_url or TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'served.db'}"
        base = app_env(tmp_path, url)
        base.update(env or {})
        if url not in migrated:
            if url == base["DATABASE_URL"] == f"sqlite:///{tmp_path / 'served.db'}":
                migrated_sqlite(tmp_path / "served.db")  # the session's migrated file, copied
            else:
                migrate(base)
            migrated.add(url)
        server = Gunicorn(tmp_path, base, workers=workers, **settings)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server():
    """A private redis-server that a test may kill and start again (same port)."""
    server = RedisServer().start()
    yield server
    server.kill()


def scrape(server) -> dict:
    response = requests.get(server.url + "/metrics", timeout=TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    return parse_exposition(response.text)


class Load:
    """Threads sending a fixed mix of requests until stopped (or a cap), one connection each.

    Each outcome is recorded with the phase in force when the request started and when it ended,
    so a test can judge only requests that began and finished within one phase.
    """

    def __init__(self, url: str, requests_mix, threads: int = 3, cap: int = 400):
        self.url, self.mix, self.cap = url, requests_mix, cap
        self.phase = "before"
        self.outcomes: Counter = Counter()  # (start phase, end phase, name, status or error) -> n
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT * 3)
        assert not any(t.is_alive() for t in self._threads), "a load thread hung"

    def _run(self, seed: int) -> None:
        session = requests.Session()
        session.headers["Connection"] = "close"
        for i in range(self.cap):
            if self._stop.is_set():
                return
            name, method, path, kwargs = self.mix[(seed + i) % len(self.mix)]
            started_in = self.phase
            try:
                result = session.request(method, self.url + path, timeout=TIMEOUT, **kwargs).status_code
            except requests.RequestException as exc:
                result = type(exc).__name__
            with self._lock:
                self.outcomes[(started_in, self.phase, name, result)] += 1
            time.sleep(0.01)

    def wait_for(self, phase: str, name: str, result, count: int = 1, timeout: float = 30) -> None:
        """Wait until `count` requests `name` began and ended in `phase` with `result`."""
        deadline = time.monotonic() + timeout
        while self.seen(phase, name, result) < count:
            assert time.monotonic() < deadline, (phase, name, result, self.summary())
            time.sleep(0.1)

    def seen(self, phase: str, name: str, result) -> int:
        with self._lock:
            return self.outcomes[(phase, phase, name, result)]

    def results(self, phase: str | None = None, name: str | None = None) -> set:
        """Results of requests that began and ended in `phase` (any phase when None)."""
        with self._lock:
            return {
                result
                for (start, end, n, result) in self.outcomes
                if (phase is None or start == end == phase) and (name is None or n == name)
            }

    def summary(self) -> dict:
        with self._lock:
            return dict(self.outcomes)


# --------------------------------------------------------------------------- private PostgreSQL


@pytest.fixture
def private_postgres():
    with running(PrivatePostgres()) as server:
        yield server
