"""Monitoring as code: writes the Grafana dashboards and the Prometheus rules that k8s/ ships.

    python dashboards/build.py          # regenerate the committed files
    python dashboards/build.py --check  # exit 1 if a committed file differs (tests do this)

Outputs (committed, never edited by hand), each from a module of dashboards/aura_monitoring/
(its package docstring is the map):

- k8s/monitoring/grafana/dashboards/authentication-metrics.json and workflow-metrics.json:
  the panels of the monitoring spec, with its titles in its order; service.json ("Aura
  service"): traffic, Gunicorn worker saturation, memory and CPU, pools, SLOs.
- k8s/monitoring/prometheus/slo-rules.yml: the SLO recording rules and burn-rate alerts.
- k8s/monitoring/operator/prometheusrule.yaml: k8s/monitoring/prometheus/alert-rules.yml and
  slo-rules.yml wrapped for the Prometheus Operator, so both deployments alert on the very same
  rules.
- dashboards/demo-rules.yml: `make demo`'s rule override, never deployed.

Needs PyYAML (requirements-dev.txt) and nothing else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aura_monitoring import authentication_dashboard, service_dashboard, workflow_dashboard
from aura_monitoring.demo_rules import render_demo_rules
from aura_monitoring.grafana import render_dashboard
from aura_monitoring.prometheus_rule import render_prometheus_rule
from aura_monitoring.slo_rules import render_slo_rules

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "k8s" / "monitoring" / "grafana" / "dashboards"
RULES_FILE = ROOT / "k8s" / "monitoring" / "prometheus" / "alert-rules.yml"
SLO_RULES_FILE = ROOT / "k8s" / "monitoring" / "prometheus" / "slo-rules.yml"
DEMO_RULES_FILE = ROOT / "dashboards" / "demo-rules.yml"
PROMETHEUS_RULE_FILE = ROOT / "k8s" / "monitoring" / "operator" / "prometheusrule.yaml"
DASHBOARDS = (authentication_dashboard.DASHBOARD, workflow_dashboard.DASHBOARD, service_dashboard.DASHBOARD)


def outputs() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files = {DASHBOARD_DIR / d.filename: render_dashboard(d) for d in DASHBOARDS}
    alert_rules = RULES_FILE.read_text()
    files[SLO_RULES_FILE] = slo_rules = render_slo_rules()
    files[PROMETHEUS_RULE_FILE] = render_prometheus_rule(alert_rules, slo_rules)
    files[DEMO_RULES_FILE] = render_demo_rules(alert_rules)
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    """Generated files whose committed content differs from what this script produces."""
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report the ones that are out of date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is out of date")
    args = parser.parse_args(argv)
    files = outputs()
    if args.check:
        outdated = stale(files)
        for path in outdated:
            print(f"out of date: {path.relative_to(ROOT)} (run python dashboards/build.py)")
        return 1 if outdated else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
