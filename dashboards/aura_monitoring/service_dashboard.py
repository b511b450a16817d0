"""The "Aura service" dashboard: how each pod's Gunicorn copes with its traffic, and the SLOs.

Not from the spec (which has the authentication and workflow dashboards): what an operator
looks at when the API is slow or failing - traffic, errors, latency, worker saturation and
queueing, worker exits, memory, CPU, connection pools, database and Redis, then the SLOs' error
budgets and burn rates. Every selector is the dashboard's scope: the process_* and gunicorn_*
names are generic, and Prometheus's own process_* series (job="prometheus") must not mix in.
"""

from __future__ import annotations

from .panels import RATE_WINDOW, SERVICE_SCOPE, Dashboard, Panel, Target, quantiles, rate_by, rates, sel
from .slo import BURN_ALERTS, LATENCY_THRESHOLD_SECONDS, SLO, SLO_PERIOD, SLOS, BurnAlert

# Every selector of this dashboard: its namespace, job and pod variables (panels.SCOPE).
AURA = sel()
# Marks on the Worker Utilisation panel: the HPA's target (averageValue 700m in
# k8s/base/hpa.yaml) and AuraWorkersSaturated's threshold (alert-rules.yml); tests/deploy checks
# both against their sources.
HPA_TARGET_UTILISATION = 0.7
SATURATED_UTILISATION = 0.9


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
    server_errors = rate_by("http_requests_total", "endpoint", sel('status_code=~"5.."'))
    everything = rate_by("http_requests_total", "endpoint", AURA)
    return f"({server_errors} or 0 * {everything}) / {everything}"


# --- The SLOs: error budget left and burn rate -------------------------------------------------


def budget_remaining(slo: SLO) -> str:
    """Share of the SLO period's error budget left: 1 - (bad share of the period / budget).

    From the period's recorded counts (recording_rules.period_rules): weighted by traffic, and a number
    whatever idled. A period without a single API request has spent nothing: 1.
    """
    scope = f"{{{SERVICE_SCOPE}}}"
    return (
        f"1 - (namespace_job:aura_slo_{slo.name}_errors:ratio_rate{SLO_PERIOD}{scope} / {slo.budget})"
        f" or on (namespace, job) (0 * namespace_job:aura_api_requests:rate{SLO_PERIOD}{scope} + 1)"
    )


def burn_rate_panel(title: str, alert: BurnAlert, pair: int) -> Panel:
    """Both SLOs' burn rate over one window pair of an alert, the pair's factor as a line."""
    long, short, factor = alert.pairs[pair]
    return Panel(
        "timeseries",
        title,
        f"How fast each SLO spends its budget over {long} and {short}: 1 spends it exactly over "
        f"{SLO_PERIOD}; the {alert.speed} burn alert fires when both windows are above {factor:g} "
        f"(the line). No line while a window saw no API request: an idle window burns nothing.",
        tuple(
            Target(
                f"namespace_job:aura_slo_{slo.name}_errors:ratio_rate{w}{{{SERVICE_SCOPE}}} / {slo.budget}",
                f"{slo.name} {w}",
            )
            for slo in SLOS
            for w in (long, short)
        ),
        thresholds=(factor,),
    )


SLO_PANELS = tuple(
    Panel(
        "timeseries",
        f"{slo.name.capitalize()} SLO Error Budget Remaining",
        f"Share of the {SLO_PERIOD} error budget left for the {slo.name} SLO "
        f"({slo.objective:.1%} of API requests {slo.good}), per namespace and job: 1 is "
        f"untouched, 0 spent, below 0 overspent. Bad requests over all requests of the period "
        f"(recording rule namespace_job:aura_slo_{slo.name}_errors:ratio_rate{SLO_PERIOD}), so "
        f"each hour weighs by its traffic and idle time spends nothing.",
        (Target(budget_remaining(slo), "{{namespace}} {{job}}"),),
        unit="percentunit",
        thresholds=(0,),
    )
    for slo in SLOS
) + (
    burn_rate_panel("SLO Burn Rate", BURN_ALERTS[0], 0),
    burn_rate_panel("SLO Burn Rate 6h/30m", BURN_ALERTS[0], 1),
)


SERVICE_PANELS = (
    Panel(
        "timeseries",
        "Request Rate by Endpoint",
        "HTTP requests per second by matched route, all pods.",
        rates("http_requests_total", "endpoint", AURA),
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
        quantiles("http_request_duration_seconds", selector=AURA, exemplar=True),
        unit="s",
        thresholds=(float(LATENCY_THRESHOLD_SECONDS),),
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
                exemplar=True,
            ),
        ),
        unit="s",
        thresholds=(float(LATENCY_THRESHOLD_SECONDS),),
    ),
    Panel(
        "timeseries",
        "Worker Utilisation",
        "Share of worker time spent handling requests: busy seconds per second over live "
        "workers, per pod and for the service. Near 1, new requests wait for a worker "
        "(see Listen Backlog and Queue Time); the HPA adds pods above 0.7.",
        (Target(utilisation("pod"), "{{pod}}"), Target(utilisation(), "all pods")),
        unit="percentunit",
        thresholds=(HPA_TARGET_UTILISATION, SATURATED_UTILISATION),
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
        "Connections accepted by the kernel and waiting for a free worker, per pod, on their "
        "own axis; the backlog's size is in the legend (not drawn: it is hundreds of times "
        "the usual backlog): connections beyond it are refused and counted by "
        "gunicorn_listen_overflows_total (AuraListenQueueOverflows).",
        (
            Target(f"sum by (pod) (gunicorn_listen_backlog{AURA})", "{{pod}}"),
            Target(f"max(gunicorn_listen_backlog_limit{AURA})", "limit"),
        ),
        notes=("limit",),
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


DASHBOARD = Dashboard(
    "service.json",
    "aura-service",
    "Aura service",
    "Aura's Gunicorn pods: traffic, errors, latency, worker saturation and queueing, "
    "worker exits, memory, CPU, connection pools, database and Redis.",
    SERVICE_PANELS,
)
