"""Monitoring as code: the Grafana dashboards and Prometheus rules k8s/ ships, as Python.

`python dashboards/build.py` writes the files from these modules:

- panels: the panel vocabulary (Target, Panel, Dashboard) and the scoped PromQL panels share.
- authentication_dashboard, workflow_dashboard: the monitoring spec's two dashboards.
- service_dashboard: "Aura service" - Gunicorn saturation, pools, and the SLO panels.
- grafana: a Dashboard as Grafana's export JSON.
- slo: the SLOs - targets, latency threshold, burn-rate windows, traffic floor, demo windows.
- recording_rules: the recorded rates and SLO error ratios (level:metric:operations).
- burn_alerts: the multiwindow, multi-burn-rate alerts and their runbook links.
- rule_yaml: rule files written by PyYAML in the hand-written files' layout.
- slo_rules: k8s/monitoring/prometheus/slo-rules.yml.
- prometheus_rule: the Prometheus Operator's PrometheusRule (alert-rules.yml + slo-rules.yml).
- demo_rules: dashboards/demo-rules.yml, `make demo`'s override on short windows.
"""
