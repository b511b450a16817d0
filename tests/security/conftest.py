"""One hardened Aura under real Gunicorn for the security tests, and clients with their own address.

The `hardened` server runs like production (AURA_ENV=production, rate limits on, /metrics behind
a token) with DEBUG logging and the access log in a file, on a private redis-server and its own
database, so nothing another test flushes or deletes can change what these tests see. Each test
talks from its own loopback address (127.x.y.z - all of 127/8 is local on Linux), so per-client
rate limits are per test, exactly as they would be per real client, without trusting
X-Forwarded-For.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aura.testing.servers import Gunicorn, RedisServer, app_env, migrate, session_from
from tests.conftest import TEST_DATABASE_URL
from tests.support.auth import AuthActions

SECRET = "security-suite-secret-key-4f9c2a7e1b8d6035-9e1f7c3a5d2b8046-long-enough"
METRICS_TOKEN = "metrics-scrape-token-7d3e9a1c5b2f8046"
TIMEOUT = 20  # seconds: a request that takes longer has hung (the machine may be busy)
HARDENED = dict(
    AURA_ENV="production",
    JWT_SECRET_KEY=SECRET,
    METRICS_AUTH_TOKEN=METRICS_TOKEN,
    LOG_LEVEL="DEBUG",
    GUNICORN_CMD_ARGS="--log-level debug",
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_DEFAULT="10000 per hour",
    RATE_LIMIT_REGISTER="1000 per hour",
    RATE_LIMIT_REGISTER_ALL="100000 per hour",
    RATE_LIMIT_LOGIN="5 per hour",
    RATE_LIMIT_LOGIN_ACCOUNT="8 per hour",
    RATE_LIMIT_LOGIN_DEVICE="3 per hour",
    RATE_LIMIT_WORKFLOWS="1000 per hour",
)

_addresses = (f"127.{a}.{b}.{c}" for a, b, c in itertools.product(range(10, 250), range(1, 250), range(1, 250)))


def new_address() -> str:
    """A loopback address no other test in this session has used."""
    return next(_addresses)


class Client:
    """HTTP client of one server, from its own loopback address, one connection per request."""

    def __init__(self, base_url: str, address: str | None = None):
        self.url = base_url
        self.address = address or new_address()
        self.session = session_from(self.address)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)


def private_database(tmp_dir: Path, name: str):
    """A database of its own: a SQLite file, or - under AURA_TEST_DATABASE_URL - a new PostgreSQL
    database next to the test one (the session's in-process tests empty the shared one).

    Returns (url, drop) where drop() removes it.
    """
    if not TEST_DATABASE_URL:
        return f"sqlite:///{tmp_dir / f'{name}.db'}", lambda: None
    admin_url = make_url(TEST_DATABASE_URL)
    db_name = f"aura_{name}_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}"'))
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=db_name).render_as_string(hide_password=False), drop


class Server:
    """A started Gunicorn with its private Redis and database; stopped (by pid) in `close`."""

    def __init__(self, tmp_dir: Path, name: str, workers: int = 2, **settings: str):
        self.redis = RedisServer().start()
        url, self._drop_db = private_database(tmp_dir, name)
        self.database_url = url
        env = app_env(
            tmp_dir, url, REDIS_URL=self.redis.url, REDIS_AUTH_DB="0", REDIS_RATE_LIMIT_DB="1", JWT_SECRET_KEY=SECRET
        )
        migrate(env)
        self.access_log = tmp_dir / f"{name}-access.log"
        self.gunicorn = Gunicorn(
            tmp_dir, env, workers=workers, PROMETHEUS_MULTIPROC_DIR=str(tmp_dir / f"{name}-metrics"), **settings
        )
        try:
            self.gunicorn.start()
            self.gunicorn.wait_for_workers(workers)  # /healthz answers as soon as one is up
        except Exception:
            self.close()
            raise
        self.url = self.gunicorn.url

    def client(self, address: str | None = None) -> Client:
        return Client(self.url, address)

    def sql(self, statement: str, **params) -> list:
        """Run one SQL statement on the server's database, as an operator would; rows if any."""
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def log_text(self) -> str:
        """Everything the server printed (error log and, when set, the access log file)."""
        text_ = self.gunicorn.log_path.read_text(errors="replace")
        if self.access_log.exists():
            text_ += self.access_log.read_text(errors="replace")
        return text_

    def assert_healthy(self, workers_before: list[int]) -> None:
        """/healthz answers, a normal request works, and no worker died meanwhile."""
        client = self.client()
        assert client.get("/healthz").json() == {"status": "ok"}
        account = AuthActions(client)
        assert account.register().status_code == 201
        assert account.login().status_code == 200 and account.me().status_code == 200
        after = self.gunicorn.worker_pids()
        events = [
            line
            for line in self.gunicorn.log_path.read_text(errors="replace").splitlines()
            if "[DEBUG]" not in line and " DEBUG " not in line
        ]
        assert sorted(after) == sorted(workers_before), (workers_before, after, events[-30:])

    def close(self) -> None:
        self.gunicorn.stop()
        self.redis.kill()
        self._drop_db()


@pytest.fixture(scope="package")
def hardened(tmp_path_factory):
    """Production-like Aura: rate limits on, /metrics behind a token, DEBUG logs, access log."""
    tmp_dir = tmp_path_factory.mktemp("hardened")
    server = Server(
        tmp_dir, "hardened", workers=2, GUNICORN_ACCESS_LOG=str(tmp_dir / "hardened-access.log"), **HARDENED
    )
    yield server
    server.close()
