"""Each pytest-xdist worker gets services of its own: a private redis-server and, on PostgreSQL,
a database of its own - so tests in parallel never see each other's keys, rows or ACL users.

``tests/conftest.py`` calls :func:`isolate_this_worker` before it reads ``AURA_TEST_REDIS_URL``
and ``AURA_TEST_DATABASE_URL``; it rewrites both in ``os.environ``, which the Gunicorn servers the
tests start inherit too (``aura.testing.servers.app_env``). Outside xdist (``make test``'s
serial phase, a plain ``pytest``) it does nothing: the suite uses the services it was given.
"""

from __future__ import annotations

import atexit
import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aura.testing.servers import RedisServer

_started: list[RedisServer] = []


def worker_name() -> str:
    """``gw0``, ``gw1``, ... in an xdist worker; empty otherwise."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def isolate_this_worker() -> None:
    worker = worker_name()
    if not worker or _started:
        return
    redis = RedisServer().start()
    _started.append(redis)
    atexit.register(_stop_redis)
    os.environ["AURA_TEST_REDIS_URL"] = redis.url
    if os.environ.get("AURA_TEST_DATABASE_URL"):
        os.environ["AURA_TEST_DATABASE_URL"] = _own_database(os.environ["AURA_TEST_DATABASE_URL"], worker)


def _own_database(url: str, worker: str) -> str:
    """``<database>_<worker>`` on the same PostgreSQL server, created if missing."""
    base = make_url(url)
    mine = base.set(database=f"{base.database}_{worker}")
    engine = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": mine.database}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{mine.database}"'))
    finally:
        engine.dispose()
    return mine.render_as_string(hide_password=False)


def _stop_redis() -> None:
    for server in _started:
        server.kill()


# --- Which process starts which test ---------------------------------------------------------

SLOW_DEFAULT_SECONDS = 10.0


def slow_seconds(item) -> float | None:
    """About how long a `slow` test takes alone (``@pytest.mark.slow(seconds)``); None if not slow."""
    marker = item.get_closest_marker("slow")
    if marker is None:
        return None
    return float(marker.args[0]) if marker.args else SLOW_DEFAULT_SECONDS


def worksteal_chunks(total: int, workers: int) -> list[int]:
    """The sizes of the first batches pytest-xdist's worksteal scheduler hands out: each of the
    ``workers`` idle processes in turn gets an even share of what is left."""
    sizes, left = [], total
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def slow_tests_first(items: list, workers: int) -> list:
    """``items`` reordered so that each process's first batch starts with its share of the slow
    tests, longest first (longest-processing-time: each to the batch with the least so far).

    In collection order the ~3-minute e2e tests, promtool's unit tests and the compat venvs sat in
    one process's batch, one after another, and the others ran out of work long before it did;
    the rest of each batch is the other tests in collection order, which idle processes steal."""
    sizes = worksteal_chunks(len(items), workers)
    slow = sorted((i for i in items if slow_seconds(i) is not None), key=lambda i: -slow_seconds(i))
    heads: list[list] = [[] for _ in sizes]
    loads = [0.0 for _ in sizes]
    for item in slow:
        open_batches = [b for b in range(len(sizes)) if len(heads[b]) < sizes[b]]
        target = min(open_batches, key=lambda b: loads[b])
        heads[target].append(item)
        loads[target] += slow_seconds(item)
    rest = iter(i for i in items if slow_seconds(i) is None)
    ordered = []
    for head, size in zip(heads, sizes, strict=True):
        ordered += head + [next(rest) for _ in range(size - len(head))]
    return ordered
