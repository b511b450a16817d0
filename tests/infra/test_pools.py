"""The pool-gauge sampling thread: one per process, started by requests, gone with its app."""

from __future__ import annotations

import gc
import threading
import time

from aura.extensions import db
from aura.infra.pools import PoolSampler


def test_one_thread_per_process_that_ends_with_its_app(app):
    sampler = PoolSampler(app, interval=0.01)
    sampler.ensure_running()
    thread = sampler.thread
    sampler.ensure_running()
    assert sampler.thread is thread and thread.is_alive()

    del sampler
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_connection_held_by_a_request_counts_as_in_use(app):
    sampler = PoolSampler(app, interval=3600)  # samples taken by hand below
    with app.app_context():
        connection = db.engine.connect()
        try:
            sampler.sample()
            assert sampler.last["db"][0] == 1  # (in use, idle)
        finally:
            connection.close()
    sampler.sample()
    assert sampler.last["db"] == (0, 1)


def test_the_first_request_starts_the_thread(app, client):
    sampler = app.wsgi_app.sampler
    assert sampler.thread is None
    client.get("/healthz")
    thread = sampler.thread
    assert thread is not None and thread.is_alive()
    deadline = time.monotonic() + 5
    while "auth_db" not in sampler.last and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(sampler.last) >= {"db", "auth_db"}


def test_concurrent_first_requests_start_one_thread(app):
    # Threaded workers (GUNICORN_THREADS > 1): the first requests arrive together.
    sampler = PoolSampler(app, interval=0.05)
    barrier = threading.Barrier(8)

    def first_request():
        barrier.wait(5)
        sampler.ensure_running()

    callers = [threading.Thread(target=first_request) for _ in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(5)
    name = f"aura-pool-sampler-{id(sampler):x}"
    assert [t.name for t in threading.enumerate()].count(name) == 1
