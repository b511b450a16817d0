"""Every metric Aura exports, with the names, types and labels of the monitoring spec.

This is the only module that constructs metrics. With PROMETHEUS_MULTIPROC_DIR set, their values
are stored by ``aura.metrics`` (files in Gunicorn workers, memory elsewhere), installed here
before the first metric is made, whatever imported prometheus_client first.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from aura.config import metrics_directory
from aura.metrics import install_value_class
from aura.metrics.inflight import BUSY_HELP, BUSY_NAME, WORKERS_BUSY_HELP, WORKERS_BUSY_NAME

if metrics_directory():
    install_value_class()

# Buckets are chosen per value range so that P50/P95/P99 panels resolve where the data lies.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WORKFLOW_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
VIOLATION_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
FILES_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 30, 50)
EDIT_FREQUENCY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90)
ERROR_COUNT_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)

# --- Authentication -------------------------------------------------------------------------
AUTH_REQUESTS = Counter(
    "auth_requests_total",
    "Authentication requests by endpoint and outcome.",
    ["endpoint", "status"],
)
AUTH_TOKEN_REFRESHES = Counter("auth_token_refreshes_total", "Token refresh requests by outcome.", ["status"])
USER_REGISTRATIONS = Counter("user_registrations_total", "User registrations by outcome.", ["status"])
AUTH_FAILURES = Counter("auth_failures_total", "Authentication failures by reason.", ["reason"])
TOKENS_ISSUED = Counter("tokens_issued_total", "Tokens issued by type.", ["token_type"])
TOKENS_REVOKED = Counter("tokens_revoked_total", "Tokens revoked by type.", ["token_type"])

# --- Rate limiting --------------------------------------------------------------------------
RATE_LIMIT_HITS = Counter("rate_limit_hits_total", "Requests rejected by the rate limiter.", ["endpoint", "client_id"])
RATE_LIMIT_REQUESTS = Counter("rate_limit_requests_total", "Requests evaluated by the rate limiter.", ["endpoint"])

# --- Redis ------------------------------------------------------------------------------------
# livesum: each live worker reports its own pool; dead workers drop out of the sum.
REDIS_CONNECTIONS_ACTIVE = Gauge(
    "redis_connections_active",
    "Redis connections in use, summed over live workers.",
    ["database"],
    multiprocess_mode="livesum",
)
REDIS_CONNECTIONS_IDLE = Gauge(
    "redis_connections_idle",
    "Idle pooled Redis connections, summed over live workers.",
    ["database"],
    multiprocess_mode="livesum",
)
REDIS_CONNECTION_ERRORS = Counter(
    "redis_connection_errors_total",
    "Redis errors by logical database and kind.",
    ["database", "error_type"],
)

# --- HTTP -------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by method, matched route and status code.",
    ["method", "endpoint", "status_code"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method and matched route.",
    ["method", "endpoint"],
    buckets=HTTP_BUCKETS,
)

# --- Database ---------------------------------------------------------------------------------
DATABASE_CONNECTIONS_ACTIVE = Gauge(
    "database_connections_active",
    "Database connections checked out, summed over live workers.",
    multiprocess_mode="livesum",
)
DATABASE_CONNECTIONS_IDLE = Gauge(
    "database_connections_idle",
    "Database connections idle in the pool, summed over live workers.",
    multiprocess_mode="livesum",
)
DATABASE_QUERY_DURATION = Histogram(
    "database_query_duration_seconds",
    "SQL statement duration by operation.",
    ["operation"],
    buckets=DB_BUCKETS,
)

# --- LangGraph workflows ----------------------------------------------------------------------
WORKFLOW_EXECUTIONS = Counter(
    "workflow_executions_total",
    "Workflow executions by type and outcome.",
    ["workflow_type", "status"],
)
WORKFLOW_DURATION = Histogram(
    "workflow_duration_seconds",
    "Workflow execution duration by type.",
    ["workflow_type"],
    buckets=WORKFLOW_BUCKETS,
)
WORKFLOW_FAILURES = Counter(
    "workflow_failures_total",
    "Workflow failures by type and error kind.",
    ["workflow_type", "error_type"],
)
STRUGGLE_DETECTIONS = Counter("struggle_detections_total", "Struggle detection outcomes.", ["result"])
LESSON_RECOMMENDATIONS = Counter("lesson_recommendations_generated_total", "Lesson recommendations generated.")
STRUGGLE_EDIT_FREQUENCY = Histogram(
    "struggle_workflow_edit_frequency",
    "Edit frequency (edits per minute) submitted to struggle detection.",
    buckets=EDIT_FREQUENCY_BUCKETS,
)
STRUGGLE_ERROR_COUNT = Histogram(
    "struggle_workflow_error_count",
    "Error count submitted to struggle detection.",
    buckets=ERROR_COUNT_BUCKETS,
)
AUDIT_EXECUTIONS = Counter("audit_executions_total", "Code audit results by status.", ["status"])
AUDIT_VIOLATIONS_DETECTED = Histogram(
    "audit_violations_detected", "Violations found per audit.", buckets=VIOLATION_BUCKETS
)
AUDIT_VIOLATIONS_BY_TYPE = Counter("audit_violations_by_type_total", "Violations found, by type.", ["violation_type"])
AUDIT_FILES_PROCESSED = Histogram("audit_files_processed", "Files processed per audit.", buckets=FILES_BUCKETS)

# --- Gunicorn saturation (recorded by the HTTP middleware; the rest of the gunicorn_* and
# process_* series are read at scrape time by aura.metrics.instance) ---------------------------
QUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Under Gunicorn both are read from each worker's in-flight file, where busy time accrues while
# requests run (names and help are the core's, so both write the same series).
WORKERS_BUSY = Gauge(WORKERS_BUSY_NAME, WORKERS_BUSY_HELP, multiprocess_mode="livesum")
WORKER_BUSY_SECONDS = Counter(BUSY_NAME, BUSY_HELP)
HTTP_REQUEST_QUEUE = Histogram(
    "http_request_queue_seconds",
    "Time from the proxy's X-Request-Start to a worker starting the request.",
    buckets=QUEUE_BUCKETS,
)
BUILD_INFO = Gauge(
    "aura_build_info",
    "Versions of Aura and of what it runs on (value 1).",
    ["version", "python", "gunicorn", "prometheus_client"],
    multiprocess_mode="livemax",
)
