"""The pool-gauge sampling thread: one per process, started with the app, gone with it."""

from __future__ import annotations

import gc
import threading
import time

from aura.api.context import services
from aura.extensions import db
from aura.infra.pools import PoolSampler


def _sampler(app, interval):
    with app.app_context():
        return PoolSampler(db.engine, services(app).redis, interval=interval)


def test_one_thread_per_process_that_ends_with_its_app(app):
    sampler = _sampler(app, interval=0.01)
    sampler.start()
    thread = sampler.thread
    sampler.start()
    assert sampler.thread is thread and thread.is_alive()

    del sampler
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_connection_held_by_a_request_counts_as_in_use(app):
    sampler = _sampler(app, interval=3600)  # samples taken by hand below
    with app.app_context():
        connection = db.engine.connect()
        try:
            sampler.sample()
            assert sampler.last["db"][0] == 1  # (in use, idle)
        finally:
            connection.close()
    sampler.sample()
    assert sampler.last["db"] == (0, 1)


def test_the_app_factory_starts_the_thread_outside_gunicorn(app):
    sampler = services(app).pool_sampler
    thread = sampler.thread
    assert thread is not None and thread.is_alive()
    deadline = time.monotonic() + 5
    while "auth_db" not in sampler.last and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(sampler.last) >= {"db", "auth_db"}


def test_concurrent_starts_start_one_thread(app):
    sampler = _sampler(app, interval=0.05)
    barrier = threading.Barrier(8)

    def first_request():
        barrier.wait(5)
        sampler.start()

    callers = [threading.Thread(target=first_request) for _ in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(5)
    name = f"aura-pool-sampler-{id(sampler):x}"
    assert [t.name for t in threading.enumerate()].count(name) == 1
