"""docs/deployment.md stays true to what is deployed: alerts, import steps, commands."""

from __future__ import annotations

import re
from pathlib import Path

# The monitoring spec's import steps, which the docs must keep.
SPEC_IMPORT_STEPS = (
    "kubectl port-forward -n monitoring svc/grafana 3000:3000",
    "Dashboards → Import",
    "Upload `k8s/monitoring/grafana/dashboards/authentication-metrics.json`",
    "Upload `k8s/monitoring/grafana/dashboards/workflow-metrics.json`",
    "Select Prometheus datasource",
    "Click Import",
)


def alert_table(doc: str) -> dict[str, list[str]]:
    """Alert name -> the cells of its row in the "Alerts" table."""
    section = doc.split("## Alerts", 1)[1].split("\n## ", 1)[0]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows[2:]}  # after header, ---


def test_alert_table_lists_every_alert_with_its_for(deployment_doc, alerts):
    table = alert_table(deployment_doc)
    assert set(table) == set(alerts)
    for name, rule in alerts.items():
        assert table[name][2] == rule.get("for", "-"), name


def test_spec_alert_expressions_appear_verbatim(deployment_doc, alerts):
    table = alert_table(deployment_doc)
    for name in ("HighAuthenticationFailureRate", "RateLimitHitsHigh"):
        assert table[name][1] == f"`{alerts[name]['expr']}`"


def test_import_steps_follow_the_spec(deployment_doc):
    for step in SPEC_IMPORT_STEPS:
        assert step in deployment_doc, step


def test_deploy_commands_name_real_paths(deployment_doc, k8s):
    for path in re.findall(r"kubectl apply -k ([\w/.-]+)", deployment_doc):
        assert (k8s.root.parent / path / "kustomization.yaml").is_file(), path


def test_dashboard_previews_exist_and_are_shown(deployment_doc, dashboards):
    """`make dashboards-preview` draws one PNG per dashboard; the docs show each. (Regenerating
    them needs a live stack, so the tests only check they are there.)"""
    images = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboards"
    for filename in dashboards:
        png = images / filename.replace(".json", ".png")
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"](images/dashboards/{png.name})" in deployment_doc, png.name
