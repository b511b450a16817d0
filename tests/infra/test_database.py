"""aura.infra.database on its own engines: statement timing by operation, pool counts, a demoted
primary's connections dropped, and a session whose connection died removed quietly.

Each test makes its own in-memory SQLite engine (never the app's database). The demoted primary
is a DB-API connection whose statements fail with SQLSTATE 25006, as psycopg's do on a standby:
a read-only server cannot be had in process."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InternalError, OperationalError
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from aura.infra.database import (
    follow_the_primary,
    instrument_engine,
    operation_of,
    pool_counts,
    release_sessions_quietly,
)
from tests.support.metrics import registry_samples, value

QUERIES = "database_query_duration_seconds_count"
DURATIONS = "database_query_duration_seconds_sum"


def test_the_operation_is_the_statements_first_word():
    assert operation_of("SELECT 1") == "select"
    assert operation_of("\n  insert INTO t VALUES (1)") == "insert"
    assert operation_of("Update t SET a = 1") == "update"
    assert operation_of("DELETE FROM t") == "delete"
    assert operation_of("deleted") == "delete"  # six characters are read, not a word
    for other in ("", "   ", "WITH x AS (SELECT 1) SELECT * FROM x", "CREATE TABLE t (a INT)", "sel", "PRAGMA x"):
        assert operation_of(other) == "other"


def _counts() -> dict[str, float]:
    samples = registry_samples()
    return {op: value(samples, QUERIES, operation=op) for op in ("select", "insert", "update", "delete", "other")}


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {op: n - before[op] for op, n in _counts().items() if n != before[op]}


def test_every_statement_is_timed_once_under_its_operation():
    engine = create_engine("sqlite://", poolclass=StaticPool)
    instrument_engine(engine)
    instrument_engine(engine)  # a second call adds no second set of listeners
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
        before = _counts()
        spent = registry_samples()
        conn.execute(text("INSERT INTO t (a, b) VALUES (1, 'x')"))
        conn.execute(text("INSERT INTO t (a, b) VALUES (2, 'y')"))
        conn.execute(text("SELECT * FROM t"))
        conn.execute(text("UPDATE t SET b = 'z'"))
        conn.execute(text("DELETE FROM t WHERE a = 1"))
        assert _moved(before) == {"insert": 2, "select": 1, "update": 1, "delete": 1}
        assert conn.info["aura_query_start"] == []  # every start taken off again
        after = registry_samples()
        # A statement's time is its own (end minus start): positive, and nowhere near a clock's reading.
        took = value(after, DURATIONS, operation="insert") - value(spent, DURATIONS, operation="insert")
        assert 0 < took < 60


def test_a_failed_statement_is_timed_and_leaves_no_start_behind():
    engine = create_engine("sqlite://", poolclass=StaticPool)
    instrument_engine(engine)
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t (a) VALUES (1)"))
        spent = registry_samples()
        before = _counts()
        with pytest.raises(IntegrityError):
            conn.execute(text("INSERT INTO t (a) VALUES (1)"))
        assert _moved(before) == {"insert": 1}
        took = value(registry_samples(), DURATIONS, operation="insert") - value(spent, DURATIONS, operation="insert")
        assert 0 < took < 60
        assert conn.info["aura_query_start"] == []
        before = _counts()
        with pytest.raises(OperationalError):
            conn.execute(text("SELECT * FROM missing"))
        assert _moved(before) == {"select": 1}
        conn.execute(text("SELECT 1"))  # the next statement is timed as usual
        assert conn.info["aura_query_start"] == []


def test_an_error_before_any_statement_is_not_timed():
    engine = create_engine("sqlite:////nonexistent-directory/aura/x.db")
    instrument_engine(engine)
    before = _counts()
    with pytest.raises(OperationalError):
        engine.connect()  # fails opening the file: no connection, no statement started
    assert _moved(before) == {}


def test_pool_counts_are_checked_out_and_idle_connections():
    engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=3)
    assert pool_counts(engine) == (0, 0)
    first, second = engine.connect(), engine.connect()
    assert pool_counts(engine) == (2, 0)
    first.close()
    assert pool_counts(engine) == (1, 1)
    second.close()
    assert pool_counts(engine) == (0, 2)
    for pool_class in (NullPool, StaticPool):  # pools that keep no counters
        other = create_engine("sqlite://", poolclass=pool_class)
        with other.connect():
            assert pool_counts(other) == (0, 0)


class _ReadOnly(sqlite3.InternalError):
    """What a standby answers a write with: psycopg's ReadOnlySqlTransaction, an InternalError
    with the SQLSTATE."""

    sqlstate = "25006"


class _NotDbApi(RuntimeError):
    """Not a DB-API error, whatever its SQLSTATE: SQLAlchemy does not wrap it."""

    sqlstate = "25006"


class _Unique(sqlite3.IntegrityError):
    sqlstate = "23505"


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor = cursor

    def execute(self, statement, parameters=()):
        if "read_only_here" in statement:
            raise _ReadOnly("cannot execute INSERT in a read-only transaction")
        if "not_dbapi_here" in statement:
            raise _NotDbApi("a driver bug")
        if "duplicate_here" in statement:
            raise _Unique("duplicate key value violates unique constraint")
        return self._cursor.execute(statement, parameters)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


class _Connection:
    """A SQLite DB-API connection whose marked statements fail as a PostgreSQL server's would."""

    def __init__(self):
        self._connection = sqlite3.connect(":memory:", check_same_thread=False)

    def cursor(self):
        return _Cursor(self._connection.cursor())

    def __getattr__(self, name):
        return getattr(self._connection, name)


def _standby_engine():
    opened: list[_Connection] = []

    def connect():
        opened.append(_Connection())
        return opened[-1]

    engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool, pool_size=2)
    return engine, opened


def test_a_read_only_server_drops_the_connection_and_answers_an_operational_error():
    engine, opened = _standby_engine()
    follow_the_primary(engine)
    follow_the_primary(engine)  # once per engine
    assert len(engine.dialect.dispatch.handle_error) == 1
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(OperationalError) as raised:
            conn.execute(text("SELECT 'read_only_here', :n"), {"n": 7})
        assert conn.invalidated  # handled as a disconnect
    assert type(raised.value) is OperationalError  # what the API answers with 503
    assert isinstance(raised.value.orig, _ReadOnly)
    assert "read_only_here" in raised.value.statement and 7 in raised.value.params
    with engine.connect() as conn:  # a fresh connection, not the one the standby held
        conn.execute(text("SELECT 1"))
    assert len(opened) == 2


def test_other_errors_keep_their_class_and_their_connection():
    engine, opened = _standby_engine()
    follow_the_primary(engine)
    with engine.connect() as conn:
        with pytest.raises(IntegrityError) as raised:
            conn.execute(text("SELECT 'duplicate_here'"))
        assert not raised.value.connection_invalidated and not conn.invalidated
        with pytest.raises(OperationalError) as missing:
            conn.execute(text("SELECT * FROM missing"))  # no SQLSTATE at all
        assert not missing.value.connection_invalidated and not conn.invalidated
        conn.execute(text("SELECT 1"))
    assert len(opened) == 1


def test_an_error_that_is_not_the_drivers_is_raised_as_it_is():
    engine, _ = _standby_engine()
    follow_the_primary(engine)
    with engine.connect() as conn, pytest.raises(_NotDbApi):
        conn.execute(text("SELECT 'not_dbapi_here'"))


def test_instrumenting_twice_adds_its_listeners_once():
    engine = create_engine("sqlite://")
    instrument_engine(engine)
    instrument_engine(engine)
    assert len(engine.dispatch.before_cursor_execute) == len(engine.dispatch.after_cursor_execute) == 1
    assert len(engine.dialect.dispatch.handle_error) == 1


def test_without_follow_the_primary_a_read_only_error_keeps_the_connection():
    engine, opened = _standby_engine()
    with engine.connect() as conn:
        with pytest.raises(InternalError) as raised:
            conn.execute(text("SELECT 'read_only_here'"))
        assert not conn.invalidated  # what follow_the_primary changes
    assert isinstance(raised.value.orig, _ReadOnly) and len(opened) == 1


class _Session:
    def __init__(self, errors: list[BaseException]):
        self.errors = errors
        self.removed = 0

    def remove(self) -> None:
        self.removed += 1
        if self.errors:
            raise self.errors.pop(0)


class _Db:
    def __init__(self, session: _Session):
        self.session = session


class _App:
    def __init__(self):
        self.teardowns = []

    def teardown_appcontext(self, f):
        self.teardowns.append(f)
        return f


def _dropped(invalidated: bool) -> DBAPIError:
    return DBAPIError(
        "ROLLBACK", {}, sqlite3.OperationalError("server closed the connection"), connection_invalidated=invalidated
    )


def _teardown(session: _Session):
    app = _App()
    release_sessions_quietly(app, _Db(session))
    assert len(app.teardowns) == 1
    return app.teardowns[0]


def test_the_session_is_removed_once_after_a_request():
    session = _Session([])
    _teardown(session)(None)
    assert session.removed == 1


def test_a_connection_lost_after_the_request_is_removed_again_quietly():
    session = _Session([_dropped(invalidated=True)])
    _teardown(session)(None)
    assert session.removed == 2


def test_other_database_errors_in_the_teardown_are_raised():
    session = _Session([_dropped(invalidated=False)])
    with pytest.raises(DBAPIError):
        _teardown(session)(None)
    assert session.removed == 1
