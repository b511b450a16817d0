"""Small recording functions over the metrics in `definitions` (public as `aura.metrics.*`).

Code elsewhere records through these functions and never touches label sets itself. When
prometheus-client is not installed, `ENABLED` is False, every function is a no-op and
`/metrics` answers 404 (the spec's graceful degradation).

Label children are bound once and cached: `labels()` costs a lock and a dict lookup per call,
which matters on the per-request path.
"""

from __future__ import annotations

import logging
from functools import cache

log = logging.getLogger("aura.metrics")

try:
    from aura.metrics import definitions as _d
except ImportError:  # prometheus-client not installed
    _d = None  # type: ignore[assignment]

ENABLED = _d is not None


AUTH_FAILURE_REASONS = ("invalid_credentials", "inactive_user", "invalid_token", "expired_token",
                        "revoked_token", "missing_token")
VIOLATION_TYPES = ("print_statement", "debugger_call", "long_function", "hardcoded_secret",
                   "bare_except", "eval_exec", "syntax_error")


def _status(ok: bool) -> str:
    return "success" if ok else "failure"


if ENABLED:

    @cache
    def _child(metric, *labels: str):
        # Bounded: every caller passes labels from a fixed set (see each function).
        return metric.labels(*labels)

    def auth_request(endpoint: str, ok: bool) -> None:
        """Count an auth endpoint call: endpoint in register|login|refresh|logout."""
        _child(_d.AUTH_REQUESTS, endpoint, _status(ok)).inc()

    def auth_failure(reason: str) -> None:
        """Count an authentication failure by reason (a fixed set, see docs/metrics.md)."""
        _child(_d.AUTH_FAILURES, reason).inc()

    def token_refresh(ok: bool) -> None:
        """Count a token refresh request by outcome."""
        _child(_d.AUTH_TOKEN_REFRESHES, _status(ok)).inc()

    def registration(ok: bool) -> None:
        """Count a user registration by outcome."""
        _child(_d.USER_REGISTRATIONS, _status(ok)).inc()

    def token_issued(token_type: str) -> None:
        """Count a token issued: access or refresh."""
        _child(_d.TOKENS_ISSUED, token_type).inc()

    def token_revoked(token_type: str) -> None:
        """Count a token revoked: access or refresh."""
        _child(_d.TOKENS_REVOKED, token_type).inc()

    def redis_error(database: str, error_type: str) -> None:
        """Count a Redis error: database auth_db|rate_limit_db, error_type a fixed set."""
        _child(_d.REDIS_CONNECTION_ERRORS, database, error_type).inc()

    def redis_pool(database: str, active: int, idle: int) -> None:
        """Set this worker's Redis pool gauges for one logical database."""
        _child(_d.REDIS_CONNECTIONS_ACTIVE, database).set(active)
        _child(_d.REDIS_CONNECTIONS_IDLE, database).set(idle)

    def database_pool(active: int, idle: int) -> None:
        """Set this worker's SQL pool gauges."""
        _d.DATABASE_CONNECTIONS_ACTIVE.set(active)
        _d.DATABASE_CONNECTIONS_IDLE.set(idle)

    def database_query(operation: str, seconds: float) -> None:
        """Observe one SQL statement: operation select|insert|update|delete|other."""
        _child(_d.DATABASE_QUERY_DURATION, operation).observe(seconds)

    def rate_limit_request(endpoint: str) -> None:
        """Count a request the rate limiter evaluated."""
        _child(_d.RATE_LIMIT_REQUESTS, endpoint).inc()

    def rate_limit_hit(endpoint: str, client_id: str) -> None:
        """Count a request the rate limiter rejected (client_id already bounded by the caller)."""
        _child(_d.RATE_LIMIT_HITS, endpoint, client_id).inc()

    def http_recorder(method: str, endpoint: str, status_code: str):
        """A function that counts and times one request of this label set (children bound once).

        Labels are already folded by the caller (aura.metrics.http), so the set is bounded.
        """
        from aura.metrics.mmap_values import request_recorder

        return request_recorder(_child(_d.HTTP_REQUESTS, method, endpoint, status_code),
                                _child(_d.HTTP_REQUEST_DURATION, method, endpoint))

    def workflow_execution(workflow_type: str, ok: bool, seconds: float) -> None:
        """Count and time a workflow run: workflow_type struggle|audit."""
        _child(_d.WORKFLOW_EXECUTIONS, workflow_type, _status(ok)).inc()
        _child(_d.WORKFLOW_DURATION, workflow_type).observe(seconds)

    def workflow_failure(workflow_type: str, error_type: str) -> None:
        """Count a workflow failure: error_type execution_error|service_unavailable."""
        _child(_d.WORKFLOW_FAILURES, workflow_type, error_type).inc()

    def struggle_result(result: str, edit_frequency: float, error_count: int,
                        recommendations: int) -> None:
        """Record what one struggle detection saw and decided."""
        _child(_d.STRUGGLE_DETECTIONS, result).inc()
        _d.STRUGGLE_EDIT_FREQUENCY.observe(edit_frequency)
        _d.STRUGGLE_ERROR_COUNT.observe(error_count)
        if recommendations:
            _d.LESSON_RECOMMENDATIONS.inc(recommendations)

    def audit_result(status: str, violation_types: list[str], files_processed: int) -> None:
        """Record what one code audit found."""
        _child(_d.AUDIT_EXECUTIONS, status).inc()
        _d.AUDIT_VIOLATIONS_DETECTED.observe(len(violation_types))
        _d.AUDIT_FILES_PROCESSED.observe(files_processed)
        for violation_type in violation_types:
            _child(_d.AUDIT_VIOLATIONS_BY_TYPE, violation_type).inc()

    def _zero(child) -> None:
        # A value created before a fork (GUNICORN_PRELOAD) writes to this process's own files
        # only once it is touched; adding 0 moves it there without changing anything.
        for value in (getattr(child, "_value", None), getattr(child, "_sum", None),
                      *getattr(child, "_buckets", ())):
            if value is not None:
                value.inc(0)

    def initialize_known_series() -> None:
        """Create every series whose label values are a small fixed set, at zero, in this process.

        Dashboards and alerts then see 0 instead of "no data" before the first event, and
        `rate()` has a starting point for the first increment. Safe to call again (after fork).
        """
        for child in _known_children():
            _zero(child)

    def _known_children():
        """Every unlabelled metric, and every child of a metric whose labels come from a fixed set."""
        yield from (_d.LESSON_RECOMMENDATIONS, _d.STRUGGLE_EDIT_FREQUENCY, _d.STRUGGLE_ERROR_COUNT,
                    _d.AUDIT_VIOLATIONS_DETECTED, _d.AUDIT_FILES_PROCESSED,
                    _d.DATABASE_CONNECTIONS_ACTIVE, _d.DATABASE_CONNECTIONS_IDLE)
        status = ("success", "failure")
        for endpoint in ("register", "login", "refresh", "logout"):
            for ok in status:
                yield _child(_d.AUTH_REQUESTS, endpoint, ok)
        for ok in status:
            yield _child(_d.AUTH_TOKEN_REFRESHES, ok)
            yield _child(_d.USER_REGISTRATIONS, ok)
        for reason in AUTH_FAILURE_REASONS:
            yield _child(_d.AUTH_FAILURES, reason)
        for token_type in ("access", "refresh"):
            yield _child(_d.TOKENS_ISSUED, token_type)
            yield _child(_d.TOKENS_REVOKED, token_type)
        for database in ("auth_db", "rate_limit_db"):
            for error_type in ("connection_failed", "timeout", "other"):
                yield _child(_d.REDIS_CONNECTION_ERRORS, database, error_type)
        for operation in ("select", "insert", "update", "delete", "other"):
            yield _child(_d.DATABASE_QUERY_DURATION, operation)
        for workflow_type in ("struggle", "audit"):
            yield _child(_d.WORKFLOW_DURATION, workflow_type)
            for ok in status:
                yield _child(_d.WORKFLOW_EXECUTIONS, workflow_type, ok)
            for error_type in ("execution_error", "service_unavailable"):
                yield _child(_d.WORKFLOW_FAILURES, workflow_type, error_type)
        for result in ("struggling", "not_struggling"):
            yield _child(_d.STRUGGLE_DETECTIONS, result)
        for audit_status in ("pass", "fail", "remediation_required"):
            yield _child(_d.AUDIT_EXECUTIONS, audit_status)
        for violation_type in VIOLATION_TYPES:
            yield _child(_d.AUDIT_VIOLATIONS_BY_TYPE, violation_type)

else:

    def _noop(*_args, **_kwargs) -> None:
        """Metrics are disabled: record nothing."""

    auth_request = auth_failure = token_refresh = registration = _noop
    token_issued = token_revoked = redis_error = redis_pool = database_pool = _noop
    database_query = rate_limit_request = rate_limit_hit = _noop
    http_recorder = lambda *_args: _noop  # noqa: E731
    workflow_execution = workflow_failure = struggle_result = audit_result = _noop
    initialize_known_series = _noop
