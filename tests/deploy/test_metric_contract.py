"""Every metric and label a dashboard, alert or documented query uses is one the app exports.

A one-character difference between a query and the app's metric names is a dashboard that
shows "No data" forever, or an alert that can never fire. The exported names come from the
app itself: aura.instrumentation.definitions and the self-metrics of its multiprocess collector.
Every expression must also parse: promtool checks them all as recording rules.
"""

from __future__ import annotations

import pytest
import yaml

# Labels every scraped series carries: the target's job and instance, and namespace/pod from
# the relabeling in prometheus.yml (the Prometheus Operator's PodMonitor adds the same).
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
# Series Prometheus records about each scrape, not exported by the app.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}

# --- TEMPORARY (issue 13): remove once the application code for these metrics lands. ---------
# The Gunicorn and process metrics of issue 13's contract, which the service dashboard, the
# worker alerts and the HPA's prometheus-adapter rule already use while the app half of the
# issue is written. (family name, type, labels), exactly as the contract table gives them. They
# only fill in what the registry lacks: once the app exports a family, the registry's own
# definition is used and test_pending_series_match_the_app_once_exported holds it to this list.
PENDING_APP_FAMILIES = (
    ("gunicorn_workers", "gauge", set()),
    ("gunicorn_workers_busy", "gauge", set()),
    ("gunicorn_worker_busy_seconds", "counter", set()),
    ("gunicorn_listen_backlog", "gauge", set()),
    ("gunicorn_listen_backlog_limit", "gauge", set()),
    ("gunicorn_worker_exits", "counter", {"reason"}),
    ("http_request_queue_seconds", "histogram", set()),
    ("process_resident_memory_bytes", "gauge", set()),
    ("process_cpu_seconds", "counter", set()),
    ("process_open_fds", "gauge", set()),
    ("process_start_time_seconds", "gauge", set()),
    ("aura_worker_unique_memory_bytes_max", "gauge", set()),
    ("python_gc_collections", "counter", {"generation"}),
    ("aura_build_info", "gauge", {"version", "python", "gunicorn", "prometheus_client"}),
)
# --- end TEMPORARY ------------------------------------------------------------------------------


def sample_names(family_name: str, family_type: str, labels: set[str]) -> dict[str, set[str]]:
    """The series names a metric family exposes, with their labels."""
    if family_type == "counter":
        return {f"{family_name}_total": labels}
    if family_type == "histogram":
        return {f"{family_name}_bucket": labels | {"le"}, f"{family_name}_sum": labels,
                f"{family_name}_count": labels}
    if family_type == "gauge":
        return {family_name: labels}
    raise AssertionError(f"{family_name}: no rule for metric type {family_type}")


@pytest.fixture(scope="module")
def app_series(tmp_path_factory) -> dict[str, set[str]]:
    """Series name -> label names the app itself exports today (without target labels)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    from aura.instrumentation import definitions
    from aura.metrics import AuraMultiProcessCollector, prepare_directory

    series: dict[str, set[str]] = {}
    for metric in vars(definitions).values():
        if isinstance(metric, MetricWrapperBase):
            [family] = metric.describe()
            # _labelnames: prometheus-client keeps label names only there; it is pinned.
            series.update(sample_names(family.name, family.type, set(metric._labelnames)))
    # The collector's self-metrics (aura_metrics_*), read from an empty metrics directory.
    directory = tmp_path_factory.mktemp("metrics")
    prepare_directory(str(directory))
    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, str(directory))
    for family in registry.collect():
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        series.update(sample_names(family.name, family.type, labels))
    return series


def pending_series() -> dict[str, set[str]]:
    """The series of PENDING_APP_FAMILIES (TEMPORARY, issue 13)."""
    series: dict[str, set[str]] = {}
    for family, kind, labels in PENDING_APP_FAMILIES:
        series.update(sample_names(family, kind, labels))
    return series


@pytest.fixture(scope="module")
def exported(app_series) -> dict[str, set[str]]:
    """Series name -> label names, for everything a scrape of an Aura pod can return."""
    series = dict(app_series)
    for name, labels in pending_series().items():  # TEMPORARY (issue 13)
        series.setdefault(name, labels)
    for name in PROMETHEUS_SERIES:
        series[name] = set()
    return {name: labels | TARGET_LABELS for name, labels in series.items()}


def test_pending_series_match_the_app_once_exported(app_series):
    """TEMPORARY (issue 13): what the app already exports of the pending list has its labels."""
    for name, labels in pending_series().items():
        if name in app_series:
            assert app_series[name] == labels, name


def test_the_registry_was_read(exported):
    """Guard against an empty registry making every check below pass."""
    assert {"auth_requests_total", "audit_violations_detected_bucket",
            "redis_connections_active", "aura_metrics_merge_duration_seconds_bucket"} <= set(exported)


def test_expressions_use_only_exported_metrics_and_labels(promql_expressions, exported, promql):
    problems = []
    for where, expr in promql_expressions:
        metrics, grouping = promql.references(expr)
        assert metrics, f"{where}: no metric found in {expr!r}"
        for name, labels in metrics.items():
            if name not in exported:
                problems.append(f"{where}: unknown metric {name}")
            elif labels - exported[name]:
                problems.append(f"{where}: {name} has no label {sorted(labels - exported[name])}")
        known = set().union(*(exported.get(name, set()) for name in metrics))
        if grouping - known:
            problems.append(f"{where}: grouping by unknown label(s) {sorted(grouping - known)}")
    assert not problems, "\n".join(problems)


def test_every_expression_parses(promql_expressions, promql, run_promtool, tmp_path):
    """promtool parses rule files: each expression becomes a recording rule."""
    rules = [{"record": f"aura:promql_check:{i}", "expr": promql.for_promtool(expr)}
             for i, (_, expr) in enumerate(promql_expressions)]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert f"{len(rules)} rules found" in result.stdout


def test_the_checker_finds_what_it_must(promql):
    """The lexer behind the checks above, on the shapes of expression this repository uses."""
    metrics, grouping = promql.references(
        'histogram_quantile(0.95, sum by (le, workflow_type) '
        '(rate(workflow_duration_seconds_bucket{workflow_type!~"a|b", job="aura"}[$__rate_interval])))')
    assert metrics == {"workflow_duration_seconds_bucket": {"workflow_type", "job"}}
    assert grouping == {"le", "workflow_type"}
    metrics, _ = promql.references('sum(rate(a_total{s="x"}[5m])) / sum(rate(a_total[5m])) * 100 > bool 2')
    assert metrics == {"a_total": {"s"}}
    with pytest.raises(ValueError):
        promql.references("rate(a_total[5m] offset 1h)")
