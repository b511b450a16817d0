"""Alerting an SRE would adopt as it is (issue 14): every rule and panel scoped to Aura's job,
namespace kept through aggregations, recording rules named by convention and tested, SLO
burn-rate alerts generated from one place, a runbook section behind every alert, and an
Alertmanager that routes by severity and inhibits a ticket while its page fires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTMANAGER = ROOT / "k8s" / "monitoring" / "alertmanager" / "alertmanager.yml"
RECORD_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")


def occurrences(expr: str, name: str) -> list[str]:
    """The matcher block ('' when bare) of every place a metric name is selected in expr."""
    found = []
    for match in re.finditer(rf"(?<![\w:$\"]){re.escape(name)}(?![\w:])(\s*\{{[^}}]*\}})?", expr):
        rest = expr[match.end() :].lstrip()
        if not match.group(1) and rest.startswith("("):
            continue  # a function of the same name, not a selector
        found.append(match.group(1) or "")
    return found


def rules(alert_rules) -> list[dict]:
    return [rule for group in alert_rules["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


# --- Scope ----------------------------------------------------------------------------------


def test_every_rule_selects_only_auras_job(alert_rules, promql):
    """Every selector of every alert and recording rule carries job="aura"."""
    unscoped = []
    for rule in rules(alert_rules):
        metrics, _ = promql.references(rule["expr"])
        for name in metrics:
            for matchers in occurrences(rule["expr"], name):
                if 'job="aura"' not in matchers:
                    unscoped.append((rule.get("alert") or rule["record"], name, matchers))
    assert not unscoped, unscoped


def test_every_aggregation_in_a_rule_keeps_namespace(alert_rules):
    """`sum by (...)` without namespace would mix dev and production and defeat routing."""
    for rule in rules(alert_rules):
        expr = rule["expr"]
        for clause in re.findall(r"\b(?:sum|max|min|avg|count)\s*by\s*\(([^)]*)\)", expr):
            assert "namespace" in clause, (rule.get("alert") or rule.get("record"), clause)
        assert not re.search(r"\b(?:sum|max|min|avg|count)\s*\(", expr), (
            rule.get("alert") or rule.get("record"),
            "aggregation without `by`",
        )


def test_every_panel_reads_the_dashboard_variables(dashboards, promql):
    """Every selector of every panel: job and namespace variables, and pod unless it reads a
    recording rule (aggregated per namespace and job, where pod does not exist)."""
    unscoped = []
    for filename, dashboard in dashboards.items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                metrics, _ = promql.references(target["expr"])
                for name in metrics:
                    needed = ['job=~"$job"', 'namespace=~"$namespace"']
                    if not RECORD_NAME.fullmatch(name):
                        needed.append('pod=~"$pod"')
                    for matchers in occurrences(target["expr"], name):
                        if not all(n in matchers for n in needed):
                            unscoped.append((filename, panel["title"], name, matchers))
    assert not unscoped, unscoped


def test_the_scope_checks_catch_an_unscoped_selector(promql):
    """The checks above, on the mistakes they exist for."""
    expr = (
        'sum by (namespace) (rate(http_requests_total{job="aura"}[5m]))'
        " / sum by (namespace) (rate(http_requests_total[5m]))"
    )
    assert occurrences(expr, "http_requests_total") == ['{job="aura"}', ""]
    assert occurrences('rate(x_total{job="aura"}[5m]) > 0 and absent(x_total)', "x_total") == ['{job="aura"}', ""]


def test_dashboards_have_namespace_job_and_pod_variables(dashboards):
    for filename, dashboard in dashboards.items():
        variables = dashboard["templating"]["list"]
        assert [v["name"] for v in variables] == ["DS_PROMETHEUS", "namespace", "job", "pod"], filename
        assert variables[0]["type"] == "datasource"
        for variable in variables[1:]:
            assert variable["type"] == "query" and variable["multi"] and variable["includeAll"], filename
            # All = the listed values, which are Aura's (aura_build_info): never `.*`.
            assert "allValue" not in variable or not variable["allValue"]
            assert variable["query"]["query"].startswith("label_values(aura_build_info")


# --- Recording rules ------------------------------------------------------------------------


def test_recording_rules_follow_the_naming_convention(alert_rules):
    """level:metric:operations, the level naming the labels the rule keeps."""
    for rule in rules(alert_rules):
        if "record" not in rule:
            continue
        level, _metric, operations = rule["record"].split(":")
        kept = re.search(r"by \(([^)]*)\)", rule["expr"])
        if kept:
            assert level == "_".join(label.strip() for label in kept.group(1).split(",")), rule["record"]
        assert re.fullmatch(r"(rate|ratio_rate)\d+[smhd]", operations), rule["record"]


def test_every_recording_rule_is_unit_tested(alert_rules, k8s):
    tests = yaml.safe_load((k8s.monitoring / "prometheus" / "slo-rules.test.yml").read_text())["tests"]
    tested = {
        re.search(r"\(([\w:]+)", case["expr"]).group(1) for test in tests for case in test.get("promql_expr_test", [])
    }
    recorded = {rule["record"] for rule in rules(alert_rules) if "record" in rule}
    assert recorded <= tested, sorted(recorded - tested)


def test_alerts_and_panels_use_the_recording_rules(alert_rules, dashboards):
    recorded = {rule["record"] for rule in rules(alert_rules) if "record" in rule}
    alert_exprs = " ".join(rule["expr"] for rule in rules(alert_rules) if "alert" in rule)
    panel_exprs = " ".join(t["expr"] for d in dashboards.values() for p in d["panels"] for t in p["targets"])
    assert any(name in alert_exprs for name in recorded)
    assert any(name in panel_exprs for name in recorded)
    unused = {
        name
        for name in recorded
        if name not in alert_exprs + panel_exprs
        and not any(name in r["expr"] for r in rules(alert_rules) if "record" in r)
    }
    assert not unused, unused


# --- SLOs -----------------------------------------------------------------------------------


def test_slo_rules_come_from_the_generator(build_module):
    """Targets and thresholds live in dashboards/build.py; the rule files are its output."""
    outputs = build_module.outputs()
    for path in (build_module.SLO_RULES_FILE, build_module.DEMO_RULES_FILE):
        assert path.read_text() == outputs[path], "run: python dashboards/build.py"
    assert {slo.name for slo in build_module.SLOS} == {"availability", "latency"}
    for slo in build_module.SLOS:
        assert 0.9 <= slo.objective < 1


def test_latency_threshold_is_a_histogram_bucket(build_module):
    """The latency SLI counts the bucket at the threshold: it must be one of the buckets."""
    source = (ROOT / "aura" / "instrumentation" / "definitions.py").read_text()
    buckets = re.search(r"HTTP_BUCKETS = \(([^)]*)\)", source).group(1)
    assert float(build_module.LATENCY_THRESHOLD_SECONDS) in {float(b) for b in buckets.split(",")}


def test_burn_rate_alerts_have_both_speeds_short_windows_and_a_floor(alerts, build_module):
    for slo in build_module.SLOS:
        fast, slow = alerts[f"{slo.alert}FastBurn"], alerts[f"{slo.alert}SlowBurn"]
        assert fast["labels"]["severity"] == "critical" and slow["labels"]["severity"] == "warning"
        for rule, windows in ((fast, ("1h", "5m", "6h", "30m")), (slow, ("1d", "2h", "3d", "6h"))):
            for window in windows:
                assert f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate{window}" in rule["expr"]
            assert rule["expr"].count("namespace_job:aura_api_requests:rate") == 2
            assert f">= {build_module.MIN_REQUESTS_PER_SECOND}" in rule["expr"]
            assert rule["labels"]["slo"] == slo.name


def test_error_budget_panel_per_slo(dashboards, build_module):
    titles = {p["title"]: p for p in dashboards["service.json"]["panels"]}
    for slo in build_module.SLOS:
        panel = titles[f"{slo.name.capitalize()} SLO Error Budget Remaining"]
        [target] = panel["targets"]
        assert f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate5m" in target["expr"]
        assert f"/ {slo.budget})" in target["expr"]


# --- Runbooks -------------------------------------------------------------------------------


def test_every_alert_links_its_runbook_section(alerts, build_module):
    text = RUNBOOKS.read_text()
    sections = anchors(text)
    for name, rule in alerts.items():
        url = rule["annotations"].get("runbook_url")
        assert url, f"{name} has no runbook_url"
        base, _, anchor = url.partition("#")
        assert base == build_module.RUNBOOK_BASE, name
        assert anchor == name.lower() and anchor in sections, f"docs/runbooks.md has no section {name}"


def test_every_runbook_section_says_what_where_and_what_to_do(alerts):
    text = RUNBOOKS.read_text()
    for name in alerts:
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Look first**", "**Do**"):
            assert part in section, (name, part)
        # The exact panel and query to look at.
        assert "```promql" in section, name
        assert re.search(r"panel\s+\*[^*]+\*", section), name


def test_runbook_panels_exist(dashboards):
    titles = {p["title"] for d in dashboards.values() for p in d["panels"]}
    named = {" ".join(n.split()) for n in re.findall(r"panel\s+\*([^*]+)\*", RUNBOOKS.read_text())}
    assert named and named <= titles, named - titles


# --- Alertmanager ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(
            "amtool is missing: apt-get install -y prometheus-alertmanager (scripts/ensure-services.sh does this)",
            pytrace=False,
        )
    return path


def routes_to(amtool: str, *labels: str) -> str:
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_alertmanager_config_is_valid(amtool):
    result = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_alertmanager_routes_by_severity(amtool, alerts):
    receivers = {"critical": "page", "warning": "ticket"}
    for name, rule in alerts.items():
        severity = rule["labels"]["severity"]
        assert (
            routes_to(amtool, f"alertname={name}", f"severity={severity}", "namespace=aura") == receivers[severity]
        ), name


def test_alertmanager_groups_by_namespace_and_alert_and_inhibits_tickets_for_a_page(build_module):
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["route"]["group_by"] == ["namespace", "alertname"]
    [slo_rule] = [r for r in config["inhibit_rules"] if "slo" in r["equal"]]
    assert 'severity="critical"' in slo_rule["source_matchers"]
    assert 'severity="warning"' in slo_rule["target_matchers"]
    assert set(slo_rule["equal"]) == {"namespace", "job", "slo"}
    # Only alerts that have an slo label take part: an absent label would equal an absent one.
    assert 'slo=~".+"' in slo_rule["source_matchers"] and 'slo=~".+"' in slo_rule["target_matchers"]


def test_prometheus_sends_to_the_alertmanager_service(k8s, rendered):
    config = yaml.safe_load((k8s.monitoring / "prometheus" / "prometheus.yml").read_text())
    [target] = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    service = k8s.find(rendered["monitoring"], "Service", "alertmanager")
    assert target == f"alertmanager.{service['metadata']['namespace']}.svc:{service['spec']['ports'][0]['port']}"
    deployment = k8s.find(rendered["monitoring"], "Deployment", "alertmanager")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--config.file=/etc/alertmanager/config/alertmanager.yml" in container["args"]
    assert set(k8s.config_map_data(rendered["monitoring"], "alertmanager-config")) == {"alertmanager.yml"}


# --- The demo's override --------------------------------------------------------------------


def test_demo_override_has_every_alert_with_short_for_and_windows(alerts, build_module):
    """make demo loads dashboards/demo-rules.yml: the same alerts, able to fire in minutes."""
    demo = yaml.safe_load(build_module.DEMO_RULES_FILE.read_text())
    demo_alerts = {r["alert"]: r for g in demo["groups"] for r in g["rules"] if "alert" in r}
    assert set(demo_alerts) == set(alerts)
    for name, rule in demo_alerts.items():
        # Alerts without `for:` (they fire at once) stay without it.
        assert rule.get("for") == (build_module.DEMO_FOR if "for" in alerts[name] else None), name
        assert rule["labels"] == alerts[name]["labels"], name
    for window in re.findall(r"ratio_rate(\d+[smhd])", " ".join(r["expr"] for r in demo_alerts.values())):
        assert window[-1] in "sm", window


def test_demo_loads_the_override_and_says_what_fires():
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert "dashboards/demo-rules.yml" in script
    assert "ALERTS FIRE IN THIS DEMO" in script
    assert "AuraAvailabilitySLOFastBurn" in script and "HighAuthenticationFailureRate" in script
    assert "/alerts" in script and "Alertmanager" in script
