"""The one object Aura records through: ``recorder.<event>(...)``, never label sets.

``Recorder`` is the interface and records nothing: it is what runs when prometheus-client is
not installed (the spec's graceful degradation; ``/metrics`` then answers 404).
``PrometheusRecorder`` overrides every method with the real recording over ``definitions``.
Label children are bound once and cached: ``labels()`` costs a lock and a dict lookup per call,
which matters on the per-request path.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Any

from aura.errors import AUTH_FAILURE_REASONS
from aura.instrumentation.environ import UNMATCHED
from aura.workflows import AUDIT_STATUSES, RULE_TYPES, STRUGGLE_LABELS  # the workflows' own label values

try:  # prometheus-client is optional: without it, the base Recorder records nothing
    from aura.instrumentation import definitions
    from aura.metrics import SharedLabelValues, inflight, request_recorder, sample_rows
    from aura.metrics.processes import on_worker_start
    from aura.metrics.values import stored_values
except ImportError as exc:
    if not (exc.name or "").startswith("prometheus_client"):
        raise
    definitions = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from aura.metrics.archive import Row

OVERFLOW_CLIENT_ID = "other"
OTHER_METHOD = "OTHER"  # the method label of non-standard methods (aura.instrumentation.http)


def _ignore(_seconds: float, _trace_id: str = "") -> None:
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

    def bound_client_ids(self, cap: int, directory: str) -> None:
        """Cap the distinct ``client_id`` values per instance (``RATE_LIMIT_MAX_CLIENT_IDS``).

        ``directory`` is the instance's metrics directory, where the admitted values are shared
        ("": none, the cap holds per process).
        """

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

    def http_recorder(self, method: str, endpoint: str, status_code: str) -> Callable[[float, str], None]:
        """A function ``(seconds, trace_id)`` that counts and times one request of this (already
        bounded) label set, keeping it as its duration bucket's exemplar (and, for a 5xx, its count's).

        It also ends the ``request_started`` busy mark (and, in a process without an in-flight
        file, adds the duration to the workers' busy time).
        """
        return _ignore

    def request_started(self, start: float, method: str) -> int:
        """Mark a worker (thread) busy with a request that started at ``start`` (``perf_counter``).

        Returns its in-flight slot (-1: none), for ``request_routed`` and ``request_ended``.
        """
        return -1

    def request_routed(self, slot: int, endpoint: str) -> None:
        """Name the running request's endpoint in its in-flight slot."""

    def request_ended(self, slot: int, seconds: float) -> None:
        """Credit a request's busy time and free its in-flight slot (then record it: ``http_recorder``)."""

    def lost_request_rows(self, method: str, endpoint: str, status_code: str, seconds: float) -> list[tuple[str, Row]]:
        """What recording a request a dead worker took with it adds to the metric files (the master's)."""
        return []

    def request_queued(self, seconds: float) -> None:
        """Observe how long a request waited between the proxy and a worker."""

    def workflow_execution(self, workflow_type: str, ok: bool, seconds: float) -> None:
        """Count and time a workflow run: workflow_type is a served workflow's name."""

    def workflow_failure(self, workflow_type: str, error_type: str) -> None:
        """Count a workflow failure: error_type execution_error|service_unavailable."""

    def struggle_result(self, result: str, edit_frequency: float, error_count: int, recommendations: int) -> None:
        """Record what one struggle detection saw and decided."""

    def audit_result(self, status: str, violation_types: list[str], files_processed: int) -> None:
        """Record what one code audit found."""

    def on_worker_start(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in each process that serves requests, once it has the app (now, unless a
        pre-fork server said it will start workers: then in each worker as it starts)."""
        callback()

    def initialize_known_series(self, workflow_types: Iterable[str]) -> None:
        """Create every series whose label values are a small fixed set, at zero, in this process
        (`workflow_types`: the served workflows' names)."""


@cache
def _encoded(label: str) -> bytes:
    # Bounded like the labels: methods and matched rules.
    return _encode(label)


def _encode(label: str) -> bytes:
    # Longer than its field: unmatched. (Not in the cached function: mutmut skips decorated ones.)
    data = label.encode()
    return data if len(data) <= 112 else b""


@cache
def _child(metric: Any, *labels: str) -> Any:
    # Bounded: every caller passes labels from a fixed set, or bounded ones (client_id).
    return metric.labels(*labels)


class PrometheusRecorder(Recorder):
    """Records into the metrics of ``definitions`` (prometheus_client)."""

    enabled = True

    def __init__(self, definitions: Any):
        self.d = definitions
        self.client_ids: Any = None
        self._request_recorder = request_recorder
        self._inflight = inflight  # its ``current`` file is opened in each worker after fork
        busy = stored_values(definitions.WORKERS_BUSY)  # its value object: one lock, one write
        self._busy = busy[0] if busy else definitions.WORKERS_BUSY  # stock values: the gauge

    def bound_client_ids(self, cap: int, directory: str) -> None:
        self.client_ids = SharedLabelValues("client_id", cap, directory or None, overflow=OVERFLOW_CLIENT_ID)

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

    def http_recorder(self, method: str, endpoint: str, status_code: str) -> Callable[[float, str], None]:
        # With an in-flight file (a Gunicorn worker) the busy gauge and time are read from it.
        return self._request_recorder(
            _child(self.d.HTTP_REQUESTS, method, endpoint, status_code),
            _child(self.d.HTTP_REQUEST_DURATION, method, endpoint),
            *((self.d.WORKER_BUSY_SECONDS, self.d.WORKERS_BUSY) if self._inflight.current is None else ()),
            counter_exemplars=status_code.startswith("5"),
        )

    def request_started(self, start: float, method: str) -> int:
        file = self._inflight.current
        if file is None:
            self._busy.inc(1.0)
            return -1
        return file.begin(start, _encoded(method))

    def request_routed(self, slot: int, endpoint: str) -> None:
        file = self._inflight.current
        if file is not None:
            file.route(slot, _encoded(endpoint))  # a slot of -1 (every slot taken) is ignored there

    def request_ended(self, slot: int, seconds: float) -> None:
        file = self._inflight.current
        if file is not None:
            file.end(slot, seconds)

    def lost_request_rows(self, method: str, endpoint: str, status_code: str, seconds: float) -> list[tuple[str, Row]]:
        endpoint = endpoint or UNMATCHED
        return [
            *sample_rows(self.d.HTTP_REQUESTS, (method or OTHER_METHOD, endpoint, status_code), 1.0),
            *sample_rows(self.d.HTTP_REQUEST_DURATION, (method or OTHER_METHOD, endpoint), seconds),
        ]

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

    def on_worker_start(self, callback: Callable[[], None]) -> None:
        on_worker_start(callback)  # the metrics core's: Gunicorn's post_worker_init runs it

    def initialize_known_series(self, workflow_types: Iterable[str]) -> None:
        # Dashboards and alerts then see 0 instead of "no data" before the first event, and
        # rate() has a starting point. A value created before a fork (GUNICORN_PRELOAD) writes
        # to this process's files only once touched: adding 0 moves it there, changing nothing.
        for child in self._known_children(tuple(workflow_types)):
            for value in stored_values(child):
                value.inc(0)
        self.d.BUILD_INFO.labels(*build_labels()).set(1)

    def _known_children(self, workflow_types: tuple[str, ...]) -> Iterator[Any]:
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
        for workflow_type in workflow_types:
            yield _child(d.WORKFLOW_DURATION, workflow_type)
            for ok in status:
                yield _child(d.WORKFLOW_EXECUTIONS, workflow_type, ok)
            for error_type in ("execution_error", "service_unavailable"):
                yield _child(d.WORKFLOW_FAILURES, workflow_type, error_type)
        for result in STRUGGLE_LABELS:
            yield _child(d.STRUGGLE_DETECTIONS, result)
        for audit_status in AUDIT_STATUSES:
            yield _child(d.AUDIT_EXECUTIONS, audit_status)
        for violation_type in RULE_TYPES:
            yield _child(d.AUDIT_VIOLATIONS_BY_TYPE, violation_type)


recorder: Recorder = Recorder() if definitions is None else PrometheusRecorder(definitions)
