"""The pool-gauge sampling thread: one per process, started with the app, gone with it."""

from __future__ import annotations

import copy
import gc
import logging
import threading
import time

import redis

from aura.api.context import services
from aura.extensions import db
from aura.infra.pools import SAMPLE_INTERVAL, PoolSampler, redis_pool_counts
from aura.instrumentation import recorder
from tests.conftest import REDIS_URL, TEST_RATE_LIMIT_DB
from tests.support.metrics import registry_samples, value


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


def _gauges() -> dict:
    samples = registry_samples()
    return {
        "db": (value(samples, "database_connections_active"), value(samples, "database_connections_idle")),
        **{
            name: (
                value(samples, "redis_connections_active", database=name),
                value(samples, "redis_connections_idle", database=name),
            )
            for name in ("auth_db", "rate_limit_db")
        },
    }


def test_redis_pool_counts_are_in_use_and_idle_connections():
    pool = redis.ConnectionPool.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB)
    try:
        assert redis_pool_counts(pool) == (0, 0)
        first, second = pool.get_connection(), pool.get_connection()
        assert redis_pool_counts(pool) == (2, 0)
        pool.release(first)
        assert redis_pool_counts(pool) == (1, 1)
        pool.release(second)
        assert redis_pool_counts(pool) == (0, 2)
    finally:
        pool.disconnect()


def test_the_rate_limiters_pool_is_sampled_when_it_uses_redis(make_app):
    app = make_app(rate_limit_enabled=True)
    clients = services(app).redis
    sampler = _sampler(app, interval=3600)
    assert sampler.redis_pools == [
        ("auth_db", clients.auth.connection_pool),
        ("rate_limit_db", clients.rate_limit_pool),
    ]
    assert sampler.interval == 3600 and sampler.thread is None and not sampler.failed
    assert clients.rate_limit_pool is not None
    connection = clients.rate_limit_pool.get_connection()
    try:
        sampler.sample()
        assert sampler.last["rate_limit_db"][0] == 1
        assert _gauges()["rate_limit_db"] == sampler.last["rate_limit_db"]
    finally:
        clients.rate_limit_pool.release(connection)


def test_without_a_rate_limit_pool_only_the_auth_pool_is_sampled(app):
    clients = copy.copy(services(app).redis)
    clients.rate_limit_pool = None  # rate limits off, or counted in memory
    with app.app_context():
        sampler = PoolSampler(db.engine, clients, interval=3600)
    assert sampler.redis_pools == [("auth_db", clients.auth.connection_pool)]
    with app.app_context():
        assert PoolSampler(db.engine, clients).interval == SAMPLE_INTERVAL == 1.0  # once a second


def test_a_sample_writes_the_gauges_whose_counts_changed_only(app):
    sampler = _sampler(app, interval=3600)
    sampler.sample()
    assert set(sampler.last) >= {"db", "auth_db"}
    assert _gauges()["db"] == sampler.last["db"] and _gauges()["auth_db"] == sampler.last["auth_db"]
    recorder.database_pool(97, 98)  # as if another sampler of this process had written them
    recorder.redis_pool("auth_db", 95, 96)
    sampler.sample()  # nothing changed: nothing written
    assert _gauges()["db"] == (97, 98) and _gauges()["auth_db"] == (95, 96)
    with app.app_context():
        connection = db.engine.connect()
        try:
            sampler.sample()  # the database's counts changed, Redis's did not
            assert _gauges()["db"] == sampler.last["db"] != (97, 98)
            assert _gauges()["auth_db"] == (95, 96)
        finally:
            connection.close()


def _wait_for(condition) -> bool:
    for _ in range(500):  # bounded: about 5 s
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_thread_that_is_gone_is_started_again_with_its_gauges_written_anew(app):
    sampler = _sampler(app, interval=0.01)
    sampler.sample()
    sampler.thread = threading.Thread(target=lambda: None)  # as a forked child sees its parent's thread
    sampler.thread.start()
    sampler.thread.join()
    recorder.database_pool(97, 98)  # the child's gauge files start empty; the parent's counts are copied
    sampler.start()
    thread = sampler.thread
    assert thread.is_alive() and thread.daemon and thread.name == f"aura-pool-sampler-{id(sampler):x}"
    assert _wait_for(lambda: _gauges()["db"] != (97, 98))  # written although the counts did not change
    del sampler
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_failing_sample_is_logged_once_and_the_thread_goes_on(app, caplog):
    sampler = _sampler(app, interval=0.01)
    engine, sampler.engine = sampler.engine, None  # every sample fails
    with caplog.at_level(logging.DEBUG, logger="aura.metrics"):
        sampler.start()
        thread = sampler.thread
        assert _wait_for(lambda: len([r for r in caplog.records if r.levelno == logging.DEBUG]) >= 2)
        assert sampler.failed
        errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(errors) == 1 and errors[0].exc_info is not None  # once, with its traceback
        assert "has no attribute 'pool'" in [r for r in caplog.records if r.levelno == logging.DEBUG][0].getMessage()
        sampler.engine = engine  # the thread is still there: the gauges come back
        last = sampler.last
        assert _wait_for(lambda: "db" in last)
        assert thread.is_alive()
    for record in caplog.records:  # every handler has these records, whose errors hold the sampler
        record.exc_info, record.args = None, ()
    del errors
    del sampler
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_start_finding_the_lock_taken_returns_at_once(app):
    """A child forked while another thread was starting the sampler inherits the lock taken, and
    nobody to release it: start() must not wait for it."""
    sampler = _sampler(app, interval=3600)
    sampler._starting.acquire()  # as fork copies it
    try:
        starter = threading.Thread(target=sampler.start, daemon=True)
        starter.start()
        starter.join(timeout=5)
        assert not starter.is_alive() and sampler.thread is None
    finally:
        sampler._starting.release()
