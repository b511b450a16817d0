"""The HPA scales on CPU and on Gunicorn worker utilisation, served by prometheus-adapter.

The adapter's rules are plain YAML inside a ConfigMap, which no Kubernetes schema looks into:
these tests read them. Their metricsQuery is also checked against the app's metric names and
by promtool, with the other expressions (test_metric_contract.py).
"""

from __future__ import annotations

from decimal import Decimal

UTILISATION_METRIC = "gunicorn_worker_utilisation"
# Overlays whose HPA uses the adapter; the dev overlay (a laptop cluster) keeps CPU only.
ADAPTER_OVERLAYS = ("base", "overlays/production")


def utilisation_rule(adapter_config: dict) -> dict:
    [rule] = [r for r in adapter_config["rules"] if r["name"]["as"] == UTILISATION_METRIC]
    return rule


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity without a binary suffix ("700m" -> 0.7)."""
    return Decimal(value[:-1]) / 1000 if value.endswith("m") else Decimal(value)


def test_adapter_rule_computes_utilisation_per_pod(adapter_config):
    rule = utilisation_rule(adapter_config)
    assert rule["seriesQuery"].startswith("gunicorn_worker_busy_seconds_total{")
    assert 'job="aura"' in rule["seriesQuery"]
    assert rule["name"]["matches"] == "^gunicorn_worker_busy_seconds_total$"
    assert rule["resources"] == {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}}
    query = rule["metricsQuery"]
    numerator, denominator = query.split(" / ")
    assert "rate(gunicorn_worker_busy_seconds_total{" in numerator and "[2m]" in numerator
    assert "gunicorn_workers{" in denominator
    for side in (numerator, denominator):
        assert side.strip().startswith("sum by (<<.GroupBy>>)")
        assert '{job="aura",<<.LabelMatchers>>}' in side


def test_hpa_scales_on_cpu_and_worker_utilisation(rendered, k8s, adapter_config):
    for overlay in ADAPTER_OVERLAYS:
        hpa = k8s.find(rendered[overlay], "HorizontalPodAutoscaler", "aura")
        cpu, pods = hpa["spec"]["metrics"]
        assert cpu["type"] == "Resource" and cpu["resource"]["name"] == "cpu", overlay
        assert pods["type"] == "Pods", overlay
        assert pods["pods"]["metric"]["name"] == utilisation_rule(adapter_config)["name"]["as"]
        target = pods["pods"]["target"]
        assert target["type"] == "AverageValue"
        # Below the saturation alert's 0.9: the HPA acts before requests queue.
        assert Decimal("0.5") <= quantity(target["averageValue"]) < Decimal("0.9")


def test_dev_overlay_scales_on_cpu_only(rendered, k8s):
    """A laptop cluster has no adapter; an unavailable metric would block scaling down."""
    hpa = k8s.find(rendered["overlays/dev"], "HorizontalPodAutoscaler", "aura")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]


def test_saturation_alert_threshold_is_above_the_hpa_target(alerts, rendered, k8s):
    hpa = k8s.find(rendered["base"], "HorizontalPodAutoscaler", "aura")
    target = quantity(hpa["spec"]["metrics"][1]["pods"]["target"]["averageValue"])
    expr = alerts["AuraWorkersSaturated"]["expr"]
    assert "> 0.9" in expr and target < Decimal("0.9")


def test_adapter_config_map_lives_with_the_monitoring_stack(rendered, k8s):
    config_map = k8s.find(rendered["monitoring/prometheus-adapter"], "ConfigMap", "aura-prometheus-adapter")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert set(config_map["data"]) == {"config.yaml"}
