"""The database engine: statement durations by operation, the pool's gauges, and following the
primary through a failover (connections to a server that is gone or read-only are dropped)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, OperationalError

from aura.instrumentation import recorder

log = logging.getLogger("aura.database")

_OPERATIONS = ("select", "insert", "update", "delete")


def operation_of(statement: str) -> str:
    """select|insert|update|delete|other from the statement's first word (no regex)."""
    head = statement.lstrip()[:6].lower()
    return head if head in _OPERATIONS else "other"


def instrument_engine(engine: Engine) -> None:
    """Time every statement through SQLAlchemy's cursor events."""
    if getattr(engine, "_aura_instrumented", False):
        return
    engine._aura_instrumented = True  # type: ignore[attr-defined]  # a marker on the engine itself

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        _query_started(conn)

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        _query_ended(conn, statement)

    @event.listens_for(engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        _query_failed(context)


# The listeners' bodies live in plain functions: mutmut 3 does not mutate decorated ones.
def _query_started(conn: Connection) -> None:
    conn.info.setdefault("aura_query_start", []).append(perf_counter())


def _query_ended(conn: Connection, statement: str) -> None:
    started = conn.info["aura_query_start"].pop()
    recorder.database_query(operation_of(statement), perf_counter() - started)


def _query_failed(context: ExceptionContext) -> None:
    # A failed statement still took time; drop its start so the stack stays balanced.
    stack = context.connection.info.get("aura_query_start") if context.connection else None
    if stack:
        recorder.database_query(operation_of(context.statement or ""), perf_counter() - stack.pop())


def pool_counts(engine: Engine) -> tuple[int, int]:
    """(checked out, idle in pool) for this process's engine."""
    pool = engine.pool
    checked_out = getattr(pool, "checkedout", None)
    checked_in = getattr(pool, "checkedin", None)
    if checked_out is None or checked_in is None:  # pools without counters (NullPool, StaticPool)
        return 0, 0
    return checked_out(), checked_in()


# SQLSTATEs that mean "this server is no longer (or not yet) the writable primary".
_NOT_THE_PRIMARY = {"25006"}  # read_only_sql_transaction: a demoted primary, or a standby


def follow_the_primary(engine: Engine) -> None:
    """After a failover, never keep a connection to a server that is not the primary.

    pool_pre_ping drops connections that died with the old primary before they are handed out;
    this handles the other case - the old server still answers but as a read-only standby (a
    demotion): the error invalidates the connection (and, as any disconnect does, the rest of the
    pool), and is raised as an OperationalError, which the API answers with 503. New connections
    go where DATABASE_URL's target_session_attrs=read-write sends them: the current primary.
    """
    if getattr(engine, "_aura_follows_primary", False):
        return
    engine._aura_follows_primary = True  # type: ignore[attr-defined]  # a marker on the engine itself

    @event.listens_for(engine, "handle_error")
    def _not_the_primary(context: ExceptionContext) -> OperationalError | None:
        return _drop_if_not_the_primary(context)


def _drop_if_not_the_primary(context: ExceptionContext) -> OperationalError | None:
    """`follow_the_primary`'s listener (a plain function, for mutmut)."""
    if getattr(context.original_exception, "sqlstate", None) not in _NOT_THE_PRIMARY:
        return None
    context.is_disconnect = True
    error = context.sqlalchemy_exception
    return OperationalError(context.statement, context.parameters, context.original_exception) if error else None


Teardown = TypeVar("Teardown", bound=Callable[[BaseException | None], None])


class _App(Protocol):
    """What `release_sessions_quietly` uses of a Flask app (this layer does not import Flask)."""

    def teardown_appcontext(self, f: Teardown) -> Teardown: ...


class _RemovableSession(Protocol):
    def remove(self) -> None: ...


class _Database(Protocol):
    """What it uses of Flask-SQLAlchemy's extension: the scoped session."""

    @property
    def session(self) -> _RemovableSession: ...


def release_sessions_quietly(app: _App, db: _Database) -> None:
    """End each request's session without letting a connection that died meanwhile turn a
    finished request into a 500.

    Flask-SQLAlchemy removes the session when the app context ends, which rolls back on the
    connection; when the server went away after the view's last statement (a primary stopped
    for a failover), that rollback raises, after the view has answered. Nothing is lost (what
    was committed is committed), so this teardown - registered after Flask-SQLAlchemy's, so it
    runs first - removes the session, logs a dropped connection, and removes it again (the
    connection is invalidated by then; the pool will not hand it out again).
    """

    @app.teardown_appcontext
    def _remove_session(exc: BaseException | None) -> None:
        _remove_session_quietly(db)


def _remove_session_quietly(db: _Database) -> None:
    """`release_sessions_quietly`'s teardown (a plain function, for mutmut)."""
    try:
        db.session.remove()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("database connection lost after the request: %s", error.orig.__class__.__name__)
        db.session.remove()
