"""Real processes to break: Gunicorn, a private redis-server, a private PostgreSQL cluster, and
load threads that record every answer (or failure) by phase."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from aura.testing.servers import Gunicorn, RedisServer, app_env, free_port, migrate
from tests.conftest import TEST_DATABASE_URL
from tests.support.metrics import parse_exposition

TIMEOUT = 20  # seconds: a request that takes longer has hung (the machine may be busy)


@pytest.fixture
def start_gunicorn(tmp_path):
    """Start Gunicorn instances on a freshly migrated database; each is stopped after the test."""
    started: list[Gunicorn] = []
    migrated: set[str] = set()

    def start(workers: int = 2, env: dict | None = None, database_url: str | None = None, **settings: str) -> Gunicorn:
        url = database_url or TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'served.db'}"
        base = app_env(tmp_path, url)
        base.update(env or {})
        if url not in migrated:
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


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"PostgreSQL server binaries ({name}) are not installed")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir, owned by the `postgres` user), on a
    free loopback port, started and stopped by pid - the machine's shared cluster is never touched.
    """

    def __init__(self):
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no `postgres` user to run a private PostgreSQL as (root cannot)")
        self.root = Path(tempfile.mkdtemp(prefix="aura-pg-"))  # /tmp: reachable by that user
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        os.chown(self.sockets, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/aura"
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "postgres.log"
        subprocess.run(
            [_postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
            **self._as_postgres(),
        )

    def _as_postgres(self) -> dict:
        return dict(
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
            cwd=self.root,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )

    def start(self, timeout: float = 60) -> PrivatePostgres:
        """Start (or restart, same port and data) and wait until it accepts connections."""
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    _postgres_bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=40",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as_postgres(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            ready = subprocess.run(
                [_postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, timeout=10
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("private postgres did not start: " + self.log.read_text()[-2000:])

    def create_database(self, name: str = "aura") -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are cut, as in an outage."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.remove()
