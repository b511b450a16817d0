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


# The alerting pipeline's own alerts read Prometheus's and Alertmanager's jobs (prometheus.yml).
PIPELINE_JOBS = {"prometheus_": 'job="prometheus"', "alertmanager_": 'job="alertmanager"'}


def test_every_rule_selects_only_auras_job(alert_rules, promql):
    """Every selector of every alert and recording rule carries job="aura", except the
    pipeline group's, which carry Prometheus's or Alertmanager's own job."""
    unscoped = []
    for group in alert_rules["groups"]:
        for rule in group["rules"]:
            metrics, _ = promql.references(rule["expr"])
            for name in metrics:
                needed = 'job="aura"'
                if group["name"] == "aura-pipeline":
                    needed = next(job for prefix, job in PIPELINE_JOBS.items() if name.startswith(prefix))
                for matchers in occurrences(rule["expr"], name):
                    if needed not in matchers:
                        unscoped.append((rule.get("alert") or rule["record"], name, matchers))
    assert not unscoped, unscoped


def test_prometheus_scrapes_the_pipelines_jobs(k8s):
    """The pipeline alerts read series that exist only if Prometheus scrapes both."""
    config = yaml.safe_load((k8s.monitoring / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"prometheus", "alertmanager"} <= jobs


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
        name
        for test in tests
        for case in test.get("promql_expr_test", [])
        for name in RECORD_NAME.findall(case["expr"])
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


def test_slo_rules_come_from_the_generator(build_module, monitoring):
    """Targets and thresholds live in dashboards/aura_monitoring/slo.py; the rule files are
    dashboards/build.py's output."""
    outputs = build_module.outputs()
    for path in (build_module.SLO_RULES_FILE, build_module.DEMO_RULES_FILE):
        assert path.read_text() == outputs[path], "run: python dashboards/build.py"
    assert {slo.name for slo in monitoring.slo.SLOS} == {"availability", "latency"}
    for slo in monitoring.slo.SLOS:
        assert 0.9 <= slo.objective < 1


def test_rule_files_read_back_as_the_rules_generated(monitoring):
    """The rule files' YAML dumper only chooses styles (quotes, literal blocks, layout): what it
    writes loads back as the rules it was given, the demo's included."""
    for profile in (None, monitoring.slo.DEMO_WINDOWS):
        groups = monitoring.slo_rules.slo_rule_groups(profile)
        assert yaml.safe_load(monitoring.rule_yaml.dump_rules(groups)) == {"groups": groups}
    awkward = [{"name": "g", "rules": [{"record": "it's", "expr": "a\n  b\n", "labels": {"n": "1"}}]}]
    assert yaml.safe_load(monitoring.rule_yaml.dump_rules(awkward)) == {"groups": awkward}


def test_latency_threshold_is_a_histogram_bucket(monitoring):
    """The latency SLI counts the bucket at the threshold: it must be one of the buckets."""
    source = (ROOT / "aura" / "instrumentation" / "definitions.py").read_text()
    buckets = re.search(r"HTTP_BUCKETS = \(([^)]*)\)", source).group(1)
    assert float(monitoring.slo.LATENCY_THRESHOLD_SECONDS) in {float(b) for b in buckets.split(",")}


def test_burn_rate_alerts_have_both_speeds_short_windows_and_a_floor(alerts, monitoring):
    for slo in monitoring.slo.SLOS:
        fast, slow = alerts[f"{slo.alert}FastBurn"], alerts[f"{slo.alert}SlowBurn"]
        assert fast["labels"]["severity"] == "critical" and slow["labels"]["severity"] == "warning"
        for rule, windows in ((fast, ("1h", "5m", "6h", "30m")), (slow, ("1d", "2h", "3d", "6h"))):
            for window in windows:
                assert f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate{window}" in rule["expr"]
            assert rule["expr"].count("namespace_job:aura_api_requests:rate") == 2
            assert f">= {monitoring.slo.MIN_REQUESTS_PER_SECOND}" in rule["expr"]
            assert rule["labels"]["slo"] == slo.name


def test_error_budget_panel_per_slo(dashboards, monitoring):
    """The budget reads the period's counts (traffic-weighted), never an average of ratios,
    and shows a full budget for a period without any request."""
    titles = {p["title"]: p for p in dashboards["service.json"]["panels"]}
    for slo in monitoring.slo.SLOS:
        panel = titles[f"{slo.name.capitalize()} SLO Error Budget Remaining"]
        [target] = panel["targets"]
        assert f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate30d" in target["expr"]
        assert f"/ {slo.budget})" in target["expr"]
        assert "avg_over_time" not in target["expr"]
        assert "+ 1)" in target["expr"]
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 0


def test_period_ratios_are_counts_over_counts(alert_rules):
    """ratio_rate30d divides two recorded averages of 5m rates (sums of counts), with the
    denominator filtered to > 0: a number, or absent, never NaN."""
    recorded = {r["record"]: r["expr"] for r in rules(alert_rules) if "record" in r}
    for name in ("requests", "server_errors", "timed_requests", "slow_requests"):
        expr = recorded[f"namespace_job:aura_api_{name}:rate30d"]
        assert expr == f'avg_over_time(namespace_job:aura_api_{name}:rate5m{{job="aura"}}[30d])'
    for record, expr in recorded.items():
        if ":ratio_rate" in record:
            assert re.search(r"/ \(namespace_job:aura_api_\w+:rate\w+\{job=\"aura\"\} > 0\)$", expr), record


def test_burn_rate_panels_show_both_fast_window_pairs_and_their_factors(dashboards, monitoring):
    titles = {p["title"]: p for p in dashboards["service.json"]["panels"]}
    for title, (long, short, factor) in zip(
        ("SLO Burn Rate", "SLO Burn Rate 6h/30m"), monitoring.slo.BURN_ALERTS[0].pairs, strict=True
    ):
        panel = titles[title]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        for slo in monitoring.slo.SLOS:
            for window in (long, short):
                assert f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate{window}{{" in exprs, (title, window)
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps[1:]] == [factor], title
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"


def test_threshold_lines_are_the_alerts_and_hpas_numbers(dashboards, alerts, monitoring, rendered):
    """Latency panels mark the SLO's threshold, utilisation the HPA target and the
    saturation alert's threshold - the numbers those read, not copies that drift."""
    titles = {p["title"]: p for p in dashboards["service.json"]["panels"]}
    service = monitoring.service_dashboard

    def lines(title):
        return [s["value"] for s in titles[title]["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]

    latency = float(monitoring.slo.LATENCY_THRESHOLD_SECONDS)
    assert lines("Request Latency") == lines("Request Latency p95 by Endpoint") == [latency]
    assert lines("Worker Utilisation") == [service.HPA_TARGET_UTILISATION, service.SATURATED_UTILISATION]
    assert f"> {service.SATURATED_UTILISATION}" in alerts["AuraWorkersSaturated"]["expr"]
    [hpa] = [d for d in rendered["base"] if d["kind"] == "HorizontalPodAutoscaler"]
    [metric] = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert metric["pods"]["metric"]["name"] == "gunicorn_worker_utilisation"
    assert metric["pods"]["target"]["averageValue"] == f"{round(service.HPA_TARGET_UTILISATION * 1000)}m"


def test_listen_backlog_limit_is_a_note_not_a_line(dashboards):
    """The limit (hundreds) would flatten a backlog of a few: listed in the legend, not drawn."""
    panel = next(p for p in dashboards["service.json"]["panels"] if p["title"] == "Listen Backlog")
    [override] = panel["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byName", "options": "limit"}
    assert override["properties"][0]["value"]["viz"] is True
    assert panel["options"]["legend"]["calcs"] == ["lastNotNull"]


# --- Runbooks -------------------------------------------------------------------------------


def test_every_alert_links_its_runbook_section(alerts, monitoring):
    text = RUNBOOKS.read_text()
    sections = anchors(text)
    for name, rule in alerts.items():
        url = rule["annotations"].get("runbook_url")
        assert url, f"{name} has no runbook_url"
        base, _, anchor = url.partition("#")
        assert base == monitoring.burn_alerts.RUNBOOK_BASE, name
        assert anchor == name.lower() and anchor in sections, f"docs/runbooks.md has no section {name}"


def test_every_runbook_section_says_what_where_and_what_to_do(alerts, alert_rules):
    text = RUNBOOKS.read_text()
    pipeline = {r["alert"] for g in alert_rules["groups"] if g["name"] == "aura-pipeline" for r in g["rules"]}
    for name in alerts:
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Look first**", "**Do**"):
            assert part in section, (name, part)
        # The exact panel and query to look at. The pipeline's alerts are about Prometheus and
        # Alertmanager, which no Aura dashboard shows: their own pages instead.
        assert "```promql" in section, name
        if name in pipeline:
            assert re.search(r"(Prometheus|Alertmanager)'s (Status|log)", section), name
        else:
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
        expected = "deadmansswitch" if name == "Watchdog" else receivers[severity]
        assert routes_to(amtool, f"alertname={name}", f"severity={severity}", "namespace=aura") == expected, name


def test_watchdog_always_fires_and_reaches_the_dead_mans_switch_often(alerts):
    assert alerts["Watchdog"]["expr"] == "vector(1)" and "for" not in alerts["Watchdog"]
    config = yaml.safe_load(ALERTMANAGER.read_text())
    [route] = [r for r in config["route"]["routes"] if r["receiver"] == "deadmansswitch"]
    assert route["matchers"] == ['alertname="Watchdog"']
    # The switch hears it at least every 5 minutes (repeat_interval), whatever else happens.
    assert route["repeat_interval"] == "5m"
    assert config["route"]["routes"][0] is route, "first: no other route may catch it"


def test_alertmanager_groups_by_namespace_and_alert_and_inhibits_tickets_for_a_page():
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert config["route"]["group_by"] == ["namespace", "alertname"]
    [slo_rule] = [r for r in config["inhibit_rules"] if "slo" in r["equal"]]
    assert 'severity="critical"' in slo_rule["source_matchers"]
    assert 'severity="warning"' in slo_rule["target_matchers"]
    assert set(slo_rule["equal"]) == {"namespace", "job", "slo"}
    # Only alerts that have an slo label take part: an absent label would equal an absent one.
    assert 'slo=~".+"' in slo_rule["source_matchers"] and 'slo=~".+"' in slo_rule["target_matchers"]


def test_pages_of_one_service_share_a_group_and_symptoms_are_inhibited_by_their_cause(alerts):
    """One page per cause: the critical route groups a service's alerts into one incident, and
    a Redis outage's symptoms (the availability burns, AuraHighErrorRate) are inhibited by it;
    the fast burn inhibits the error-rate alert it duplicates. tests/e2e/test_live_alertmanager.py
    runs this on a real Alertmanager."""
    config = yaml.safe_load(ALERTMANAGER.read_text())
    [page] = [r for r in config["route"]["routes"] if r["receiver"] == "page"]
    assert page["group_by"] == ["namespace", "job"]
    by_source = {tuple(r["source_matchers"]): r for r in config["inhibit_rules"]}
    redis = by_source[('alertname="AuraRedisConnectionErrors"',)]
    [targets] = redis["target_matchers"]
    muted = {name for name in alerts if re.fullmatch(re.fullmatch(r'alertname=~"(.*)"', targets).group(1), name)}
    assert muted == {"AuraHighErrorRate"} | {
        f"Aura{s}SLO{b}Burn" for s in ("Availability", "Latency") for b in ("Fast", "Slow")
    }
    assert redis["equal"] == ["namespace", "job"]
    fast = by_source[('alertname="AuraAvailabilitySLOFastBurn"',)]
    assert fast["target_matchers"] == ['alertname="AuraHighErrorRate"'] and fast["equal"] == ["namespace", "job"]
    # The cause reaches Alertmanager first: a shorter `for` than the fast burn's.
    minutes = {name: alerts[name]["for"] for name in ("AuraRedisConnectionErrors", "AuraAvailabilitySLOFastBurn")}
    assert all(v.endswith("m") for v in minutes.values()), minutes
    assert int(minutes["AuraRedisConnectionErrors"][:-1]) < int(minutes["AuraAvailabilitySLOFastBurn"][:-1])


def test_burn_alerts_stay_quiet_after_the_page_for_their_cause(alerts, monitoring):
    """No second page or late ticket when an inhibition lifts: a burn alert is quiet while the
    alert that paged for the cause fires and for its own longest short window after (the time
    the incident's errors take to leave it). alert-rules.test.yml shows it on a Redis outage."""
    for slo in monitoring.slo.SLOS:
        for alert, causes, window in (
            (f"{slo.alert}FastBurn", "AuraRedisConnectionErrors", "30m"),
            (f"{slo.alert}SlowBurn", f"AuraRedisConnectionErrors|{slo.alert}FastBurn", "6h"),
        ):
            expr = alerts[alert]["expr"]
            assert expr.endswith(
                f'unless on (namespace, job)\nmax_over_time(ALERTS{{alertname=~"{causes}", '
                f'alertstate="firing", job="aura"}}[{window}])'
            ), alert


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


def test_demo_override_has_every_alert_with_short_for_and_windows(alerts, build_module, monitoring):
    """make demo loads dashboards/demo-rules.yml: the same alerts, able to fire in minutes."""
    demo = yaml.safe_load(build_module.DEMO_RULES_FILE.read_text())
    demo_alerts = {r["alert"]: r for g in demo["groups"] for r in g["rules"] if "alert" in r}
    assert set(demo_alerts) == set(alerts)
    for name, rule in demo_alerts.items():
        # Alerts without `for:` (they fire at once) stay without it.
        assert rule.get("for") == (monitoring.slo.DEMO_FOR if "for" in alerts[name] else None), name
        assert rule["labels"] == alerts[name]["labels"], name
    for window in re.findall(r"ratio_rate(\d+[smhd])", " ".join(r["expr"] for r in demo_alerts.values())):
        assert window[-1] in "sm", window


def test_demo_loads_the_override_and_says_what_fires():
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert "dashboards/demo-rules.yml" in script
    assert "ALERTS FIRE IN THIS DEMO" in script
    assert "AuraAvailabilitySLOFastBurn" in script and "HighAuthenticationFailureRate" in script
    assert "/alerts" in script and "Alertmanager" in script
