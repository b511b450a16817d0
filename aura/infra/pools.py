"""Connection-pool gauges, sampled after requests (at most once a second per worker).

Each worker reports its own pools; the gauges are `livesum`, so /metrics shows the sum over
live workers and a dead worker's connections stop counting as soon as it dies. The pools are
looked up once; a sample reads a few counts and writes gauges only when a count changed.
"""

from __future__ import annotations

from flask import Flask

from aura import metrics
from aura.extensions import db
from aura.infra.database import pool_counts
from aura.infra.redis import AUTH_DB, RATE_LIMIT_DB


def redis_pool_counts(pool) -> tuple[int, int]:
    """(in use, idle) connections of a redis-py pool."""
    # redis-py keeps these as plain containers; reading their sizes takes no lock or I/O.
    return len(pool._in_use_connections), len(pool._available_connections)


def pool_sampler(app: Flask):
    """A function that refreshes this worker's pool gauges, writing only what changed."""
    clients = app.extensions["aura.redis"]
    with app.app_context():
        engine = db.engine
    redis_pools = [(AUTH_DB, clients.auth.connection_pool)]
    if getattr(clients, "rate_limit_pool", None) is not None:
        redis_pools.append((RATE_LIMIT_DB, clients.rate_limit_pool))
    last: dict[str, tuple[int, int]] = {}

    def sample() -> None:
        counts = pool_counts(engine)
        if last.get("db") != counts:
            last["db"] = counts
            metrics.database_pool(*counts)
        for name, pool in redis_pools:
            counts = redis_pool_counts(pool)
            if last.get(name) != counts:
                last[name] = counts
                metrics.redis_pool(name, *counts)

    return sample
