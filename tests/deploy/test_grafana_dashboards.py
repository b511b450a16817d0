"""Grafana: the two spec dashboards hold exactly the monitoring spec's panels, the service
dashboard its own, and Grafana is wired.

The spec's panel lists, titles and order, are copied here from "Grafana Dashboards"; the
service dashboard's from issue 13. The committed JSON must be what dashboards/build.py
writes, byte for byte.
"""

from __future__ import annotations

import re

import yaml

AUTHENTICATION_PANELS = [
    "Authentication Requests Rate",
    "Authentication Success/Failure Rate",
    "User Registrations",
    "Token Refreshes",
    "Authentication Failures by Reason",
    "Rate Limit Hits",
    "Tokens Issued",
    "Redis Connection Pool Usage",
]
WORKFLOW_PANELS = [
    "Workflow Executions Rate",
    "Workflow Duration",
    "Struggle Detections",
    "Lesson Recommendations Generated",
    "Struggle Detection Results",
    "Audit Execution Status",
    "Audit Violations Detected",
    "Violations by Type",
    "Files Processed per Audit",
    "Workflow Failures",
    "Struggle Workflow Input Metrics",
]
SPEC_PANELS = {"authentication-metrics.json": AUTHENTICATION_PANELS, "workflow-metrics.json": WORKFLOW_PANELS}
# "Aura service": not in the spec; how the pods' Gunicorn copes (issue 13).
SERVICE_PANELS = [
    "Request Rate by Endpoint",
    "Server Error Ratio by Endpoint",
    "Request Latency",
    "Request Latency p95 by Endpoint",
    "Worker Utilisation",
    "Busy and Live Workers",
    "Listen Backlog",
    "Queue Time",
    "Worker Exits by Reason",
    "Memory per Pod",
    "CPU per Pod",
    "Open File Descriptors",
    "Connection Pools",
    "Database Query Latency",
    "Redis Errors",
    # Issue 14: one error-budget panel per SLO, and both SLOs' burn rate.
    "Availability SLO Error Budget Remaining",
    "Latency SLO Error Budget Remaining",
    "SLO Burn Rate",
    # Issue 22: the fast burn's second window pair.
    "SLO Burn Rate 6h/30m",
]
ALL_PANELS = {**SPEC_PANELS, "service.json": SERVICE_PANELS}
# "Total ... in the last hour" in the spec.
LAST_HOUR_STATS = {"User Registrations", "Struggle Detections", "Lesson Recommendations Generated"}
# "Pie chart of ..." in the spec.
PIE_CHARTS = {"Authentication Failures by Reason", "Struggle Detection Results"}
# "P50, P95, P99 ..." in the spec: one histogram_quantile target per percentile.
PERCENTILE_PANELS = {
    "Workflow Duration",
    "Audit Violations Detected",
    "Files Processed per Audit",
    "Request Latency",
    "Queue Time",
    "Database Query Latency",
}
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def panels(dashboards) -> dict[str, dict]:
    return {p["title"]: p for d in dashboards.values() for p in d["panels"]}


def test_committed_json_is_the_generators_output(build_module, dashboards):
    """One source of truth: dashboards/build.py. Regenerate with `python dashboards/build.py`."""
    generated = {path.name: text for path, text in build_module.outputs().items() if path.suffix == ".json"}
    assert sorted(generated) == sorted(dashboards) == sorted(ALL_PANELS)
    assert build_module.stale(build_module.outputs()) == [], "run: python dashboards/build.py"


def test_panel_titles_are_unique(dashboards):
    """Panels are looked up by title across dashboards (below), so no title may repeat."""
    titles = [p["title"] for d in dashboards.values() for p in d["panels"]]
    assert len(titles) == len(set(titles))


def test_panels_are_the_specs_in_its_order(dashboards):
    for filename, titles in ALL_PANELS.items():
        dashboard = dashboards[filename]
        assert [p["title"] for p in dashboard["panels"]] == titles
        # Grafana lays panels out by position, so the grid must read in the same order.
        positions = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in dashboard["panels"]]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert [p["id"] for p in dashboard["panels"]] == list(range(1, len(titles) + 1))


def test_panel_kinds_follow_the_spec(dashboards):
    for title, panel in panels(dashboards).items():
        if title in LAST_HOUR_STATS:
            assert panel["type"] == "stat", title
            [target] = panel["targets"]
            assert re.fullmatch(r"sum\(increase\(\w+(\{[^}]*\})?\[1h\]\)\)", target["expr"]), target["expr"]
            assert target["instant"] is True
        elif title in PIE_CHARTS:
            assert panel["type"] == "piechart", title
        else:
            assert panel["type"] == "timeseries", title


def test_percentile_panels_show_p50_p95_p99(dashboards):
    for title in PERCENTILE_PANELS:
        exprs = [t["expr"] for t in panels(dashboards)[title]["targets"]]
        quantiles = [re.match(r"histogram_quantile\(([\d.]+),", e).group(1) for e in exprs]
        assert quantiles == ["0.5", "0.95", "0.99"], title
        assert all(re.search(r"_bucket(\{[^}]*\})?\[", e) and "sum by (le" in e for e in exprs), title


def test_the_latency_panels_and_only_they_ask_for_exemplars(dashboards):
    """http_request_duration_seconds keeps each bucket's latest request (docs/metrics.md, "Exemplars")."""
    asking = {
        panel["title"]
        for board in dashboards.values()
        for panel in board["panels"]
        if any(t.get("exemplar") for t in panel["targets"])
    }
    assert asking == {"Request Latency", "Request Latency p95 by Endpoint"}
    for title in asking:
        assert all("http_request_duration_seconds_bucket" in t["expr"] for t in panels(dashboards)[title]["targets"])


def test_service_dashboard_reads_only_the_aura_job(dashboards, promql):
    """process_* and gunicorn_* are generic names (Prometheus exports process_* itself): every
    selector is the job variable's, whose values are Aura's jobs (test_alerting.py checks all
    dashboards and the variables)."""
    for panel in dashboards["service.json"]["panels"]:
        for target in panel["targets"]:
            metrics, _ = promql.references(target["expr"])
            for name in metrics:
                assert f'{name}{{job=~"$job"' in target["expr"], (panel["title"], name)


def test_worker_utilisation_is_busy_seconds_over_live_workers(dashboards):
    """Per pod and overall, both sides summed before dividing (the pool's ratio)."""
    panel = next(p for p in dashboards["service.json"]["panels"] if p["title"] == "Worker Utilisation")
    per_pod, overall = (t["expr"] for t in panel["targets"])
    scope = '{job=~"$job", namespace=~"$namespace", pod=~"$pod"}'
    assert per_pod == (
        f"sum by (pod) (rate(gunicorn_worker_busy_seconds_total{scope}"
        f"[$__rate_interval])) / sum by (pod) (gunicorn_workers{scope})"
    )
    assert overall == (
        f"sum (rate(gunicorn_worker_busy_seconds_total{scope}[$__rate_interval])) / sum (gunicorn_workers{scope})"
    )
    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_datasource_is_an_import_input(dashboards):
    """The spec's import step "select Prometheus datasource" fills DS_PROMETHEUS."""
    for filename, dashboard in dashboards.items():
        assert dashboard["__inputs"] == [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the Aura pods",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ], filename
        assert dashboard["id"] is None  # an import creates a new dashboard
        variable = dashboard["templating"]["list"][0]
        assert (variable["name"], variable["type"]) == ("DS_PROMETHEUS", "datasource")
        assert variable["query"] == "prometheus"
        for panel in dashboard["panels"]:
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert [t["datasource"] for t in panel["targets"]] == [DATASOURCE] * len(panel["targets"])
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids)
        required_panels = {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
        assert required_panels == {p["type"] for p in dashboard["panels"]}


def test_grafana_provisions_the_datasource_and_every_dashboard(k8s, rendered):
    docs = rendered["monitoring"]
    deployment = k8s.find(docs, "Deployment", "grafana")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    volumes = {
        v["name"]: v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v
    }
    mounts = {m["mountPath"]: volumes.get(m["name"]) for m in container["volumeMounts"]}

    providers = yaml.safe_load(k8s.config_map_data(docs, "grafana-dashboard-providers")["dashboards.yaml"])
    [provider] = providers["providers"]
    assert mounts[provider["options"]["path"]].startswith("grafana-dashboards-")
    assert set(k8s.config_map_data(docs, "grafana-dashboards")) == set(ALL_PANELS)
    assert mounts["/etc/grafana/provisioning/dashboards"].startswith("grafana-dashboard-providers-")

    datasources = yaml.safe_load(k8s.config_map_data(docs, "grafana-datasources")["datasources.yaml"])
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert mounts["/etc/grafana/provisioning/datasources"].startswith("grafana-datasources-")
    service = k8s.find(docs, "Service", "prometheus")
    port = service["spec"]["ports"][0]["port"]
    assert datasource["url"] == f"http://prometheus.{service['metadata']['namespace']}.svc:{port}"
    # $__rate_interval is derived from this: it must be Prometheus's scrape interval.
    prometheus = yaml.safe_load((k8s.monitoring / "prometheus" / "prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_port_forward_in_the_spec_reaches_grafana(k8s, rendered):
    """`kubectl port-forward -n monitoring svc/grafana 3000:3000` from the spec's import steps."""
    service = k8s.find(rendered["monitoring"], "Service", "grafana")
    assert service["metadata"]["namespace"] == "monitoring"
    [port] = service["spec"]["ports"]
    assert port["port"] == 3000
