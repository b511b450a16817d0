"""Monitoring as code: writes the Grafana dashboards and the PrometheusRule that k8s/ ships.

    python dashboards/build.py          # regenerate the committed files
    python dashboards/build.py --check  # exit 1 if a committed file differs (tests do this)

Outputs (committed, never edited by hand):

- k8s/monitoring/grafana/dashboards/authentication-metrics.json and workflow-metrics.json:
  the panels of the monitoring spec, with its titles in its order; service.json ("Aura
  service"): traffic, Gunicorn worker saturation, memory and CPU, pools. Uploaded through Grafana's
  Dashboards -> Import (their `__inputs` ask for the Prometheus datasource) and provisioned
  by k8s/monitoring (a datasource variable of the same name, DS_PROMETHEUS, stands in for the
  import input there, defaulting to the default Prometheus datasource).
- k8s/monitoring/operator/prometheusrule.yaml: k8s/monitoring/prometheus/alert-rules.yml
  wrapped for the Prometheus Operator, so both deployments alert on the very same rules.

Standard library only: a generator must not need more than the repository to run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "k8s" / "monitoring" / "grafana" / "dashboards"
RULES_FILE = ROOT / "k8s" / "monitoring" / "prometheus" / "alert-rules.yml"
SLO_RULES_FILE = ROOT / "k8s" / "monitoring" / "prometheus" / "slo-rules.yml"
DEMO_RULES_FILE = ROOT / "dashboards" / "demo-rules.yml"
PROMETHEUS_RULE_FILE = ROOT / "k8s" / "monitoring" / "operator" / "prometheusrule.yaml"

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Grafana's rate window: at least four scrape intervals (the datasource's timeInterval).
RATE_WINDOW = "$__rate_interval"
# The dashboard's whole time range: pie charts show shares over what is on screen.
RANGE_WINDOW = "$__range"
PERCENTILES = (0.5, 0.95, 0.99)
PANEL_WIDTH, PANEL_HEIGHT, GRID_WIDTH = 12, 8, 24


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel as the spec describes it: kind (timeseries, stat or piechart), title, queries."""

    kind: str
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"


# Every panel reads only the series the dashboard's variables select: the job (Aura's jobs are
# the ones exporting aura_build_info), the namespace and the pod. No metric name is read
# unscoped - http_requests_total and the process_* names are generic.
SCOPE = 'job=~"$job", namespace=~"$namespace", pod=~"$pod"'
# SLO panels read recording rules aggregated per namespace and job: pod does not apply there.
SERVICE_SCOPE = 'job=~"$job", namespace=~"$namespace"'


def sel(extra: str = "") -> str:
    """The dashboard's scope as a selector, with extra matchers (e.g. 'status="success"')."""
    return f"{{{SCOPE}, {extra}}}" if extra else f"{{{SCOPE}}}"


def rate_by(metric: str, by: str, selector: str = "") -> str:
    """Per-second rate of a counter, summed over pods, split by the given labels."""
    return f"sum by ({by}) (rate({metric}{selector or sel()}[{RATE_WINDOW}]))"


def quantiles(histogram: str, by: str = "", legend: str = "", selector: str = "") -> tuple[Target, ...]:
    """P50, P95 and P99 of a histogram over all pods, optionally split by labels."""
    group = f"le, {by}" if by else "le"
    prefix = f"{legend} " if legend else ""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket{selector or sel()}[{RATE_WINDOW}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in PERCENTILES
    )


def last_hour(metric: str, selector: str = "") -> tuple[Target, ...]:
    """A counter's increase over the last hour, summed over pods (for "in the last hour" stats)."""
    return (Target(f"sum(increase({metric}{selector or sel()}[1h]))"),)


def shares(metric: str, by: str) -> tuple[Target, ...]:
    """A counter's increase over the dashboard's range, per label value (for pie charts)."""
    return (Target(f"sum by ({by}) (increase({metric}{sel()}[{RANGE_WINDOW}]))", f"{{{{{by}}}}}"),)


# --- The monitoring spec's panels, in its order ----------------------------------------------

AUTHENTICATION_PANELS = (
    Panel(
        "timeseries",
        "Authentication Requests Rate",
        "Rate of authentication requests by endpoint and status.",
        (Target(rate_by("auth_requests_total", "endpoint, status"), "{{endpoint}} {{status}}"),),
        unit="reqps",
    ),
    Panel(
        "timeseries",
        "Authentication Success/Failure Rate",
        "Successful against failed authentication requests, all endpoints together.",
        (Target(rate_by("auth_requests_total", "status"), "{{status}}"),),
        unit="reqps",
    ),
    Panel(
        "stat",
        "User Registrations",
        "Successful user registrations in the last hour.",
        last_hour("user_registrations_total", sel('status="success"')),
    ),
    Panel(
        "timeseries",
        "Token Refreshes",
        "Rate of token refresh requests by outcome.",
        (Target(rate_by("auth_token_refreshes_total", "status"), "{{status}}"),),
        unit="reqps",
    ),
    Panel(
        "piechart",
        "Authentication Failures by Reason",
        "Authentication failures over the selected time range, by reason.",
        shares("auth_failures_total", "reason"),
    ),
    Panel(
        "timeseries",
        "Rate Limit Hits",
        "Requests rejected by the rate limiter, per second, by endpoint.",
        (Target(rate_by("rate_limit_hits_total", "endpoint"), "{{endpoint}}"),),
        unit="reqps",
    ),
    Panel(
        "timeseries",
        "Tokens Issued",
        "Rate of tokens issued by type.",
        (Target(rate_by("tokens_issued_total", "token_type"), "{{token_type}}"),),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Redis Connection Pool Usage",
        "Active and idle Redis connections per logical database, summed over all workers of all pods.",
        (
            Target(f"sum by (database) (redis_connections_active{sel()})", "{{database}} active"),
            Target(f"sum by (database) (redis_connections_idle{sel()})", "{{database}} idle"),
        ),
    ),
)

WORKFLOW_PANELS = (
    Panel(
        "timeseries",
        "Workflow Executions Rate",
        "Rate of workflow executions by type and status.",
        (Target(rate_by("workflow_executions_total", "workflow_type, status"), "{{workflow_type}} {{status}}"),),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Workflow Duration",
        "P50, P95 and P99 workflow duration by workflow type.",
        quantiles("workflow_duration_seconds", by="workflow_type", legend="{{workflow_type}}"),
        unit="s",
    ),
    Panel(
        "stat",
        "Struggle Detections",
        "Struggling users detected in the last hour.",
        last_hour("struggle_detections_total", sel('result="struggling"')),
    ),
    Panel(
        "stat",
        "Lesson Recommendations Generated",
        "Lesson recommendations generated in the last hour.",
        last_hour("lesson_recommendations_generated_total"),
    ),
    Panel(
        "piechart",
        "Struggle Detection Results",
        "Struggling against not struggling, over the selected time range.",
        shares("struggle_detections_total", "result"),
    ),
    Panel(
        "timeseries",
        "Audit Execution Status",
        "Rate of audit executions by status (pass, fail, remediation_required).",
        (Target(rate_by("audit_executions_total", "status"), "{{status}}"),),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Audit Violations Detected",
        "P50, P95 and P99 of the number of violations found per audit.",
        quantiles("audit_violations_detected"),
    ),
    Panel(
        "timeseries",
        "Violations by Type",
        "Rate of violations detected, by violation type.",
        (Target(rate_by("audit_violations_by_type_total", "violation_type"), "{{violation_type}}"),),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Files Processed per Audit",
        "P50, P95 and P99 of the number of files processed per audit.",
        quantiles("audit_files_processed"),
    ),
    Panel(
        "timeseries",
        "Workflow Failures",
        "Rate of workflow failures by workflow type and error type.",
        (Target(rate_by("workflow_failures_total", "workflow_type, error_type"), "{{workflow_type}} {{error_type}}"),),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Struggle Workflow Input Metrics",
        "Distributions of what struggle detection is given: P50, P95 and P99 of the edit "
        "frequency (edits per minute) and of the error count.",
        quantiles("struggle_workflow_edit_frequency", legend="edit frequency")
        + quantiles("struggle_workflow_error_count", legend="error count"),
    ),
)


# --- SLOs: the one place for targets, thresholds and burn-rate windows ------------------------
# Rules are generated from here into k8s/monitoring/prometheus/slo-rules.yml (and, with short
# windows, into the demo's rule override). The shape is the Google SRE workbook's (chapter
# "Alerting on SLOs", multiwindow multi-burn-rate), as Sloth and Pyrra generate it.

JOB = "aura"
ALERT_SCOPE = f'job="{JOB}"'
# Probes and scrapes are not the API: a failing /readyz is Kubernetes' business, and its
# every-5-seconds answers would dominate a quiet service's ratios.
API = 'endpoint!~"/healthz|/readyz|/metrics"'
SLO_PERIOD = "30d"
# Latency threshold: one of http_request_duration_seconds' bucket bounds (HTTP_BUCKETS in
# aura/instrumentation/definitions.py), written as prometheus_client writes the `le` label
# ("1.0", not "1"). 1 s, like AuraHighLatencyP95: login and register hash passwords with
# Argon2 (deliberately slow, ~0.1-0.2 s on an idle core, more on a busy pod).
LATENCY_THRESHOLD_SECONDS = "1.0"
# No burn-rate alert while the short window saw fewer API requests per second than this: a
# handful of requests (3 failures out of 20 at night) must not page anyone.
MIN_REQUESTS_PER_SECOND = 0.1
RUNBOOK_BASE = "https://git.example.com/aura/aura-backend/blob/main/docs/runbooks.md"


@dataclass(frozen=True)
class SLO:
    """One service level objective: the share of good API requests over SLO_PERIOD."""

    name: str  # availability, latency: in rule names and the `slo` label
    objective: float  # e.g. 0.995: 0.5% of requests may be bad over SLO_PERIOD
    good: str  # what a good request is, for humans
    bad: str  # and a bad one
    alert: str  # alert name prefix

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 6)


SLOS = (
    SLO(
        "availability",
        0.995,
        "answered without a 5xx (probes and scrapes excluded)",
        "answered with a 5xx",
        "AuraAvailabilitySLO",
    ),
    SLO(
        "latency",
        0.99,
        f"answered within {LATENCY_THRESHOLD_SECONDS} s (time in the worker)",
        f"slower than {LATENCY_THRESHOLD_SECONDS} s",
        "AuraLatencySLO",
    ),
)


@dataclass(frozen=True)
class BurnAlert:
    """Two window pairs whose burn rates must both exceed the factor (SRE workbook, table 5-8)."""

    speed: str  # fast (pages) or slow (opens a ticket)
    severity: str  # critical pages, warning is a ticket
    pairs: tuple[tuple[str, str, float], ...]  # (long window, short window, burn factor)
    for_: str


# A 30-day budget: 14.4x for 1 h spends 2% of it, 6x for 6 h 5%, 3x for 1 d 10%, 1x for 3 d 10%.
BURN_ALERTS = (
    BurnAlert("fast", "critical", (("1h", "5m", 14.4), ("6h", "30m", 6.0)), "2m"),
    BurnAlert("slow", "warning", (("1d", "2h", 3.0), ("3d", "6h", 1.0)), "15m"),
)
# The demo's override: the same rules on windows 30-720 times shorter, so a breach fires within
# the demo's minutes (make demo, and the live Alertmanager test). Never deployed.
DEMO_WINDOWS = {"1h": "2m", "5m": "20s", "6h": "4m", "30m": "1m", "1d": "6m", "2h": "2m", "3d": "10m"}
DEMO_FOR = "10s"


def _windows(profile: dict[str, str] | None) -> list[str]:
    """Every window the rules record: the burn-rate windows, plus those alerts and panels read."""
    names = {w for alert in BURN_ALERTS for pair in alert.pairs for w in pair[:2]}
    # 5m: AuraHighErrorRate and the budget panels; 1h: the burn-rate panel (the demo too).
    mapped = {profile.get(w, w) if profile else w for w in names} | {"5m", "1h"}
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sorted(mapped, key=lambda w: int(w[:-1]) * seconds[w[-1]])


SERVER_ERROR = 'status_code=~"5.."'
FAST = f'le="{LATENCY_THRESHOLD_SECONDS}"'


def api_selector(extra: str = "") -> str:
    inner = f"{ALERT_SCOPE}, {API}" + (f", {extra}" if extra else "")
    return f"{{{inner}}}"


def recording_rules(window: str) -> list[tuple[str, str]]:
    """(record, expr) for one window: API request, error and slow-request rates, SLO ratios."""
    by = "sum by (namespace, job)"
    requests = f"namespace_job:aura_api_requests:rate{window}"
    errors = f"namespace_job:aura_api_server_errors:rate{window}"
    timed = f"namespace_job:aura_api_timed_requests:rate{window}"
    slow = f"namespace_job:aura_api_slow_requests:rate{window}"
    scope = f"{{{ALERT_SCOPE}}}"
    return [
        (requests, f"{by} (rate(http_requests_total{api_selector()}[{window}]))"),
        # `or 0 * ...`: a service without any 5xx has a 0 ratio, not no data.
        (
            errors,
            f"{by} (rate(http_requests_total{api_selector(SERVER_ERROR)}[{window}]))"
            f" or 0 * {by} (rate(http_requests_total{api_selector()}[{window}]))",
        ),
        (timed, f"{by} (rate(http_request_duration_seconds_count{api_selector()}[{window}]))"),
        (
            slow,
            f"{by} (rate(http_request_duration_seconds_count{api_selector()}[{window}]))"
            f" - {by} (rate(http_request_duration_seconds_bucket{api_selector(FAST)}[{window}]))",
        ),
        (f"namespace_job:aura_slo_availability_errors:ratio_rate{window}", f"{errors}{scope} / {requests}{scope}"),
        (f"namespace_job:aura_slo_latency_errors:ratio_rate{window}", f"{slow}{scope} / {timed}{scope}"),
    ]


def burn_alert_expr(slo: SLO, alert: BurnAlert, profile: dict[str, str] | None) -> str:
    """(long > f*budget and short > f*budget and short-window traffic >= floor) or (...).

    The floor reads the short window: rate() over a long window divides by the whole window,
    so on a service younger than it (a new namespace, a fresh Prometheus) the long-window rate
    understates the traffic the alert is judging.
    """
    scope = f"{{{ALERT_SCOPE}}}"
    parts = []
    for long, short, factor in alert.pairs:
        long_w, short_w = (profile.get(long, long), profile.get(short, short)) if profile else (long, short)
        threshold = f"({factor} * {slo.budget})"
        parts.append(
            f"(\n  namespace_job:aura_slo_{slo.name}_errors:ratio_rate{long_w}{scope} > {threshold}\n"
            f"  and namespace_job:aura_slo_{slo.name}_errors:ratio_rate{short_w}{scope} > {threshold}\n"
            f"  and on (namespace, job) namespace_job:aura_api_requests:rate{short_w}{scope}"
            f" >= {MIN_REQUESTS_PER_SECOND}\n)"
        )
    return "\nor\n".join(parts)


def runbook_url(alert_name: str) -> str:
    return f"{RUNBOOK_BASE}#{alert_name.lower()}"


def burn_alerts(profile: dict[str, str] | None) -> list[dict]:
    out = []
    for slo in SLOS:
        for alert in BURN_ALERTS:
            name = f"{slo.alert}{alert.speed.capitalize()}Burn"
            windows = " and ".join(
                f"{profile.get(lw, lw) if profile else lw}/{profile.get(sw, sw) if profile else sw}"
                for lw, sw, _ in alert.pairs
            )
            out.append(
                {
                    "alert": name,
                    "expr": burn_alert_expr(slo, alert, profile),
                    "for": DEMO_FOR if profile else alert.for_,
                    "labels": {"severity": alert.severity, "slo": slo.name, "burn": alert.speed},
                    "annotations": {
                        "summary": f"Aura {slo.name} SLO: error budget burning "
                        f"{'fast (page)' if alert.speed == 'fast' else 'slowly (ticket)'}",
                        "description": (
                            f"{{{{ $labels.namespace }}}}: {{{{ $value | humanizePercentage }}}} of API "
                            f"requests were {slo.bad} over the long window ({windows}); the SLO "
                            f"allows {slo.budget:.2%} over {SLO_PERIOD}. At this rate the budget is "
                            f"gone in {'days' if alert.speed == 'fast' else 'weeks'}."
                        ),
                        "runbook_url": runbook_url(name),
                    },
                }
            )
    return out


def auth_recording_rules() -> list[tuple[str, str]]:
    return [
        (
            "namespace_job_status:auth_requests:rate5m",
            f"sum by (namespace, job, status) (rate(auth_requests_total{{{ALERT_SCOPE}}}[5m]))",
        ),
        (
            "namespace_job_le:aura_api_request_duration_seconds_bucket:rate5m",
            f"sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{api_selector()}[5m]))",
        ),
    ]


def _yaml_scalar(value) -> str:
    """A YAML single-quoted scalar (PromQL is full of double quotes, never of single ones)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


def _yaml_rule(rule: dict) -> str:
    lines = []
    first = True
    for key in ("record", "alert", "expr", "for", "labels", "annotations"):
        if key not in rule:
            continue
        prefix = "      - " if first else "        "
        first = False
        value = rule[key]
        if key == "expr" and "\n" in value:
            lines.append(f"{prefix}expr: |-")
            lines += [f"          {line}" for line in value.splitlines()]
        elif isinstance(value, dict):
            lines.append(f"{prefix}{key}:")
            lines += [f"          {k}: {_yaml_scalar(v)}" for k, v in value.items()]
        else:
            lines.append(f"{prefix}{key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


SLO_RULES_HEADER = """\
# GENERATED by dashboards/build.py - do not edit: the SLO targets, latency threshold, burn-rate
# windows and traffic floor are constants there. Recording rules (level:metric:operations) for
# the API's request, 5xx and slow-request rates and the two SLOs' error ratios per window, the
# auth and latency aggregates alert-rules.yml reads, and the multiwindow, multi-burn-rate
# alerts (fast burn pages, slow burn opens a ticket). Tests: alert-rules.test.yml.
"""

DEMO_RULES_HEADER = """\
# GENERATED by dashboards/build.py - do not edit. `make demo`'s rule override, NEVER deployed:
# every rule of alert-rules.yml and slo-rules.yml, with the burn-rate windows shortened
# ({windows}) and every `for:` set to {for_}, so alerts fire within the demo's minutes.
"""


def render_slo_rules(profile: dict[str, str] | None = None) -> str:
    """The recording rules and burn-rate alerts as a rule file's groups (without `groups:`)."""
    out = ["  - name: aura-slo-recording\n", "    rules:\n"]
    for window in _windows(profile):
        out += [_yaml_rule({"record": r, "expr": e}) for r, e in recording_rules(window)]
    out += [_yaml_rule({"record": r, "expr": e}) for r, e in auth_recording_rules()]
    out += ["\n  - name: aura-slo-alerts\n", "    rules:\n"]
    out += [_yaml_rule(a) for a in burn_alerts(profile)]
    return "".join(out)


def render_demo_rules(alert_rules_text: str) -> str:
    """alert-rules.yml with short `for:` and the SLO rules on short windows, in one file."""
    body = alert_rules_text.split("\ngroups:\n", 1)[1]
    body = re.sub(r"^(\s+for: ).*$", rf"\g<1>{DEMO_FOR}", body, flags=re.M)
    windows = ", ".join(f"{k}->{v}" for k, v in DEMO_WINDOWS.items())
    return (
        DEMO_RULES_HEADER.format(windows=windows, for_=DEMO_FOR)
        + "groups:\n"
        + body
        + "\n"
        + render_slo_rules(DEMO_WINDOWS)
    )


def budget_remaining(slo: SLO) -> str:
    """Share of the SLO period's error budget left: 1 - (error ratio over the period / budget).

    The average of the 5m ratio over the period, as Sloth does: cheap, and it has data from
    the first evaluation on (a fresh Prometheus shows the budget of what it has seen).
    """
    return (
        f"1 - (avg_over_time(namespace_job:aura_slo_{slo.name}_errors:ratio_rate5m"
        f"{{{SERVICE_SCOPE}}}[{SLO_PERIOD}]) / {slo.budget})"
    )


SLO_PANELS = tuple(
    Panel(
        "timeseries",
        f"{slo.name.capitalize()} SLO Error Budget Remaining",
        f"Share of the {SLO_PERIOD} error budget left for the {slo.name} SLO "
        f"({slo.objective:.1%} of API requests {slo.good}), per namespace and job: 1 is "
        f"untouched, 0 spent, below 0 overspent. Recording rule "
        f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate5m (pod does not apply).",
        (Target(budget_remaining(slo), "{{namespace}} {{job}}"),),
        unit="percentunit",
    )
    for slo in SLOS
) + (
    Panel(
        "timeseries",
        "SLO Burn Rate",
        "How fast each SLO spends its budget over the fast-burn windows (1 h and 5 m): 1 "
        "spends it exactly over the period, 14.4 pages (with 5 m above it too).",
        tuple(
            Target(
                f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate{w}{{{SERVICE_SCOPE}}} / {slo.budget}",
                f"{slo.name} {w}",
            )
            for slo in SLOS
            for w in ("1h", "5m")
        ),
    ),
)


# --- The service dashboard: how each pod's Gunicorn copes with its traffic ---------------------
# Not from the spec (which has the two dashboards above): what an operator looks at when the
# API is slow or failing. Every selector is the dashboard's scope: the process_* and gunicorn_*
# names are generic, and Prometheus's own process_* series (job="prometheus") must not mix in.

AURA = sel()


def aura(selector: str = "") -> str:
    """The dashboard's scope, with extra matchers (e.g. 'reason="timeout"')."""
    return sel(selector)


def utilisation(by: str = "") -> str:
    """Busy worker-seconds per second over live workers: 0 idle, 1 every worker always busy.

    Both sides are summed before dividing, so the ratio is the pool's (per pod with by="pod",
    the whole service without), not an average of per-worker ratios.
    """
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (rate(gunicorn_worker_busy_seconds_total{AURA}[{RATE_WINDOW}]))"
        f" / sum{group} (gunicorn_workers{AURA})"
    )


def error_ratio_by_endpoint() -> str:
    """5xx responses over all responses per route; `or 0 * ...` gives routes without 5xx a 0."""
    server_errors = rate_by("http_requests_total", "endpoint", aura('status_code=~"5.."'))
    everything = rate_by("http_requests_total", "endpoint", AURA)
    return f"({server_errors} or 0 * {everything}) / {everything}"


SERVICE_PANELS = (
    Panel(
        "timeseries",
        "Request Rate by Endpoint",
        "HTTP requests per second by matched route, all pods.",
        (Target(rate_by("http_requests_total", "endpoint", AURA), "{{endpoint}}"),),
        unit="reqps",
    ),
    Panel(
        "timeseries",
        "Server Error Ratio by Endpoint",
        "Share of each route's responses that are 5xx, all pods (0 for routes without any: "
        "a line at zero rather than no data).",
        (Target(error_ratio_by_endpoint(), "{{endpoint}}"),),
        unit="percentunit",
    ),
    Panel(
        "timeseries",
        "Request Latency",
        "P50, P95 and P99 request duration over all routes and pods (time in the worker; "
        "the wait before it is under Queue Time).",
        quantiles("http_request_duration_seconds", selector=AURA),
        unit="s",
    ),
    Panel(
        "timeseries",
        "Request Latency p95 by Endpoint",
        "95th percentile request duration per route, all pods.",
        (
            Target(
                f"histogram_quantile(0.95, sum by (le, endpoint) "
                f"(rate(http_request_duration_seconds_bucket{AURA}[{RATE_WINDOW}])))",
                "{{endpoint}}",
            ),
        ),
        unit="s",
    ),
    Panel(
        "timeseries",
        "Worker Utilisation",
        "Share of worker time spent handling requests: busy seconds per second over live "
        "workers, per pod and for the service. Near 1, new requests wait for a worker "
        "(see Listen Backlog and Queue Time); the HPA adds pods above 0.7.",
        (Target(utilisation("pod"), "{{pod}}"), Target(utilisation(), "all pods")),
        unit="percentunit",
    ),
    Panel(
        "timeseries",
        "Busy and Live Workers",
        "Workers handling a request at scrape time, and workers alive, per pod.",
        (
            Target(f"sum by (pod) (gunicorn_workers_busy{AURA})", "{{pod}} busy"),
            Target(f"sum by (pod) (gunicorn_workers{AURA})", "{{pod}} alive"),
        ),
    ),
    Panel(
        "timeseries",
        "Listen Backlog",
        "Connections accepted by the kernel and waiting for a free worker, per pod, and the "
        "backlog's size: connections beyond it are refused.",
        (
            Target(f"sum by (pod) (gunicorn_listen_backlog{AURA})", "{{pod}}"),
            Target(f"max(gunicorn_listen_backlog_limit{AURA})", "limit"),
        ),
    ),
    Panel(
        "timeseries",
        "Queue Time",
        "P50, P95 and P99 of the time from the proxy's X-Request-Start to a worker starting "
        "the request: what clients wait on top of Request Latency.",
        quantiles("http_request_queue_seconds", selector=AURA),
        unit="s",
    ),
    Panel(
        "timeseries",
        "Worker Exits by Reason",
        "Gunicorn workers ending, per minute, by reason: max_requests (planned recycling), "
        "timeout (killed after GUNICORN_TIMEOUT), crash, shutdown.",
        (Target(f"sum by (reason) (rate(gunicorn_worker_exits_total{AURA}[{RATE_WINDOW}])) * 60", "{{reason}}"),),
        unit="opm",
    ),
    Panel(
        "timeseries",
        "Memory per Pod",
        "Each pod's memory (the sum of its processes' PSS, so shared pages count once) and "
        "its largest live worker's unique memory (USS: what that worker alone holds).",
        (
            Target(f"sum by (pod) (process_resident_memory_bytes{AURA})", "{{pod}} total (PSS)"),
            Target(f"max by (pod) (aura_worker_unique_memory_bytes_max{AURA})", "{{pod}} largest worker (USS)"),
        ),
        unit="bytes",
    ),
    Panel(
        "timeseries",
        "CPU per Pod",
        "CPU seconds per second (cores) used by each pod's Gunicorn, master and workers "
        "together, exited workers included.",
        (Target(f"sum by (pod) (rate(process_cpu_seconds_total{AURA}[{RATE_WINDOW}]))", "{{pod}}"),),
    ),
    Panel(
        "timeseries",
        "Open File Descriptors",
        "File descriptors open in each pod's Gunicorn processes (sockets, metric files, pool connections).",
        (Target(f"sum by (pod) (process_open_fds{AURA})", "{{pod}}"),),
    ),
    Panel(
        "timeseries",
        "Connection Pools",
        "Redis connections per logical database and SQL connections, active and idle, summed "
        "over all workers of all pods.",
        (
            Target(f"sum by (database) (redis_connections_active{AURA})", "redis {{database}} active"),
            Target(f"sum by (database) (redis_connections_idle{AURA})", "redis {{database}} idle"),
            Target(f"sum(database_connections_active{AURA})", "database active"),
            Target(f"sum(database_connections_idle{AURA})", "database idle"),
        ),
    ),
    Panel(
        "timeseries",
        "Database Query Latency",
        "P50, P95 and P99 SQL statement duration by operation.",
        quantiles("database_query_duration_seconds", by="operation", legend="{{operation}}", selector=AURA),
        unit="s",
    ),
    Panel(
        "timeseries",
        "Redis Errors",
        "Redis errors per second by logical database and kind, and a zero line per database "
        "(the counter has no series until a first error). Token checks fail closed, so "
        "logins and refreshes answer 503 while errors persist.",
        (
            Target(
                f"{rate_by('redis_connection_errors_total', 'database, error_type', AURA)}"
                f" or 0 * sum by (database) (redis_connections_active{AURA})",
                "{{database}} {{error_type}}",
            ),
        ),
        unit="ops",
    ),
) + SLO_PANELS


@dataclass(frozen=True)
class Dashboard:
    """One dashboard file."""

    filename: str
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


DASHBOARDS = (
    Dashboard(
        "authentication-metrics.json",
        "aura-authentication",
        "Authentication Metrics",
        "Aura authentication: requests, token operations, rate limiting, Redis connections.",
        AUTHENTICATION_PANELS,
    ),
    Dashboard(
        "workflow-metrics.json",
        "aura-workflows",
        "Workflow Metrics",
        "Aura LangGraph workflows: executions, struggle detection, code audit results.",
        WORKFLOW_PANELS,
    ),
    Dashboard(
        "service.json",
        "aura-service",
        "Aura service",
        "Aura's Gunicorn pods: traffic, errors, latency, worker saturation and queueing, "
        "worker exits, memory, CPU, connection pools, database and Redis.",
        SERVICE_PANELS,
    ),
)


# --- Grafana JSON ------------------------------------------------------------------------------


def _target_json(target: Target, ref_id: str, instant: bool) -> dict:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": target.expr,
        "instant": instant,
        "legendFormat": target.legend or "__auto",
        "range": not instant,
        "refId": ref_id,
    }


def _field_config(panel: Panel) -> dict:
    if panel.kind == "timeseries":
        defaults = {
            "color": {"mode": "palette-classic"},
            "custom": {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": False,
            },
            "min": 0,
            "unit": panel.unit,
        }
    elif panel.kind == "stat":
        # A counter nobody has incremented yet has no series: show 0, not "No data".
        defaults = {
            "color": {"mode": "thresholds"},
            "decimals": 0,
            "noValue": "0",
            "thresholds": {"mode": "absolute", "steps": [{"color": "blue", "value": None}]},
            "unit": panel.unit,
        }
    else:
        defaults = {"color": {"mode": "palette-classic"}, "decimals": 0, "unit": panel.unit}
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict:
    reduce_last = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "timeseries":
        return {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce_last,
            "textMode": "auto",
        }
    return {
        "displayLabels": ["percent"],
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"]},
        "pieType": "pie",
        "reduceOptions": reduce_last,
        "tooltip": {"mode": "single", "sort": "none"},
    }


def _panel_json(panel: Panel, index: int) -> dict:
    per_row = GRID_WIDTH // PANEL_WIDTH
    # Stats and pie charts show one value per series: an instant query at the range's end.
    instant = panel.kind in ("stat", "piechart")
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": _field_config(panel),
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % per_row) * PANEL_WIDTH,
            "y": (index // per_row) * PANEL_HEIGHT,
        },
        "id": index + 1,
        "options": _options(panel),
        "targets": [_target_json(t, chr(ord("A") + i), instant) for i, t in enumerate(panel.targets)],
        "title": panel.title,
        "type": panel.kind,
    }


# namespace, job and pod: multi-select with All, each listing what the one before allows.
# Aura's jobs are the ones whose targets export aura_build_info (always 1, one series per pod),
# so "All" jobs is every Aura job and nothing else. No custom allValue: All is the regex of the
# listed values, never `.*`.
VARIABLES = (
    ("namespace", "Namespace", "label_values(aura_build_info, namespace)"),
    ("job", "Job", 'label_values(aura_build_info{namespace=~"$namespace"}, job)'),
    ("pod", "Pod", 'label_values(aura_build_info{namespace=~"$namespace", job=~"$job"}, pod)'),
)


def _query_variable(name: str, label: str, query: str) -> dict:
    return {
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def dashboard_json(dashboard: Dashboard) -> dict:
    """The dashboard in Grafana's export format ("Export for sharing externally")."""
    kinds = sorted({p.kind for p in dashboard.panels})
    panel_names = {"piechart": "Pie chart", "stat": "Stat", "timeseries": "Time series"}
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the Aura pods",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": panel_names[kind], "version": ""} for kind in kinds),
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": dashboard.description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": [_panel_json(p, i) for i, p in enumerate(dashboard.panels)],
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["aura"],
        "templating": {
            "list": [
                {
                    # Resolves ${DS_PROMETHEUS} when the file is provisioned rather than imported.
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "label": "Datasource",
                    "multi": False,
                    "name": "DS_PROMETHEUS",
                    "options": [],
                    "query": "prometheus",
                    "refresh": 1,
                    "regex": "",
                    "type": "datasource",
                },
                *(_query_variable(name, label, query) for name, label, query in VARIABLES),
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
        "weekStart": "",
    }


def render_dashboard(dashboard: Dashboard) -> str:
    """The file's exact text: stable key order and indentation, so diffs stay reviewable."""
    return json.dumps(dashboard_json(dashboard), indent=2) + "\n"


# --- PrometheusRule ----------------------------------------------------------------------------

PROMETHEUS_RULE_HEADER = """\
# GENERATED by dashboards/build.py from k8s/monitoring/prometheus/alert-rules.yml and
# slo-rules.yml - do not edit: change alert-rules.yml (or the SLO constants in build.py) and run
# `python dashboards/build.py`. The rules are the same ones the plain Prometheus of
# k8s/monitoring loads; tests/deploy checks both ways.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: aura
  namespace: aura
  labels:
    app.kubernetes.io/name: aura
    app.kubernetes.io/part-of: aura-monitoring
spec:
"""


def render_prometheus_rule(rules_text: str, slo_rules_text: str) -> str:
    """alert-rules.yml then slo-rules.yml, from their `groups:` line on, indented under `spec:`."""
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    slo_lines = slo_rules_text.split("\ngroups:\n", 1)[1].splitlines()
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[start:] + [""] + slo_lines)
    return PROMETHEUS_RULE_HEADER + body


# --- Entry point -------------------------------------------------------------------------------


def outputs() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files = {DASHBOARD_DIR / d.filename: render_dashboard(d) for d in DASHBOARDS}
    slo_rules = SLO_RULES_HEADER + "groups:\n" + render_slo_rules()
    files[SLO_RULES_FILE] = slo_rules
    files[PROMETHEUS_RULE_FILE] = render_prometheus_rule(RULES_FILE.read_text(), slo_rules)
    files[DEMO_RULES_FILE] = render_demo_rules(RULES_FILE.read_text())
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
