"""`make demo` scrapes what production scrapes, and waits for alerts the rules define."""

from __future__ import annotations

import re

import yaml

from aura.testing.servers import ROOT

DEMO = (ROOT / "scripts" / "demo.sh").read_text()


def test_the_demo_scrapes_the_metrics_listener_not_the_app_port():
    """As Prometheus scrapes each pod on its `metrics` port (prometheus.io/port: 9100)."""
    scrape_job = DEMO.split("job_name: aura", 1)[1].split("YAML", 1)[0]
    [target] = re.findall(r'targets: \["127\.0\.0\.1:\$(\w+)"\]', scrape_job)
    assert target == "METRICS_PORT"
    assert "export GUNICORN_BIND=" in DEMO and " METRICS_PORT " in DEMO.split("export GUNICORN_BIND=", 1)[1][:80]


def test_the_alerts_the_demo_waits_for_exist_in_its_rules():
    rules = yaml.safe_load((ROOT / "dashboards" / "demo-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    waited = set(re.findall(r"timeline (\w+) (?:firing|inactive)", DEMO))
    assert waited == {"AuraWorkersSaturated"} and waited <= alerts
