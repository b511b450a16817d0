"""Every metric of the spec exists with its exact name, type and label names."""

from __future__ import annotations

import pytest

# name -> (type, label names): transcribed from shared/spec/monitoring-and-metrics.md.
SPEC = {
    "auth_requests_total": ("counter", {"endpoint", "status"}),
    "auth_token_refreshes_total": ("counter", {"status"}),
    "user_registrations_total": ("counter", {"status"}),
    "auth_failures_total": ("counter", {"reason"}),
    "tokens_issued_total": ("counter", {"token_type"}),
    "tokens_revoked_total": ("counter", {"token_type"}),
    "rate_limit_hits_total": ("counter", {"endpoint", "client_id"}),
    "rate_limit_requests_total": ("counter", {"endpoint"}),
    "redis_connections_active": ("gauge", {"database"}),
    "redis_connections_idle": ("gauge", {"database"}),
    "redis_connection_errors_total": ("counter", {"database", "error_type"}),
    "http_requests_total": ("counter", {"method", "endpoint", "status_code"}),
    "http_request_duration_seconds": ("histogram", {"method", "endpoint"}),
    "database_connections_active": ("gauge", set()),
    "database_connections_idle": ("gauge", set()),
    "database_query_duration_seconds": ("histogram", {"operation"}),
    "workflow_executions_total": ("counter", {"workflow_type", "status"}),
    "workflow_duration_seconds": ("histogram", {"workflow_type"}),
    "workflow_failures_total": ("counter", {"workflow_type", "error_type"}),
    "struggle_detections_total": ("counter", {"result"}),
    "lesson_recommendations_generated_total": ("counter", set()),
    "struggle_workflow_edit_frequency": ("histogram", set()),
    "struggle_workflow_error_count": ("histogram", set()),
    "audit_executions_total": ("counter", {"status"}),
    "audit_violations_detected": ("histogram", set()),
    "audit_violations_by_type_total": ("counter", {"violation_type"}),
    "audit_files_processed": ("histogram", set()),
}
# The Gunicorn-saturation issue's contract, recorded per request by the middleware (the other
# gunicorn_* and process_* series are read at scrape time: tests/gunicorn/test_saturation.py).
SATURATION = {
    "gunicorn_workers_busy": ("gauge", set()),
    "gunicorn_worker_busy_seconds_total": ("counter", set()),
    "http_request_queue_seconds": ("histogram", set()),
    "aura_build_info": ("gauge", {"version", "python", "gunicorn", "prometheus_client"}),
}
CONTRACT = {**SPEC, **SATURATION}


def _defined():
    from aura.instrumentation import definitions

    out = {}
    for obj in vars(definitions).values():
        describe = getattr(obj, "describe", None)
        if describe and hasattr(obj, "_labelnames"):
            family = describe()[0]
            name = family.name + ("_total" if family.type == "counter" else "")
            out[name] = (family.type, set(obj._labelnames), obj)
    return out


def test_every_spec_metric_is_defined_and_nothing_else():
    assert set(_defined()) == set(CONTRACT)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_metric_type_and_labels(name):
    typ, labels, _ = _defined()[name]
    assert (typ, labels) == CONTRACT[name]


def test_live_gauges_use_a_mode_that_drops_dead_workers():
    for name, (typ, _labels, metric) in _defined().items():
        if typ == "gauge":  # build info is 1 in every live worker: the max, not the sum
            assert metric._multiprocess_mode == ("livemax" if name == "aura_build_info" else "livesum"), name


def test_exposed_names_match_the_spec_exactly(client):
    text = client.get("/metrics").get_data(as_text=True)
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert set(SPEC) <= names
