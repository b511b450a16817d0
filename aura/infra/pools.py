"""Connection-pool gauges, sampled once a second by a thread in each worker.

Each worker reports its own pools; the gauges are `livesum`, so /metrics shows the sum over
live workers and a dead worker's connections stop counting as soon as it dies. A thread, not
the request path, takes the samples: a sample taken after a request has finished always sees
that request's connections back in the pool (a sync worker would never show one in use), and
once started the thread keeps the gauges current whether requests come or not. A sample reads a
few container sizes and writes a gauge only when its count changed.

The thread is started where the serving process starts, since threads do not survive fork: the
app factory registers it with the metrics core's `on_worker_start`, which Gunicorn's
`post_worker_init` runs in each worker, and which runs it at once when the app is served some
other way (`flask run`, tests). It holds the sampler weakly and ends
when its app is gone.
"""

from __future__ import annotations

import logging
import threading
import weakref

import redis
from sqlalchemy.engine import Engine

from aura.infra.database import pool_counts
from aura.infra.redis import AUTH_DB, RATE_LIMIT_DB, RedisClients
from aura.instrumentation import recorder

log = logging.getLogger("aura.metrics")

SAMPLE_INTERVAL = 1.0  # seconds between samples in one worker


def redis_pool_counts(pool: redis.ConnectionPool) -> tuple[int, int]:
    """(in use, idle) connections of a redis-py pool."""
    # redis-py keeps these as plain containers; reading their sizes takes no lock or I/O.
    return len(pool._in_use_connections), len(pool._available_connections)


class PoolSampler:
    """This worker's pool gauges, refreshed by a daemon thread."""

    def __init__(self, engine: Engine, clients: RedisClients, interval: float = SAMPLE_INTERVAL):
        self.engine = engine
        self.redis_pools = [(AUTH_DB, clients.auth.connection_pool)]
        if clients.rate_limit_pool is not None:
            self.redis_pools.append((RATE_LIMIT_DB, clients.rate_limit_pool))
        self.interval = interval
        self.last: dict[str, tuple[int, int]] = {}
        self.thread: threading.Thread | None = None
        self._starting = threading.Lock()
        self.failed = False  # a failing sample is logged with its traceback once

    def sample(self) -> None:
        """Write the gauges whose counts changed since the last sample."""
        counts = pool_counts(self.engine)
        if self.last.get("db") != counts:
            self.last["db"] = counts
            recorder.database_pool(*counts)
        for name, pool in self.redis_pools:
            counts = redis_pool_counts(pool)
            if self.last.get(name) != counts:
                self.last[name] = counts
                recorder.redis_pool(name, *counts)

    def start(self) -> None:
        """Start the sampling thread in this process unless it runs (threads do not survive fork)."""
        if self.thread is not None and self.thread.is_alive():
            return
        # Never blocking here means a lock copied by fork cannot hang the child.
        if not self._starting.acquire(blocking=False):
            return
        try:
            if self.thread is not None and self.thread.is_alive():
                return
            # A forked child inherits the parent's counts, not its gauges' files: write them anew.
            self.last.clear()
            thread = threading.Thread(
                target=_run,
                args=(weakref.ref(self), self.interval),
                name=f"aura-pool-sampler-{id(self):x}",
                daemon=True,
            )
            thread.start()
            self.thread = thread
        except RuntimeError as exc:  # no thread to be had: the service still starts
            log.warning("pool gauges not sampled: %s", exc)
        finally:
            self._starting.release()


def _run(ref: weakref.ref[PoolSampler], interval: float) -> None:
    stop = threading.Event()  # never set: wait() is an interruptible sleep
    while True:
        sampler = ref()
        if sampler is None:
            return
        try:
            sampler.sample()
        except Exception as exc:  # noqa: BLE001 - a gauge must never end the thread
            if not sampler.failed:
                sampler.failed = True
                log.exception("pool sample failed (logged once; later failures at debug level)")
            else:
                log.debug("pool sample failed: %s", exc)
        del sampler
        stop.wait(interval)
