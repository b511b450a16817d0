"""No single point of failure, shown with the real engines: a Redis primary and replica under
three Sentinels, a PostgreSQL primary with a synchronous standby, several Gunicorn instances
behind haproxy, and a real Prometheus. Run with `make test-ha` (not part of `make test`: these
tests kill and promote servers, and take a few minutes)."""

from __future__ import annotations

import unittest
import uuid

import pytest
import requests

from aura.testing.ha import HAProxy, SentinelCluster, instance
from aura.testing.postgres import PostgresPair, PrivatePostgres, running
from aura.testing.servers import Gunicorn, migrate

TIMEOUT = 20  # seconds: a request that takes longer has hung
PASSWORD = "long-enough-password"


def _required(factory):
    """A missing engine fails the HA suite (ensure-services.sh --ha installs them all), never skips it."""
    try:
        return factory()
    except unittest.SkipTest as exc:
        pytest.fail(f"{exc}: run scripts/ensure-services.sh --ha")


@pytest.fixture(scope="module")
def postgres():
    """One private PostgreSQL shared by the instances of a module (the failover test has its own pair)."""
    with running(_required(PrivatePostgres)) as server:
        yield server


@pytest.fixture
def postgres_pair():
    pair = _required(PostgresPair)
    try:
        yield pair.start()
    finally:
        pair.remove()


@pytest.fixture
def sentinels(tmp_path):
    cluster = SentinelCluster(tmp_path / "sentinel")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def launch(tmp_path):
    """Start Gunicorn instances (migrating each new database first) and haproxy; all stopped after."""
    started: list = []
    migrated: set[str] = set()

    def gunicorn(env: dict[str, str], name: str = "a", workers: int = 2, **settings: str) -> Gunicorn:
        if env["DATABASE_URL"] not in migrated:
            migrate(env)
            migrated.add(env["DATABASE_URL"])
        server = instance(tmp_path, env, name, workers=workers, **settings)
        started.append(server)
        return server.start(timeout=90)

    def balancer(servers: list[Gunicorn]) -> HAProxy:
        proxy = HAProxy(tmp_path, {s.name: s.port for s in servers})  # type: ignore[attr-defined]
        started.append(proxy)
        return proxy.start()

    launch.gunicorn, launch.balancer = gunicorn, balancer  # type: ignore[attr-defined]
    yield launch
    for thing in reversed(started):
        thing.stop()


class Account:
    """A registered learner, and the sessions it opened."""

    def __init__(self, url: str):
        self.url = url + "/api/v1/auth"
        self.creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
        response = requests.post(f"{self.url}/register", json=self.creds, timeout=TIMEOUT)
        assert response.status_code == 201, response.text

    def login(self, session=requests) -> dict:
        response = session.post(f"{self.url}/login", json=self.creds, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_revoked(url: str, session_tokens: dict, attempts: int = 4) -> None:
    """The session's access token is refused and its refresh token does not refresh, on every
    worker (new connection each time)."""
    close = {"Connection": "close"}
    for _ in range(attempts):
        me = requests.get(
            f"{url}/api/v1/auth/me", headers={**bearer(session_tokens["access_token"]), **close}, timeout=TIMEOUT
        )
        assert (me.status_code, me.json().get("error")) == (401, "revoked_token"), me.text
        refreshed = requests.post(
            f"{url}/api/v1/auth/refresh", headers={**bearer(session_tokens["refresh_token"]), **close}, timeout=TIMEOUT
        )
        assert (refreshed.status_code, refreshed.json().get("error")) == (401, "revoked_token"), refreshed.text
