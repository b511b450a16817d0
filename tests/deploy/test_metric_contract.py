"""Every metric and label a dashboard, alert or documented query uses is one the app exports.

A one-character difference between a query and the app's metric names is a dashboard that
shows "No data" forever, or an alert that can never fire. The exported names come from the
app itself: aura.instrumentation.definitions and the self-metrics of its multiprocess collector.
Every expression must also parse: promtool checks them all as recording rules.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
import yaml

# Labels every scraped series carries: the target's job and instance, and namespace/pod from
# the relabeling in prometheus.yml (the Prometheus Operator's PodMonitor adds the same).
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
# Series Prometheus records about each scrape, not exported by the app.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds"}
# What the alerting pipeline's alerts read from other jobs (prometheus.yml scrapes Prometheus
# and Alertmanager), with the labels they export, and the ALERTS series Prometheus writes for
# every pending or firing alert (alertname, alertstate and the alert's own labels).
PIPELINE_SERIES = {
    "prometheus_rule_evaluation_failures_total": {"rule_group"},
    "prometheus_notifications_errors_total": {"alertmanager"},
    "prometheus_notifications_dropped_total": set(),
    "alertmanager_notifications_failed_total": {"integration"},
    "ALERTS": {"alertname", "alertstate", "severity", "slo", "burn"},
}
# The Watchdog reads no metric: it is vector(1), always firing.
NO_METRIC = {"vector(1)"}


def sample_names(family_name: str, family_type: str, labels: set[str]) -> dict[str, set[str]]:
    """The series names a metric family exposes, with their labels."""
    if family_type == "counter":
        return {f"{family_name}_total": labels}
    if family_type == "histogram":
        return {f"{family_name}_bucket": labels | {"le"}, f"{family_name}_sum": labels, f"{family_name}_count": labels}
    if family_type == "gauge":
        return {family_name: labels}
    raise AssertionError(f"{family_name}: no rule for metric type {family_type}")


@pytest.fixture(scope="module")
def app_series(tmp_path_factory) -> dict[str, set[str]]:
    """Series name -> label names the app itself exports today (without target labels)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    from aura.instrumentation import definitions
    from aura.metrics import AuraMultiProcessCollector, Claim, GunicornMetrics, prepare_directory
    from aura.metrics.instance import InstanceCollector

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
    # What the Gunicorn hooks count (exits, GC) and what is read at scrape time for the whole
    # instance (process metrics, workers, backlog), here for this process, one child standing in
    # for a worker, and a listening TCP socket.
    gunicorn = GunicornMetrics(Claim(str(directory), str(directory), os.getpid()), None)
    for metric in (gunicorn.exits, gunicorn.gc_collections):
        [family] = metric.describe()
        series.update(sample_names(family.name, family.type, set(metric._labelnames)))
    with socket.socket() as listening, subprocess.Popen(["sleep", "30"]) as child:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        try:
            registry.register(InstanceCollector(os.getpid(), [listening.fileno()]))
            families = list(registry.collect())
        finally:
            child.kill()
    for family in families:
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        series.update(sample_names(family.name, family.type, labels))
    return series


@pytest.fixture(scope="module")
def exported(app_series) -> dict[str, set[str]]:
    """Series name -> label names, for everything a scrape of an Aura pod can return."""
    series = dict(app_series)
    for name in PROMETHEUS_SERIES:
        series[name] = set()
    series.update(PIPELINE_SERIES)
    return {name: labels | TARGET_LABELS for name, labels in series.items()}


@pytest.fixture(scope="module")
def recorded(exported, alert_rules, promql) -> dict[str, set[str]]:
    """What the scrape exports plus the recording rules' series, each with the labels its
    aggregation keeps (or, for a rule without one, the labels of the series it reads)."""
    series = dict(exported)
    for group in alert_rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                metrics, grouping = promql.references(rule["expr"])
                series[rule["record"]] = grouping or set().union(*(series.get(m, set()) for m in metrics))
    return series


def test_the_registry_was_read(exported):
    """Guard against an empty registry making every check below pass."""
    assert {
        "auth_requests_total",
        "audit_violations_detected_bucket",
        "redis_connections_active",
        "aura_metrics_merge_duration_seconds_bucket",
    } <= set(exported)


def test_expressions_use_only_exported_metrics_and_labels(promql_expressions, recorded, promql):
    exported = recorded
    problems = []
    for where, expr in promql_expressions:
        if expr in NO_METRIC:
            continue
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
    rules = [
        {"record": f"aura:promql_check:{i}", "expr": promql.for_promtool(expr)}
        for i, (_, expr) in enumerate(promql_expressions)
    ]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert f"{len(rules)} rules found" in result.stdout


def test_the_checker_finds_what_it_must(promql):
    """The lexer behind the checks above, on the shapes of expression this repository uses."""
    metrics, grouping = promql.references(
        "histogram_quantile(0.95, sum by (le, workflow_type) "
        '(rate(workflow_duration_seconds_bucket{workflow_type!~"a|b", job="aura"}[$__rate_interval])))'
    )
    assert metrics == {"workflow_duration_seconds_bucket": {"workflow_type", "job"}}
    assert grouping == {"le", "workflow_type"}
    metrics, _ = promql.references('sum(rate(a_total{s="x"}[5m])) / sum(rate(a_total[5m])) * 100 > bool 2')
    assert metrics == {"a_total": {"s"}}
    with pytest.raises(ValueError):
        promql.references("rate(a_total[5m] offset 1h)")
