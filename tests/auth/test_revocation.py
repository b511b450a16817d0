"""The revocation stores: atomic revoke, fail closed on Redis errors, entries that outlive the
token, and Redis reloaded from the database after it lost its keys. Real Redis and database."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from aura.api.context import services
from tests.conftest import REDIS_URL, TEST_AUTH_DB

KEY_PREFIX = "aura:revoked:"
MARKER = "aura:revoked:loaded"
LOCK = "aura:revoked:loading"


def _ids(n: int = 1) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


def _auth_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, db=TEST_AUTH_DB)


def _user_id(app) -> int:
    from aura.extensions import db
    from aura.models import User

    with app.app_context():
        user = User(email=f"{uuid.uuid4().hex}@example.com", email_skeleton=uuid.uuid4().hex, password_hash="x")
        db.session.add(user)
        db.session.commit()
        return user.id


def _unreachable_store():
    """The durable store over a Redis where nothing listens."""
    from aura.auth.revocation import DurableRevocationStore
    from aura.infra.redis import CircuitBreaker, GuardedRedis

    client = GuardedRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    client.breaker = CircuitBreaker(0.001)
    return DurableRevocationStore(client)


@pytest.fixture
def store(app):
    """The app's durable store, in an app context."""
    with app.app_context():
        yield services(app).revocation


def _expires_in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_revoke_answers_whether_this_call_revoked_the_id(app, store):
    from aura.auth.revocation import SqlRevocationStore

    assert store.mode == "redis"
    user = _user_id(app)
    jti, other = _ids(2)
    assert store.revoke(jti, "refresh", user, _expires_in(600)) is True
    assert store.revoke(jti, "refresh", user, _expires_in(600)) is False
    assert SqlRevocationStore().revoke(jti, "refresh", user, _expires_in(600)) is False
    assert SqlRevocationStore().revoke(other, "refresh", user, _expires_in(600)) is True
    assert SqlRevocationStore().revoke(other, "refresh", user, _expires_in(600)) is False


@pytest.mark.parametrize("kind", ["durable", "sql"])
def test_is_revoked_looks_at_the_token_and_its_family(app, store, kind):
    from aura.auth.revocation import SqlRevocationStore

    checked = store if kind == "durable" else SqlRevocationStore()
    user = _user_id(app)
    jti, family, live, live_family = _ids(4)
    checked.revoke(jti, "access", user, _expires_in(600))
    checked.revoke(family, "family", user, _expires_in(600))
    assert checked.is_revoked(jti) and checked.is_revoked(jti, live_family)
    assert checked.is_revoked(live, family)
    assert not checked.is_revoked(live) and not checked.is_revoked(live, live_family)


def test_revoke_fails_closed_when_redis_is_unreachable_and_a_retry_completes_it(app, store):
    from aura.errors import ServiceUnavailable

    user = _user_id(app)
    (jti,) = _ids()
    from tests.support.metrics import registry_samples, value

    down = _unreachable_store()
    errors = dict(database="auth_db", error_type="connection_failed")
    before = value(registry_samples(), "redis_connection_errors_total", **errors)
    with pytest.raises(ServiceUnavailable) as refused:
        down.revoke(jti, "access", user, _expires_in(600))
    assert refused.value.dependency == "redis"
    assert value(registry_samples(), "redis_connection_errors_total", **errors) == before + 1
    with pytest.raises(ServiceUnavailable) as refused:
        down.is_revoked(jti)
    assert refused.value.dependency == "redis"
    assert value(registry_samples(), "redis_connection_errors_total", **errors) == before + 2
    # The row was written first, so the client's retry (Redis back) finds it and sets the key.
    assert store.revoke(jti, "access", user, _expires_in(600)) is False
    assert _auth_redis().get(KEY_PREFIX + jti) == b"access"
    assert store.is_revoked(jti)


def test_the_redis_entry_outlives_the_token_it_revokes(app, store):
    user = _user_id(app)
    client = _auth_redis()
    for lifetime in (0.2, 30, 14 * 24 * 3600):
        (jti,) = _ids()
        expires_at = _expires_in(lifetime)
        store.revoke(jti, "refresh", user, expires_at)
        gone_at = time.time() + client.pttl(KEY_PREFIX + jti) / 1000
        assert gone_at >= expires_at.timestamp() - 0.01, lifetime  # never forgotten while the token is valid
        assert gone_at <= expires_at.timestamp() + 2.1, lifetime  # and then forgotten


def test_an_expired_token_still_gets_a_short_lived_entry(app, store):
    user = _user_id(app)
    (jti,) = _ids()
    store.revoke(jti, "access", user, _expires_in(-30))
    assert 0 < _auth_redis().pttl(KEY_PREFIX + jti) <= 1000


def test_redis_that_lost_its_keys_is_reloaded_from_the_database(app, store):
    user = _user_id(app)
    revoked, family, expired = _ids(3)
    store.revoke(revoked, "access", user, _expires_in(600))
    store.revoke(family, "family", user, _expires_in(3600))
    store.revoke(expired, "refresh", user, _expires_in(-60))
    client = _auth_redis()
    client.flushdb()  # a restart without persistence

    assert store.is_revoked(revoked)  # answered from the database while loading
    assert client.get(MARKER) is not None and client.get(LOCK) is None
    assert client.get(KEY_PREFIX + revoked) == b"access" and client.get(KEY_PREFIX + family) == b"family"
    assert 595 <= client.ttl(KEY_PREFIX + revoked) <= 602
    assert 3595 <= client.ttl(KEY_PREFIX + family) <= 3602
    assert client.get(KEY_PREFIX + expired) is None  # nothing to protect any more
    # From now on Redis answers alone, and it knows everything the database knows.
    assert store.is_revoked(uuid.uuid4().hex, family)
    assert not store.is_revoked(uuid.uuid4().hex)


def test_while_another_worker_reloads_a_check_asks_the_database(app, store):
    user = _user_id(app)
    (revoked,) = _ids()
    store.revoke(revoked, "access", user, _expires_in(600))
    client = _auth_redis()
    client.flushdb()
    client.set(LOCK, "1", ex=60)  # another worker holds the loading lock
    assert store.is_revoked(revoked)
    assert not store.is_revoked(uuid.uuid4().hex)
    assert client.get(MARKER) is None and client.get(KEY_PREFIX + revoked) is None
    assert client.ttl(LOCK) > 50  # left to its owner


def test_a_reload_loads_every_row_in_batches(app, store, monkeypatch):
    from aura.auth import revocation

    monkeypatch.setattr(revocation, "_RELOAD_BATCH", 2)
    user = _user_id(app)
    ids = _ids(5)
    for jti in ids:
        store.revoke(jti, "refresh", user, _expires_in(600))
    client = _auth_redis()
    client.flushdb()
    assert not store.is_revoked(uuid.uuid4().hex)
    assert [client.get(KEY_PREFIX + jti) for jti in ids] == [b"refresh"] * 5


def test_a_reload_that_fails_leaves_a_lock_that_expires(app, store, monkeypatch):
    """A worker that fails (or dies) while loading must not keep every other worker off Redis."""
    from sqlalchemy.exc import OperationalError

    from aura.extensions import db

    user = _user_id(app)
    (jti,) = _ids()
    store.revoke(jti, "access", user, _expires_in(600))
    client = _auth_redis()
    client.flushdb()

    def database_down(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(db.session, "execute", database_down)
    with pytest.raises(OperationalError):
        store.is_revoked(jti)
    assert 0 < client.ttl(LOCK) <= 60
    assert client.get(MARKER) is None


def test_once_loaded_checks_read_redis_only(app, store):
    from sqlalchemy import event

    from aura.extensions import db

    user = _user_id(app)
    (revoked,) = _ids()
    store.revoke(revoked, "access", user, _expires_in(600))
    assert not store.is_revoked(uuid.uuid4().hex)  # the first check loads Redis (sets the marker)
    queries: list[str] = []

    def count(conn, cursor, statement, *args):
        queries.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert not store.is_revoked(uuid.uuid4().hex, uuid.uuid4().hex)
        assert not store.is_revoked(uuid.uuid4().hex)
        assert store.is_revoked(revoked)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert queries == []


def test_a_marker_naming_another_server_is_reloaded_like_a_missing_one(app, store):
    """Issue 23 item 3, in-process: the marker is the loaded server's run_id. A marker copied from
    another server (an older snapshot, a promoted replica's) does not count as loaded."""
    user = _user_id(app)
    revoked, family = _ids(2)
    store.revoke(revoked, "access", user, _expires_in(600))
    store.revoke(family, "family", user, _expires_in(600))
    client = _auth_redis()
    assert store.is_revoked(revoked)  # loads if needed, and leaves the marker naming this server
    run_id = client.info("server")["run_id"]
    assert client.get(MARKER) == run_id.encode()
    client.delete(KEY_PREFIX + revoked, KEY_PREFIX + family)  # revocations the snapshot lacks
    client.set(MARKER, "0" * 40)  # ... and the marker it was saved with
    assert store.is_revoked(revoked)  # from the database, while reloading
    assert client.get(MARKER) == run_id.encode()
    assert client.get(KEY_PREFIX + revoked) == b"access" and client.get(KEY_PREFIX + family) == b"family"
    assert store.is_revoked(uuid.uuid4().hex, family)


def test_a_reload_interrupted_by_a_failover_leaves_no_marker(app, store):
    """The marker is set only on the server the reload began on (its run_id is checked in the
    same script that sets it)."""
    from aura.auth.revocation import LOADED_MARKER

    client = _auth_redis()
    client.delete(LOADED_MARKER)
    assert store._mark(keys=[LOADED_MARKER], args=["f" * 40]) == 0  # another server's run_id
    assert client.get(LOADED_MARKER) is None
    assert store._mark(keys=[LOADED_MARKER], args=[client.info("server")["run_id"]]) == 1
    assert client.get(LOADED_MARKER) is not None


def test_a_refresh_asks_the_database_when_redis_forgot(app, store):
    user = _user_id(app)
    (family,) = _ids()
    store.revoke(family, "family", user, _expires_in(600))
    assert store.is_revoked(uuid.uuid4().hex, family)  # loaded: the marker is in place
    _auth_redis().delete(KEY_PREFIX + family)  # then forgotten, the marker still there
    assert not store.is_revoked(uuid.uuid4().hex, family)  # an access check trusts Redis
    assert store.is_revoked(uuid.uuid4().hex, family, durable=True)  # a refresh does not


def test_a_revocation_whose_redis_write_failed_is_written_at_the_next_call(app, store, monkeypatch):
    from aura.errors import ServiceUnavailable

    user = _user_id(app)
    (jti,) = _ids()
    assert store.is_revoked(uuid.uuid4().hex) is False  # loaded: the marker is in place

    def refuse(*args, **kwargs):
        raise redis.ConnectionError("a failover moment")

    with monkeypatch.context() as patch:
        patch.setattr(store._redis, "set", refuse)
        with pytest.raises(ServiceUnavailable):
            store.revoke(jti, "access", user, _expires_in(600))  # the row is written, the key not
    store._redis.breaker.reset()
    assert _auth_redis().get(KEY_PREFIX + jti) is None
    assert store.is_revoked(uuid.uuid4().hex) is False  # any next call of this process...
    assert _auth_redis().get(KEY_PREFIX + jti) == b"access"  # ... writes the pending key first
    assert store.is_revoked(jti)


def test_no_row_is_written_while_the_breaker_is_open(app, store):
    from sqlalchemy import select

    from aura.errors import ServiceUnavailable
    from aura.extensions import db
    from aura.models import RevokedToken

    user = _user_id(app)
    (jti,) = _ids()
    store._redis.breaker.trip(redis.ConnectionError("down a moment ago"))
    try:
        with pytest.raises(ServiceUnavailable):
            store.revoke(jti, "access", user, _expires_in(600))
    finally:
        store._redis.breaker.reset()
    assert db.session.scalar(select(RevokedToken.jti).where(RevokedToken.jti == jti)) is None
    assert store.revoke(jti, "access", user, _expires_in(600)) is True  # the retry does it all


def test_a_logout_cut_short_by_redis_ends_the_session_or_leaves_it_for_the_retry(app, monkeypatch):
    """The first Redis write of a logout fails (a failover moment): 503. The session must not be
    left half-ended - access token refused but its refresh token alive, so that the client's
    retry is refused too (found by make test-ha). The family is revoked first, so whatever got
    through ends the whole session."""
    from tests.support.auth import AuthActions

    client = app.test_client()
    learner = AuthActions(client).signed_in()
    assert learner.me().status_code == 200  # Redis loaded: the marker is in place
    store = services(app).revocation
    real_set, calls = store._redis.set, []

    def set_failing_first(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise redis.ConnectionError("a failover moment")
        return real_set(*args, **kwargs)

    monkeypatch.setattr(store._redis, "set", set_failing_first)
    assert learner.logout().status_code == 503
    assert calls[0].startswith(KEY_PREFIX)  # it was a revocation's write that failed
    assert learner.me().status_code == 401
    assert learner.refresh().status_code == 401  # the session is over, not just its access token
