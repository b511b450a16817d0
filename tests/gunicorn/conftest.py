"""Fixtures for tests against real multi-worker Gunicorn."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.support.servers import Gunicorn, app_env, migrate


@pytest.fixture
def server_env(tmp_path):
    """Environment of a migrated database (a fresh SQLite file, or the test PostgreSQL)."""
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'served.db'}"
    env = app_env(tmp_path, url)
    migrate(env)
    return env


@pytest.fixture
def gunicorn(tmp_path, server_env):
    """Start Gunicorn instances with settings; each is stopped after the test."""
    started: list[Gunicorn] = []

    def start(workers: int = 4, env: dict | None = None, **settings: str) -> Gunicorn:
        server = Gunicorn(tmp_path, {**server_env, **(env or {})}, workers=workers, **settings)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
