"""Fixture chain: settings -> app -> client -> auth. Real Redis; SQLite or PostgreSQL.

Set AURA_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run the
same suite on PostgreSQL; by default each session uses a fresh SQLite file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from aura.testing.servers import Gunicorn, Nginx, app_env, migrate
from tests.support.auth import AuthActions
from tests.support.parallel import isolate_this_worker, slow_tests_first

isolate_this_worker()  # under pytest-xdist: this worker's own redis-server and database


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config, items):
    """Under ``--dist worksteal`` (make test), each process starts with its share of the `slow`
    tests, longest first, instead of one process meeting them all in collection order. Every
    process computes the same order, as pytest-xdist requires."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1 and config.getoption("dist", None) == "worksteal":
        items[:] = slow_tests_first(items, workers)


TEST_DATABASE_URL = os.environ.get("AURA_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Logical databases of their own, so tests never touch a developer's data in 0 and 1.
TEST_AUTH_DB, TEST_RATE_LIMIT_DB = 12, 13


def _require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.exit(f"Redis is not reachable at {REDIS_URL} ({exc}); start it (see README)", 2)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """A database with the current schema, applied by the Alembic migrations."""
    if TEST_DATABASE_URL:
        engine = create_engine(TEST_DATABASE_URL)
        with engine.begin() as conn:  # start from nothing, so the migrations are what is tested
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'aura-test.db'}"


@pytest.fixture(scope="session")
def base_settings(database_url, tmp_path_factory) -> dict:
    """Settings every test app shares: cheap hashing, test Redis databases, no rate limits."""
    _require_redis()
    return {
        "env": "testing",
        "database_url": database_url,
        "instance_path": tmp_path_factory.mktemp("instance"),
        "redis_url": REDIS_URL,
        "redis_auth_db": TEST_AUTH_DB,
        "redis_rate_limit_db": TEST_RATE_LIMIT_DB,
        # 64 bytes or more: tests also sign with this key using HS512, for which PyJWT warns below 64.
        "jwt_secret_key": "test-secret-key-that-is-long-enough-even-for-hs512-0123456789abcdef",
        "password_hash_time_cost": 1,
        "password_hash_memory_cost": 8,
        "rate_limit_enabled": False,
    }


@pytest.fixture(scope="session")
def _migrated(base_settings):
    from flask_migrate import upgrade

    from aura.app import create_app
    from aura.extensions import db

    app = create_app(dict(base_settings))
    with app.app_context():
        upgrade()
        # Close the pooled connection now: left to the garbage collector, psycopg warns (ResourceWarning).
        db.engine.dispose()
    return True


@pytest.fixture
def make_app(base_settings, _migrated):
    """Build an app with overrides (and other workflows); its data is emptied after the test."""
    from aura.app import create_app
    from aura.extensions import db

    apps = []

    def factory(workflows=None, **overrides):
        app = create_app({**base_settings, **overrides}, **({"workflows": workflows} if workflows else {}))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.engine.dispose()
    _empty_tables(base_settings["database_url"])
    for db_index in (TEST_AUTH_DB, TEST_RATE_LIMIT_DB):
        redis.Redis.from_url(REDIS_URL, db=db_index).flushdb()


def _empty_tables(database_url: str) -> None:
    """Delete what tests write (accounts, revocations, workflow runs); the lesson catalogue stays."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for table in ("workflow_runs", "revoked_tokens", "users"):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def app(make_app):
    """The app with the test settings."""
    return make_app()


@pytest.fixture
def client(app):
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def auth(client):
    """Auth actions for one learner."""
    return AuthActions(client)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """migrated_sqlite(path) -> a fresh SQLite database at `path`, at the current schema: a copy of
    one file `flask db upgrade` (the Alembic migrations, as a deployment runs them) brought there
    once per session - the same bytes a migration of its own would leave, without each Gunicorn
    test paying a `flask db upgrade` process of its own (~2 s of CPU)."""
    template = tmp_path_factory.mktemp("migrated") / "template.db"
    migrate(app_env(template.parent, f"sqlite:///{template}"))

    def copy(path: Path) -> Path:
        shutil.copyfile(template, path)
        return path

    return copy


@pytest.fixture
def server_env(tmp_path, migrated_sqlite):
    """Environment of a migrated database (a fresh SQLite file, or the test PostgreSQL)."""
    if TEST_DATABASE_URL:
        env = app_env(tmp_path, TEST_DATABASE_URL)
        migrate(env)
        # Empty, as a fresh SQLite file is: this process's database outlives tests and sessions,
        # and a test that registers a fixed email must not meet the last run's account (409).
        _empty_tables(TEST_DATABASE_URL)
        return env
    return app_env(tmp_path, f"sqlite:///{migrated_sqlite(tmp_path / 'served.db')}")


@pytest.fixture
def gunicorn(tmp_path, server_env):
    """Start Gunicorn instances with settings; each is stopped after the test."""
    started: list[Gunicorn] = []

    def start(
        workers: int = 4,
        env: dict | None = None,
        cli: bool = False,
        ready_path: str = "/healthz",
        app: str = "wsgi:app",
        **settings: str,
    ) -> Gunicorn:
        server = Gunicorn(tmp_path, {**server_env, **(env or {})}, workers=workers, cli=cli, app=app, **settings)
        started.append(server)
        return server.start(ready_path=ready_path)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def nginx():
    """nginx(upstream) -> the pod's nginx sidecar (k8s/nginx/nginx.conf) in front of `upstream`
    ("127.0.0.1:PORT"); each is stopped after the test."""
    started: list[Nginx] = []

    def start(upstream: str) -> Nginx:
        server = Nginx(upstream)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
