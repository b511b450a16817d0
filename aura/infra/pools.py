"""Connection-pool gauges, sampled at the end of each request (cheap: counts in memory).

Each worker reports its own pools; the gauges are `livesum`, so /metrics shows the sum over
live workers and a dead worker's connections stop counting as soon as it dies.
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
    return len(getattr(pool, "_in_use_connections", ())), len(getattr(pool, "_available_connections", ()))


def install_pool_sampling(app: Flask) -> None:
    """Refresh the pool gauges after every request, writing only what changed."""
    clients = app.extensions["aura.redis"]
    last: dict[str, tuple[int, int]] = {}

    def sample() -> None:
        current = {"db": pool_counts(db.engine), AUTH_DB: redis_pool_counts(clients.auth.connection_pool)}
        rate_pool = getattr(clients, "rate_limit_pool", None)
        if rate_pool is not None:
            current[RATE_LIMIT_DB] = redis_pool_counts(rate_pool)
        for name, counts in current.items():
            if last.get(name) != counts:
                last[name] = counts
                if name == "db":
                    metrics.database_pool(*counts)
                else:
                    metrics.redis_pool(name, *counts)

    @app.teardown_request
    def _sample(_exc=None) -> None:
        sample()

    app.extensions["aura.sample_pools"] = sample
