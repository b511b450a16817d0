"""Database instrumentation: statement durations by operation, and the pool's gauges."""

from __future__ import annotations

from time import perf_counter

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from aura.instrumentation import recorder

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
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("aura_query_start", []).append(perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, parameters, context, executemany):
        started = conn.info["aura_query_start"].pop()
        recorder.database_query(operation_of(statement), perf_counter() - started)

    @event.listens_for(engine, "handle_error")
    def _failed(context):
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
    def _not_the_primary(context):
        if getattr(context.original_exception, "sqlstate", None) not in _NOT_THE_PRIMARY:
            return None
        context.is_disconnect = True
        error = context.sqlalchemy_exception
        return OperationalError(context.statement, context.parameters, context.original_exception) if error else None
