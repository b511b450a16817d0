"""The recorder records each event into the spec's metric, with its labels and amounts.

Each test records through a ``PrometheusRecorder`` over copies of ``definitions``' metrics in a
private registry (same names, labels, buckets and modes), so that nothing else in the process
(pool samplers, other tests' requests) moves what it reads, and a known series' absence means
what it says.
"""

from __future__ import annotations

import itertools
import json
import platform
from importlib import metadata
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from aura.errors import AUTH_FAILURE_REASONS
from aura.instrumentation import definitions
from aura.instrumentation.recorder import PrometheusRecorder, Recorder, _encoded, build_labels
from aura.metrics import inflight
from aura.workflows import AUDIT_STATUSES, RULE_TYPES, STRUGGLE_LABELS


def _copy(metric, registry):
    [family] = metric.describe()
    name, doc, labels = metric._name, family.documentation, list(metric._labelnames)
    if isinstance(metric, Counter):
        return Counter(name, doc, labels, registry=registry)
    if isinstance(metric, Histogram):
        return Histogram(name, doc, labels, registry=registry, buckets=metric._upper_bounds)
    assert isinstance(metric, Gauge)
    return Gauge(name, doc, labels, registry=registry, multiprocess_mode=metric._multiprocess_mode)


def _recorder():
    """A recorder over private copies of every metric of ``definitions``, and their registry."""
    registry = CollectorRegistry()
    copies = {a: _copy(m, registry) for a, m in vars(definitions).items() if isinstance(m, MetricWrapperBase)}
    return PrometheusRecorder(SimpleNamespace(**copies)), registry


@pytest.fixture
def metrics():
    """(recorder, registry): see ``_recorder``."""
    return _recorder()


def _samples(registry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _nonzero(registry) -> dict[str, float]:
    """`name{labels}` -> value, for every sample that is not 0."""
    return {
        name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}": value
        for (name, labels), value in _samples(registry).items()
        if value
    }


def _exemplars(registry) -> dict[str, dict[str, str]]:
    return {
        s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}": s.exemplar.labels
        for family in registry.collect()
        for s in family.samples
        if s.exemplar is not None
    }


@pytest.fixture
def no_inflight_file(monkeypatch):
    monkeypatch.setattr(inflight, "current", None)  # a process outside Gunicorn


@pytest.fixture
def inflight_file(tmp_path, monkeypatch):
    """This process as a Gunicorn worker with its in-flight file (restored afterwards)."""
    file = inflight.InflightFile(str(tmp_path), "w1", 4)
    monkeypatch.setattr(inflight, "current", file)
    return file


def test_auth_events_count_their_outcome(metrics):
    rec, registry = metrics
    rec.auth_request("login", True)
    rec.auth_request("register", False)
    rec.auth_request("register", False)
    rec.auth_failure("invalid_credentials")
    rec.token_refresh(True)
    rec.token_refresh(False)
    rec.registration(True)
    rec.registration(False)
    rec.token_issued("access")
    rec.token_revoked("refresh")
    assert _nonzero(registry) == {
        "auth_requests_total{endpoint=login,status=success}": 1,
        "auth_requests_total{endpoint=register,status=failure}": 2,
        "auth_failures_total{reason=invalid_credentials}": 1,
        "auth_token_refreshes_total{status=success}": 1,
        "auth_token_refreshes_total{status=failure}": 1,
        "user_registrations_total{status=success}": 1,
        "user_registrations_total{status=failure}": 1,
        "tokens_issued_total{token_type=access}": 1,
        "tokens_revoked_total{token_type=refresh}": 1,
    }


def test_redis_and_database_events(metrics):
    rec, registry = metrics
    rec.redis_error("auth_db", "timeout")
    rec.redis_pool("rate_limit_db", 3, 5)
    rec.redis_pool("rate_limit_db", 2, 7)  # a gauge: the last sample stands
    rec.database_pool(4, 6)
    rec.database_query("select", 0.003)
    assert _nonzero(registry) == {
        "redis_connection_errors_total{database=auth_db,error_type=timeout}": 1,
        "redis_connections_active{database=rate_limit_db}": 2,
        "redis_connections_idle{database=rate_limit_db}": 7,
        "database_connections_active{}": 4,
        "database_connections_idle{}": 6,
        "database_query_duration_seconds_bucket{le=0.005,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.01,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.025,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.05,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.1,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.25,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=0.5,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=1.0,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=2.5,operation=select}": 1,
        "database_query_duration_seconds_bucket{le=+Inf,operation=select}": 1,
        "database_query_duration_seconds_count{operation=select}": 1,
        "database_query_duration_seconds_sum{operation=select}": 0.003,
    }


def test_rate_limit_hits_need_the_client_id_bound_first(metrics):
    rec, registry = metrics
    rec.rate_limit_request("/api/v1/auth/login")
    with pytest.raises(RuntimeError, match="bound_client_ids"):
        rec.rate_limit_hit("/api/v1/auth/login", "10.0.0.1")
    rec.bound_client_ids(2, "")  # no directory: the cap holds in this process
    for client in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"):
        rec.rate_limit_hit("/api/v1/auth/login", client)
    assert _nonzero(registry) == {
        "rate_limit_requests_total{endpoint=/api/v1/auth/login}": 1,
        "rate_limit_hits_total{client_id=10.0.0.1,endpoint=/api/v1/auth/login}": 2,
        "rate_limit_hits_total{client_id=10.0.0.2,endpoint=/api/v1/auth/login}": 1,
        "rate_limit_hits_total{client_id=other,endpoint=/api/v1/auth/login}": 1,
    }


def test_a_metrics_directory_shares_the_client_id_cap_between_processes(metrics, tmp_path):
    rec, registry = metrics
    other_worker = PrometheusRecorder(rec.d)  # another worker of the instance
    rec.bound_client_ids(1, str(tmp_path))
    other_worker.bound_client_ids(1, str(tmp_path))
    other_worker.rate_limit_hit("/x", "10.0.0.9")  # takes the instance's only client id
    rec.rate_limit_hit("/x", "10.0.0.1")
    assert _nonzero(registry) == {
        "rate_limit_hits_total{client_id=10.0.0.9,endpoint=/x}": 1,
        "rate_limit_hits_total{client_id=other,endpoint=/x}": 1,
    }


def test_workflow_events(metrics):
    rec, registry = metrics
    rec.workflow_execution("audit", False, 0.02)
    rec.workflow_failure("audit", "execution_error")
    samples = _nonzero(registry)
    assert samples["workflow_executions_total{status=failure,workflow_type=audit}"] == 1
    assert samples["workflow_failures_total{error_type=execution_error,workflow_type=audit}"] == 1
    assert samples["workflow_duration_seconds_sum{workflow_type=audit}"] == 0.02
    assert samples["workflow_duration_seconds_bucket{le=0.025,workflow_type=audit}"] == 1
    assert "workflow_duration_seconds_bucket{le=0.01,workflow_type=audit}" not in samples
    rec.workflow_execution("audit", True, 0.5)
    assert _nonzero(registry)["workflow_executions_total{status=success,workflow_type=audit}"] == 1


def test_struggle_results(metrics):
    rec, registry = metrics
    rec.struggle_result("struggling", 12.0, 4, 3)
    rec.struggle_result("not_struggling", 0.5, 0, 0)
    samples = _nonzero(registry)
    assert {k: v for k, v in samples.items() if not k.startswith("struggle_workflow")} == {
        "struggle_detections_total{result=struggling}": 1,
        "struggle_detections_total{result=not_struggling}": 1,
        "lesson_recommendations_generated_total{}": 3,
    }
    assert samples["struggle_workflow_edit_frequency_sum{}"] == 12.5
    assert samples["struggle_workflow_edit_frequency_count{}"] == 2
    assert samples["struggle_workflow_edit_frequency_bucket{le=0.5}"] == 1
    assert samples["struggle_workflow_error_count_sum{}"] == 4
    assert samples["struggle_workflow_error_count_bucket{le=0.0}"] == 1
    assert samples["struggle_workflow_error_count_bucket{le=5.0}"] == 2


def test_audit_results(metrics):
    rec, registry = metrics
    rec.audit_result("failed", ["sql_injection", "hardcoded_secret", "sql_injection"], 7)
    samples = _nonzero(registry)
    assert {k: v for k, v in samples.items() if not k.startswith("audit_violations_detected")} == {
        "audit_executions_total{status=failed}": 1,
        "audit_violations_by_type_total{violation_type=sql_injection}": 2,
        "audit_violations_by_type_total{violation_type=hardcoded_secret}": 1,
        "audit_files_processed_sum{}": 7,
        "audit_files_processed_count{}": 1,
        "audit_files_processed_bucket{le=10.0}": 1,
        "audit_files_processed_bucket{le=20.0}": 1,
        "audit_files_processed_bucket{le=30.0}": 1,
        "audit_files_processed_bucket{le=50.0}": 1,
        "audit_files_processed_bucket{le=+Inf}": 1,
    }
    assert samples["audit_violations_detected_sum{}"] == 3
    assert "audit_violations_detected_bucket{le=2.0}" not in samples
    assert samples["audit_violations_detected_bucket{le=3.0}"] == 1


def test_queue_time(metrics):
    rec, registry = metrics
    rec.request_queued(0.004)
    samples = _nonzero(registry)
    assert samples["http_request_queue_seconds_sum{}"] == 0.004
    assert "http_request_queue_seconds_bucket{le=0.0025}" not in samples
    assert samples["http_request_queue_seconds_bucket{le=0.005}"] == 1


def test_a_request_outside_gunicorn_is_busy_time_of_the_process(metrics, no_inflight_file):
    rec, registry = metrics
    assert rec.request_started(100.0, "GET") == -1  # no in-flight slot
    assert _nonzero(registry) == {"gunicorn_workers_busy{}": 1}
    rec.request_routed(-1, "/api/v1/auth/login")  # nothing to name: no file
    rec.request_ended(-1, 0.2)
    rec.http_recorder("GET", "/api/v1/auth/login", "200")(0.2, "")
    samples = _nonzero(registry)
    assert "gunicorn_workers_busy{}" not in samples  # back to 0
    assert samples["gunicorn_worker_busy_seconds_total{}"] == 0.2
    assert samples["http_requests_total{endpoint=/api/v1/auth/login,method=GET,status_code=200}"] == 1
    assert samples["http_request_duration_seconds_sum{endpoint=/api/v1/auth/login,method=GET}"] == 0.2
    assert samples["http_request_duration_seconds_bucket{endpoint=/api/v1/auth/login,le=0.25,method=GET}"] == 1
    assert "http_request_duration_seconds_bucket{endpoint=/api/v1/auth/login,le=0.1,method=GET}" not in samples


def test_a_request_in_a_gunicorn_worker_is_kept_in_its_inflight_file(metrics, inflight_file):
    rec, registry = metrics
    first = rec.request_started(100.0, "GET")
    second = rec.request_started(100.5, "DELETE")
    assert (first, second) == (0, 1)
    rec.request_routed(second, "/api/v1/items/<int:item_id>")
    state = inflight.read(inflight_file.path)
    assert [row[1:] for row in state.slots[:2]] == [
        (100.0, "GET", ""),
        (100.5, "DELETE", "/api/v1/items/<int:item_id>"),
    ]
    assert state.running_now() == 2
    rec.request_ended(second, 0.25)
    state = inflight.read(inflight_file.path)
    assert state.running_now() == 1
    assert state.slots[1][0] == 0.25  # the slot's busy time, credited
    rec.http_recorder("DELETE", "/api/v1/items/<int:item_id>", "204")(0.25, "")
    samples = _nonzero(registry)
    # The busy gauge and time are the in-flight file's: the metrics are not touched.
    assert not any(name.startswith("gunicorn_") for name in samples)
    assert samples["http_requests_total{endpoint=/api/v1/items/<int:item_id>,method=DELETE,status_code=204}"] == 1


def test_an_endpoint_longer_than_the_inflight_field_is_left_unnamed(metrics, inflight_file):
    rec, _ = metrics
    _encoded.cache_clear()  # encoded once per label: else an earlier run's result is read
    fits, too_long = "/f" + "i" * 110, "/t" + "o" * 111  # 112 and 113 bytes, names no other test uses
    slots = [rec.request_started(1.0, "GET"), rec.request_started(2.0, "GET")]
    rec.request_routed(slots[0], fits)
    rec.request_routed(slots[1], too_long)
    endpoints = [row[3] for row in inflight.read(inflight_file.path).slots[:2]]
    assert endpoints == [fits, ""]


def test_only_a_server_error_is_its_count_s_exemplar(metrics, no_inflight_file):
    rec, registry = metrics
    for status in ("500", "200", "404"):
        rec.request_started(0.0, "GET")
        rec.http_recorder("GET", "/x", status)(0.03, f"trace-{status}")
    exemplars = _exemplars(registry)
    assert exemplars["http_requests_total{endpoint=/x,method=GET,status_code=500}"] == {"trace_id": "trace-500"}
    assert not any(key.startswith("http_requests_total") and "500" not in key for key in exemplars)
    assert exemplars["http_request_duration_seconds_bucket{endpoint=/x,le=0.05,method=GET}"] == {
        "trace_id": "trace-404"
    }


def _row(row):
    typ, (key, amount, timestamp) = row
    family, sample, labels, _doc = json.loads(key)
    return typ, family, sample, labels, amount, timestamp


def test_a_request_a_dead_worker_took_with_it(metrics):
    rec, _ = metrics
    assert [_row(r) for r in rec.lost_request_rows("POST", "/api/v1/auth/login", "502", 0.3)] == [
        (
            "counter",
            "http_requests",
            "http_requests_total",
            {"method": "POST", "endpoint": "/api/v1/auth/login", "status_code": "502"},
            1.0,
            0.0,
        ),
        (
            "histogram",
            "http_request_duration_seconds",
            "http_request_duration_seconds_sum",
            {"method": "POST", "endpoint": "/api/v1/auth/login"},
            0.3,
            0.0,
        ),
        (
            "histogram",
            "http_request_duration_seconds",
            "http_request_duration_seconds_bucket",
            {"method": "POST", "endpoint": "/api/v1/auth/login", "le": "0.5"},
            1.0,
            0.0,
        ),
    ]
    # Before it was routed (no endpoint) and with a method the file could not hold.
    labels = [_row(r)[3] for r in rec.lost_request_rows("", "", "502", 0.3)]
    assert labels == [
        {"method": "OTHER", "endpoint": "unmatched", "status_code": "502"},
        {"method": "OTHER", "endpoint": "unmatched"},
        {"method": "OTHER", "endpoint": "unmatched", "le": "0.5"},
    ]


def test_known_series_start_at_zero(metrics):
    rec, registry = metrics
    rec.initialize_known_series(["audit", "struggle"])
    samples = _samples(registry)
    nonzero = {key: value for key, value in samples.items() if value}
    assert [name for name, _ in nonzero] == ["aura_build_info"]
    labelled = {}
    for name, labels in samples:
        labels = dict(labels)
        labels.pop("le", None)
        if labels and name != "aura_build_info":
            labelled.setdefault(name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count"), set()).add(
                tuple(sorted(labels.items()))
            )
    statuses = ("success", "failure")
    workflows = ("audit", "struggle")

    def series(**values):
        keys = sorted(values)
        return {
            tuple(zip(keys, combination, strict=True)) for combination in itertools.product(*(values[k] for k in keys))
        }

    assert labelled == {
        "auth_requests_total": series(endpoint=("register", "login", "refresh", "logout"), status=statuses),
        "auth_token_refreshes_total": series(status=statuses),
        "user_registrations_total": series(status=statuses),
        "auth_failures_total": series(reason=AUTH_FAILURE_REASONS),
        "tokens_issued_total": series(token_type=("access", "refresh")),
        "tokens_revoked_total": series(token_type=("access", "refresh")),
        "redis_connection_errors_total": series(
            database=("auth_db", "rate_limit_db"), error_type=("connection_failed", "timeout", "other")
        ),
        "database_query_duration_seconds": series(operation=("select", "insert", "update", "delete", "other")),
        "workflow_duration_seconds": series(workflow_type=workflows),
        "workflow_executions_total": series(workflow_type=workflows, status=statuses),
        "workflow_failures_total": series(
            workflow_type=workflows, error_type=("execution_error", "service_unavailable")
        ),
        "struggle_detections_total": series(result=STRUGGLE_LABELS),
        "audit_executions_total": series(status=AUDIT_STATUSES),
        "audit_violations_by_type_total": series(violation_type=RULE_TYPES),
    }
    [(build_info, value)] = [(dict(k[1]), v) for k, v in samples.items() if k[0] == "aura_build_info"]
    assert value == 1
    assert build_info == dict(zip(("version", "python", "gunicorn", "prometheus_client"), build_labels(), strict=True))


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def test_build_labels_are_the_installed_versions():
    assert build_labels() == (
        _installed("aura"),  # "unknown" when run from a checkout
        platform.python_version(),
        metadata.version("gunicorn"),
        metadata.version("prometheus-client"),
    )


def test_worker_start_callbacks_run_now_outside_gunicorn(metrics):
    rec, _ = metrics
    for recorder in (rec, Recorder()):
        ran = []
        recorder.on_worker_start(lambda ran=ran: ran.append(1))
        assert ran == [1]


def test_the_null_recorder_records_nothing():
    null = Recorder()
    assert null.request_started(1.0, "GET") == -1
    assert null.lost_request_rows("GET", "/x", "502", 0.1) == []
    assert null.http_recorder("GET", "/x", "500")(0.1, "trace") is None


def test_without_the_internals_the_busy_gauge_is_used_through_its_public_methods(monkeypatch, no_inflight_file):
    from aura.metrics import _compat

    # An unsupported prometheus-client: no value objects to write to (stored_values is empty).
    monkeypatch.setattr(_compat, "problem", lambda version=None: "prometheus-client 9.9 is not supported")
    rec, registry = _recorder()
    assert rec.request_started(0.0, "GET") == -1
    assert _nonzero(registry) == {"gunicorn_workers_busy{}": 1}
    rec.http_recorder("GET", "/x", "200")(0.5, "")
    assert "gunicorn_workers_busy{}" not in _nonzero(registry)
