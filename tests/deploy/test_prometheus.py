"""Prometheus: the scrape configuration, the alert rules and their unit tests, via promtool.

promtool is required (Debian: `apt-get install prometheus`); a missing promtool fails these
tests rather than skipping them. Debian builds Prometheus without Kubernetes service discovery,
so `promtool check config` sees a copy whose kubernetes_sd_configs block is swapped for a static
target; that block and the relabeling are checked here in Python instead.
"""

from __future__ import annotations

import re

import pytest
import yaml

# The monitoring spec's "Alerting Rules", as written there with one change: the job matcher,
# without which they would read every application's auth_requests_total (docs/metrics.md,
# "Where this departs from the spec"). Per series, so namespace and pod stay on the alert.
SPEC_ALERTS = {
    "HighAuthenticationFailureRate": {
        "expr": 'rate(auth_requests_total{job="aura", status="failure"}[5m]) > 0.1',
        "for": "5m",
        "summary": "High authentication failure rate detected",
    },
    "RateLimitHitsHigh": {
        "expr": 'rate(rate_limit_hits_total{job="aura"}[5m]) > 10',
        "for": "5m",
        "summary": "High rate of rate limit hits detected",
    },
}
# What an operator needs besides (see docs/deployment.md, "Alerts").
OPERATOR_ALERTS = {
    "AuraHighErrorRate",
    "AuraHighLatencyP95",
    "AuraWorkflowFailureRate",
    "AuraRedisConnectionErrors",
    "AuraTargetDown",
    "AuraMetricsAbsent",
    "AuraSlowMetricsScrape",
    "AuraMetricsFilesDamaged",
    # Gunicorn inside each pod (issue 13).
    "AuraWorkersSaturated",
    "AuraWorkerTimeouts",
    "AuraWorkerCrashes",
    "AuraMemoryGrowth",
    # Issue 14: service-wide auth failures, and the SLO burn-rate alerts (slo-rules.yml).
    "AuraAuthFailuresHigh",
    "AuraAvailabilitySLOFastBurn",
    "AuraAvailabilitySLOSlowBurn",
    "AuraLatencySLOFastBurn",
    "AuraLatencySLOSlowBurn",
    # Issue 22: traffic gone, file descriptors, listen-queue overflows, and the pipeline itself.
    "AuraTrafficStopped",
    "AuraFileDescriptorsHigh",
    "AuraListenQueueOverflows",
    "Watchdog",
    "AuraPrometheusRuleFailures",
    "AuraPrometheusNotificationsFailing",
    "AuraAlertmanagerNotificationsFailing",
}
# The per-pod worker alerts: grouped by pod, and scoped to the Aura job (generic metric names).
WORKER_ALERTS = (
    "AuraWorkersSaturated",
    "AuraWorkerTimeouts",
    "AuraWorkerCrashes",
    "AuraMemoryGrowth",
    "AuraFileDescriptorsHigh",
    "AuraListenQueueOverflows",
)
SEVERITIES = {"warning", "critical", "none"}  # none: the Watchdog only


def load(path) -> dict:
    return yaml.safe_load(path.read_text())


def prometheus_config(k8s) -> dict:
    return load(k8s.monitoring / "prometheus" / "prometheus.yml")


def aura_job(config: dict) -> dict:
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "aura"]
    return job


# --- promtool -------------------------------------------------------------------------------


def test_promtool_checks_the_scrape_config(k8s, run_promtool, tmp_path):
    """The whole file through promtool, rule file included, on a copy fit for Debian's build."""
    config = prometheus_config(k8s)
    job = aura_job(config)
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["aura-pod.invalid:8000"]}]
    token = tmp_path / "token"
    token.write_text("test-token\n")
    job["authorization"]["credentials_file"] = str(token)
    for name in ("alert-rules.yml", "slo-rules.yml"):
        (tmp_path / name).write_text((k8s.monitoring / "prometheus" / name).read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert "2 rule files found" in result.stdout


def test_promtool_checks_the_rules(k8s, run_promtool, build_module):
    result = run_promtool(
        "check",
        "rules",
        str(k8s.monitoring / "prometheus" / "alert-rules.yml"),
        str(k8s.monitoring / "prometheus" / "slo-rules.yml"),
        str(build_module.DEMO_RULES_FILE),
    )
    assert result.stdout.count("SUCCESS") == 3


@pytest.mark.slow(45)  # promtool evaluates every rule at every step of every test
def test_promtool_unit_tests_pass(k8s, run_promtool):
    """alert-rules.test.yml: every alert firing where it should, quiet where it should not;
    slo-rules.test.yml: every recording rule's value."""
    run_promtool("test", "rules", "alert-rules.test.yml", "slo-rules.test.yml", cwd=k8s.monitoring / "prometheus")


def test_every_alert_has_a_firing_unit_test(k8s, alerts):
    tests = load(k8s.monitoring / "prometheus" / "alert-rules.test.yml")["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert set(alerts) <= fired
    assert silent, "some test must show an alert staying quiet"


# --- The rules ------------------------------------------------------------------------------


def test_spec_alerts_are_exactly_the_specs(alerts):
    for name, spec in SPEC_ALERTS.items():
        rule = alerts[name]
        assert rule["expr"] == spec["expr"]
        assert rule["for"] == spec["for"]
        assert rule["annotations"]["summary"] == spec["summary"]


def test_operator_alerts_are_present_and_labelled(alerts):
    assert set(alerts) == set(SPEC_ALERTS) | OPERATOR_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    assert alerts["AuraTargetDown"]["expr"] == 'up{job="aura"} == 0'
    assert 'scrape_duration_seconds{job="aura"}' in alerts["AuraSlowMetricsScrape"]["expr"]


def test_slow_scrape_alert_fires_before_scrapes_time_out(k8s, alerts):
    """The threshold must be below scrape_timeout, or the alert could never fire."""
    timeout = prometheus_config(k8s)["global"]["scrape_timeout"]
    threshold = float(alerts["AuraSlowMetricsScrape"]["expr"].rsplit(">", 1)[1])
    assert threshold < int(timeout.rstrip("s"))


def test_worker_alerts_are_per_pod_and_scoped_to_aura(alerts, promql):
    for name in WORKER_ALERTS:
        expr = alerts[name]["expr"]
        metrics, _ = promql.references(expr)
        for metric in metrics:
            assert f'{metric}{{job="aura"' in expr, (name, metric)
    for name in ("AuraWorkersSaturated", "AuraWorkerTimeouts", "AuraWorkerCrashes"):
        assert "sum by (namespace, pod)" in alerts[name]["expr"], name
    assert 'reason="timeout"' in alerts["AuraWorkerTimeouts"]["expr"]
    assert 'reason="crash"' in alerts["AuraWorkerCrashes"]["expr"]


def test_memory_alert_threshold_is_below_the_pods_memory_limit(alerts, rendered):
    """AuraMemoryGrowth names the container's limit as a number: it must be the limit's."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    expr = alerts["AuraMemoryGrowth"]["expr"]
    fraction, limit_bytes = re.search(r"> (0\.\d+) \* (\d+)", expr).groups()
    assert 0.5 <= float(fraction) < 1
    for overlay in ("base", "overlays/dev", "overlays/production"):
        [deployment] = [d for d in rendered[overlay] if d["kind"] == "Deployment" and d["metadata"]["name"] == "aura"]
        [container] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "aura"]
        limit = container["resources"]["limits"]["memory"]
        assert int(limit[:-2]) * units[limit[-2:]] == int(limit_bytes), overlay


def test_prometheus_rule_holds_the_same_rules(k8s, alert_rules, build_module):
    """The operator's PrometheusRule is generated from alert-rules.yml and is up to date."""
    rule = load(k8s.monitoring / "operator" / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == alert_rules["groups"]
    path = build_module.PROMETHEUS_RULE_FILE
    assert path.read_text() == build_module.outputs()[path], "run: python dashboards/build.py"


# --- Discovery and relabeling ---------------------------------------------------------------


def test_aura_job_discovers_annotated_pods_in_the_aura_namespace(k8s, rendered):
    job = aura_job(prometheus_config(k8s))
    [sd] = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod"
    deployment = k8s.find(rendered["overlays/production"], "Deployment", "aura")
    assert sd["namespaces"]["names"] == [deployment["metadata"]["namespace"]]
    role = k8s.find(rendered["monitoring"], "Role", "prometheus-discovery")
    assert role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]


def test_bearer_token_file_is_the_mounted_secret(k8s, rendered):
    """credentials_file points into the Secret volume of the Prometheus pod."""
    path = aura_job(prometheus_config(k8s))["authorization"]["credentials_file"]
    statefulset = k8s.find(rendered["monitoring"], "StatefulSet", "prometheus")
    pod = statefulset["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "aura-metrics-token"
    assert path == f"{mount['mountPath']}/token"
    template = load(k8s.monitoring / "prometheus" / "metrics-token.template.yaml")
    assert set(template["stringData"]) == {"token"}


def test_config_file_paths_match_the_pod(k8s, rendered):
    statefulset = k8s.find(rendered["monitoring"], "StatefulSet", "prometheus")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    config_file = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--config.file="))
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    directory, filename = config_file.rsplit("/", 1)
    assert mounts[directory] == "config" and filename == "prometheus.yml"
    data = k8s.config_map_data(rendered["monitoring"], "prometheus-config")
    assert set(data) == {"prometheus.yml", "alert-rules.yml", "slo-rules.yml"}
    # relative: same directory
    assert prometheus_config(k8s)["rule_files"] == ["alert-rules.yml", "slo-rules.yml"]


def relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's keep / drop / replace relabeling (the subset prometheus.yml uses)."""
    labels = dict(labels)
    for rule in rules:
        value = ";".join(labels.get(name, "") for name in rule.get("source_labels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            # Prometheus writes $1 where Python's match.expand wants \1.
            replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
    return labels


def discovered_pod(**overrides: str) -> dict[str, str]:
    """The labels Kubernetes pod discovery gives the app container of a running Aura pod."""
    labels = {
        "__address__": "10.1.2.3:9100",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": "aura",
        "__meta_kubernetes_pod_name": "aura-5d9f-abcde",
        "__meta_kubernetes_pod_ip": "10.1.2.3",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_container_init": "false",
        "__meta_kubernetes_pod_container_port_name": "metrics",
        "__meta_kubernetes_pod_container_port_number": "9100",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "9100",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
    }
    labels.update(overrides)
    return labels


def test_relabeling_turns_annotated_pods_into_targets(k8s):
    rules = aura_job(prometheus_config(k8s))["relabel_configs"]
    target = relabel(rules, discovered_pod())
    assert target["__address__"] == "10.1.2.3:9100"
    assert target["__metrics_path__"] == "/metrics"
    assert (target["namespace"], target["pod"]) == ("aura", "aura-5d9f-abcde")
    ipv6 = relabel(rules, discovered_pod(__meta_kubernetes_pod_ip="fd00::1:2", __address__="[fd00::1:2]"))
    assert ipv6["__address__"] == "[fd00::1:2]:9100"


def test_relabeling_leaves_out_what_must_not_be_scraped(k8s):
    rules = aura_job(prometheus_config(k8s))["relabel_configs"]
    for scrape in ("false", ""):
        pod = discovered_pod(__meta_kubernetes_pod_annotation_prometheus_io_scrape=scrape)
        assert relabel(rules, pod) is None
    assert relabel(rules, discovered_pod(__meta_kubernetes_pod_phase="Pending")) is None
    assert relabel(rules, discovered_pod(__meta_kubernetes_pod_container_init="true")) is None
    # The app port is discovered too (one target per container port): only `metrics` is scraped.
    app_port = discovered_pod(
        __address__="10.1.2.3:8000",
        __meta_kubernetes_pod_container_port_name="http",
        __meta_kubernetes_pod_container_port_number="8000",
    )
    assert relabel(rules, app_port) is None


def test_scrape_address_is_the_pods_metrics_port(k8s, rendered):
    """The annotation names the `metrics` containerPort, which the PodMonitor scrapes too."""
    for overlay in ("base", "overlays/dev", "overlays/production"):
        deployment = k8s.find(rendered[overlay], "Deployment", "aura")
        template = deployment["spec"]["template"]
        [container] = [c for c in template["spec"]["containers"] if c["name"] == "aura"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
        assert env["METRICS_PORT"] == str(ports["metrics"])
        rules = aura_job(prometheus_config(k8s))["relabel_configs"]
        pod = discovered_pod(
            __address__=f"10.1.2.3:{ports['metrics']}",
            __meta_kubernetes_pod_annotation_prometheus_io_port=str(ports["metrics"]),
        )
        assert relabel(rules, pod)["__address__"] == f"10.1.2.3:{ports['metrics']}"
    podmonitor = k8s.find(rendered["monitoring/operator"], "PodMonitor", "aura")
    assert [e["port"] for e in podmonitor["spec"]["podMetricsEndpoints"]] == ["metrics"]


def test_the_cluster_and_the_demo_prometheus_keep_exemplars(k8s):
    """Without the feature flag Prometheus drops the exemplars Aura exposes (docs/metrics.md, "Exemplars")."""
    statefulset = yaml.safe_load((k8s.monitoring / "prometheus" / "statefulset.yaml").read_text())
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert "--enable-feature=exemplar-storage" in container["args"]
    demo = (k8s.monitoring.parents[1] / "scripts" / "demo.sh").read_text()
    assert re.search(r"setsid prometheus [^&]*--enable-feature=exemplar-storage", demo)
