"""The one object Aura records through: ``recorder.<event>(...)``, never label sets.

``Recorder`` is the interface and records nothing: it is what runs when prometheus-client is
not installed (the spec's graceful degradation; ``/metrics`` then answers 404).
``PrometheusRecorder`` overrides every method with the real recording over ``definitions``.
Label children are bound once and cached: ``labels()`` costs a lock and a dict lookup per call,
which matters on the per-request path.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from functools import cache
from importlib import metadata
from typing import Any

AUTH_FAILURE_REASONS = (
    "invalid_credentials",
    "inactive_user",
    "invalid_token",
    "expired_token",
    "revoked_token",
    "missing_token",
)
VIOLATION_TYPES = (
    "print_statement",
    "debugger_call",
    "long_function",
    "hardcoded_secret",
    "bare_except",
    "eval_exec",
    "syntax_error",
)
OVERFLOW_CLIENT_ID = "other"


def _ignore(_seconds: float) -> None:
    """Record nothing."""


def build_labels() -> tuple[str, str, str, str]:
    """aura_build_info's label values: versions of Aura, Python, Gunicorn and prometheus-client."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return version("aura"), platform.python_version(), version("gunicorn"), version("prometheus-client")


def _status(ok: bool) -> str:
    return "success" if ok else "failure"


class Recorder:
    """Every event Aura records. This base records nothing: metrics are disabled."""

    enabled = False

    def bound_client_ids(self, cap: int) -> None:
        """Cap the distinct ``client_id`` values per instance (``RATE_LIMIT_MAX_CLIENT_IDS``)."""

    def auth_request(self, endpoint: str, ok: bool) -> None:
        """Count an auth endpoint call: endpoint in register|login|refresh|logout."""

    def auth_failure(self, reason: str) -> None:
        """Count an authentication failure by reason (AUTH_FAILURE_REASONS)."""

    def token_refresh(self, ok: bool) -> None:
        """Count a token refresh request by outcome."""

    def registration(self, ok: bool) -> None:
        """Count a user registration by outcome."""

    def token_issued(self, token_type: str) -> None:
        """Count a token issued: access or refresh."""

    def token_revoked(self, token_type: str) -> None:
        """Count a token revoked: access or refresh."""

    def redis_error(self, database: str, error_type: str) -> None:
        """Count a Redis error: database auth_db|rate_limit_db, error_type connection_failed|timeout|other."""

    def redis_pool(self, database: str, active: int, idle: int) -> None:
        """Set this worker's Redis pool gauges for one logical database."""

    def database_pool(self, active: int, idle: int) -> None:
        """Set this worker's SQL pool gauges."""

    def database_query(self, operation: str, seconds: float) -> None:
        """Observe one SQL statement: operation select|insert|update|delete|other."""

    def rate_limit_request(self, endpoint: str) -> None:
        """Count a request the rate limiter evaluated."""

    def rate_limit_hit(self, endpoint: str, client: str) -> None:
        """Count a request the rate limiter rejected; ``client`` is bounded here (bound_client_ids)."""

    def http_recorder(self, method: str, endpoint: str, status_code: str) -> Callable[[float], None]:
        """A function that counts and times one request of this (already bounded) label set.

        It also adds the duration to the workers' busy time and ends the ``request_started`` mark.
        """
        return _ignore

    def request_started(self) -> None:
        """Mark a worker (thread) busy with a request, until the request is recorded."""

    def request_queued(self, seconds: float) -> None:
        """Observe how long a request waited between the proxy and a worker."""

    def workflow_execution(self, workflow_type: str, ok: bool, seconds: float) -> None:
        """Count and time a workflow run: workflow_type struggle|audit."""

    def workflow_failure(self, workflow_type: str, error_type: str) -> None:
        """Count a workflow failure: error_type execution_error|service_unavailable."""

    def struggle_result(self, result: str, edit_frequency: float, error_count: int, recommendations: int) -> None:
        """Record what one struggle detection saw and decided."""

    def audit_result(self, status: str, violation_types: list[str], files_processed: int) -> None:
        """Record what one code audit found."""

    def initialize_known_series(self) -> None:
        """Create every series whose label values are a small fixed set, at zero, in this process."""


@cache
def _child(metric: Any, *labels: str) -> Any:
    # Bounded: every caller passes labels from a fixed set, or bounded ones (client_id).
    return metric.labels(*labels)


class PrometheusRecorder(Recorder):
    """Records into the metrics of ``definitions`` (prometheus_client)."""

    enabled = True

    def __init__(self, definitions: Any):
        # aura.metrics needs prometheus-client, which is optional: it is imported only by this
        # class, which exists only when `definitions` (prometheus-client) imported.
        from aura.metrics import request_recorder
        from aura.metrics.values import stored_values

        self.d = definitions
        self.client_ids: Any = None
        self._request_recorder = request_recorder
        self._busy = stored_values(definitions.WORKERS_BUSY)[0]  # its value object: one lock, one write

    def bound_client_ids(self, cap: int) -> None:
        from aura.metrics import SharedLabelValues

        self.client_ids = SharedLabelValues(
            "client_id", cap, os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None, overflow=OVERFLOW_CLIENT_ID
        )

    def auth_request(self, endpoint: str, ok: bool) -> None:
        _child(self.d.AUTH_REQUESTS, endpoint, _status(ok)).inc()

    def auth_failure(self, reason: str) -> None:
        _child(self.d.AUTH_FAILURES, reason).inc()

    def token_refresh(self, ok: bool) -> None:
        _child(self.d.AUTH_TOKEN_REFRESHES, _status(ok)).inc()

    def registration(self, ok: bool) -> None:
        _child(self.d.USER_REGISTRATIONS, _status(ok)).inc()

    def token_issued(self, token_type: str) -> None:
        _child(self.d.TOKENS_ISSUED, token_type).inc()

    def token_revoked(self, token_type: str) -> None:
        _child(self.d.TOKENS_REVOKED, token_type).inc()

    def redis_error(self, database: str, error_type: str) -> None:
        _child(self.d.REDIS_CONNECTION_ERRORS, database, error_type).inc()

    def redis_pool(self, database: str, active: int, idle: int) -> None:
        _child(self.d.REDIS_CONNECTIONS_ACTIVE, database).set(active)
        _child(self.d.REDIS_CONNECTIONS_IDLE, database).set(idle)

    def database_pool(self, active: int, idle: int) -> None:
        self.d.DATABASE_CONNECTIONS_ACTIVE.set(active)
        self.d.DATABASE_CONNECTIONS_IDLE.set(idle)

    def database_query(self, operation: str, seconds: float) -> None:
        _child(self.d.DATABASE_QUERY_DURATION, operation).observe(seconds)

    def rate_limit_request(self, endpoint: str) -> None:
        _child(self.d.RATE_LIMIT_REQUESTS, endpoint).inc()

    def rate_limit_hit(self, endpoint: str, client: str) -> None:
        if self.client_ids is None:
            raise RuntimeError("bound_client_ids() must be called before client ids are recorded")
        _child(self.d.RATE_LIMIT_HITS, endpoint, self.client_ids.label(client)).inc()

    def http_recorder(self, method: str, endpoint: str, status_code: str) -> Callable[[float], None]:
        return self._request_recorder(
            _child(self.d.HTTP_REQUESTS, method, endpoint, status_code),
            _child(self.d.HTTP_REQUEST_DURATION, method, endpoint),
            self.d.WORKER_BUSY_SECONDS,
            self.d.WORKERS_BUSY,
        )

    def request_started(self) -> None:
        self._busy.inc(1.0)

    def request_queued(self, seconds: float) -> None:
        self.d.HTTP_REQUEST_QUEUE.observe(seconds)

    def workflow_execution(self, workflow_type: str, ok: bool, seconds: float) -> None:
        _child(self.d.WORKFLOW_EXECUTIONS, workflow_type, _status(ok)).inc()
        _child(self.d.WORKFLOW_DURATION, workflow_type).observe(seconds)

    def workflow_failure(self, workflow_type: str, error_type: str) -> None:
        _child(self.d.WORKFLOW_FAILURES, workflow_type, error_type).inc()

    def struggle_result(self, result: str, edit_frequency: float, error_count: int, recommendations: int) -> None:
        _child(self.d.STRUGGLE_DETECTIONS, result).inc()
        self.d.STRUGGLE_EDIT_FREQUENCY.observe(edit_frequency)
        self.d.STRUGGLE_ERROR_COUNT.observe(error_count)
        if recommendations:
            self.d.LESSON_RECOMMENDATIONS.inc(recommendations)

    def audit_result(self, status: str, violation_types: list[str], files_processed: int) -> None:
        _child(self.d.AUDIT_EXECUTIONS, status).inc()
        self.d.AUDIT_VIOLATIONS_DETECTED.observe(len(violation_types))
        self.d.AUDIT_FILES_PROCESSED.observe(files_processed)
        for violation_type in violation_types:
            _child(self.d.AUDIT_VIOLATIONS_BY_TYPE, violation_type).inc()

    def initialize_known_series(self) -> None:
        # Dashboards and alerts then see 0 instead of "no data" before the first event, and
        # rate() has a starting point. A value created before a fork (GUNICORN_PRELOAD) writes
        # to this process's files only once touched: adding 0 moves it there, changing nothing.
        from aura.metrics.values import stored_values

        for child in self._known_children():
            for value in stored_values(child):
                value.inc(0)
        self.d.BUILD_INFO.labels(*build_labels()).set(1)

    def _known_children(self) -> Iterator[Any]:
        """Every unlabelled metric, and every child of a metric whose labels come from a fixed set."""
        d = self.d
        yield from (
            d.LESSON_RECOMMENDATIONS,
            d.STRUGGLE_EDIT_FREQUENCY,
            d.STRUGGLE_ERROR_COUNT,
            d.AUDIT_VIOLATIONS_DETECTED,
            d.AUDIT_FILES_PROCESSED,
            d.DATABASE_CONNECTIONS_ACTIVE,
            d.DATABASE_CONNECTIONS_IDLE,
            d.WORKERS_BUSY,
            d.WORKER_BUSY_SECONDS,
            d.HTTP_REQUEST_QUEUE,
        )
        status = ("success", "failure")
        for endpoint in ("register", "login", "refresh", "logout"):
            for ok in status:
                yield _child(d.AUTH_REQUESTS, endpoint, ok)
        for ok in status:
            yield _child(d.AUTH_TOKEN_REFRESHES, ok)
            yield _child(d.USER_REGISTRATIONS, ok)
        for reason in AUTH_FAILURE_REASONS:
            yield _child(d.AUTH_FAILURES, reason)
        for token_type in ("access", "refresh"):
            yield _child(d.TOKENS_ISSUED, token_type)
            yield _child(d.TOKENS_REVOKED, token_type)
        for database in ("auth_db", "rate_limit_db"):
            for error_type in ("connection_failed", "timeout", "other"):
                yield _child(d.REDIS_CONNECTION_ERRORS, database, error_type)
        for operation in ("select", "insert", "update", "delete", "other"):
            yield _child(d.DATABASE_QUERY_DURATION, operation)
        for workflow_type in ("struggle", "audit"):
            yield _child(d.WORKFLOW_DURATION, workflow_type)
            for ok in status:
                yield _child(d.WORKFLOW_EXECUTIONS, workflow_type, ok)
            for error_type in ("execution_error", "service_unavailable"):
                yield _child(d.WORKFLOW_FAILURES, workflow_type, error_type)
        for result in ("struggling", "not_struggling"):
            yield _child(d.STRUGGLE_DETECTIONS, result)
        for audit_status in ("pass", "fail", "remediation_required"):
            yield _child(d.AUDIT_EXECUTIONS, audit_status)
        for violation_type in VIOLATION_TYPES:
            yield _child(d.AUDIT_VIOLATIONS_BY_TYPE, violation_type)


def _make_recorder() -> Recorder:
    try:
        from aura.instrumentation import definitions
    except ImportError as exc:  # prometheus-client is not installed
        if not (exc.name or "").startswith("prometheus_client"):
            raise
        return Recorder()
    return PrometheusRecorder(definitions)


recorder: Recorder = _make_recorder()
