"""The recording rules of slo-rules.yml (level:metric:operations): the API's request, 5xx and
slow-request rates and the two SLOs' error ratios per window, the SLO period's, and the auth
and latency aggregates alert-rules.yml reads."""

from __future__ import annotations

from .slo import ALERT_SCOPE, API, BURN_ALERTS, LATENCY_THRESHOLD_SECONDS, SLO_PERIOD, Profile, in_profile, seconds

SERVER_ERROR = 'status_code=~"5.."'
FAST = f'le="{LATENCY_THRESHOLD_SECONDS}"'


def rule_windows(profile: Profile) -> list[str]:
    """Every window the rules record: the burn-rate windows, plus those alerts and panels read."""
    names = {w for alert in BURN_ALERTS for pair in alert.pairs for w in pair[:2]}
    # 5m: AuraHighErrorRate and the budget panels; 1h: the burn-rate panel (the demo too).
    mapped = {in_profile(w, profile) for w in names} | {"5m", "1h"}
    return sorted(mapped, key=seconds)


def api_selector(extra: str = "") -> str:
    """Aura's API requests (probes and scrapes excluded), with extra matchers."""
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
        # `> 0`: a window without API traffic has no ratio (absent), never 0/0 = NaN.
        (
            f"namespace_job:aura_slo_availability_errors:ratio_rate{window}",
            f"{errors}{scope} / ({requests}{scope} > 0)",
        ),
        (f"namespace_job:aura_slo_latency_errors:ratio_rate{window}", f"{slow}{scope} / ({timed}{scope} > 0)"),
    ]


def period_rules() -> list[tuple[str, str]]:
    """The SLO period's rates and ratios, for the error budget: counts over the whole period.

    The average over SLO_PERIOD of a recorded 5m rate is the period's mean rate (its count over
    its length), so the ratio of two of them is the period's bad requests over its requests:
    weighted by traffic, a quiet bad hour weighing what its few requests weigh. An idle slice
    records 0 requests and 0 errors (never NaN), so it adds nothing; errors:rate5m exists
    wherever requests:rate5m does (`or 0 *`), so both averages cover the same slices. Pyrra
    takes increase() of the raw counters over the period instead; this reads one recorded
    series per namespace and job.
    """
    scope = f"{{{ALERT_SCOPE}}}"
    out = []
    for name in ("requests", "server_errors", "timed_requests", "slow_requests"):
        out.append(
            (
                f"namespace_job:aura_api_{name}:rate{SLO_PERIOD}",
                f"avg_over_time(namespace_job:aura_api_{name}:rate5m{scope}[{SLO_PERIOD}])",
            )
        )
    return out + [
        (
            f"namespace_job:aura_slo_availability_errors:ratio_rate{SLO_PERIOD}",
            f"namespace_job:aura_api_server_errors:rate{SLO_PERIOD}{scope}"
            f" / (namespace_job:aura_api_requests:rate{SLO_PERIOD}{scope} > 0)",
        ),
        (
            f"namespace_job:aura_slo_latency_errors:ratio_rate{SLO_PERIOD}",
            f"namespace_job:aura_api_slow_requests:rate{SLO_PERIOD}{scope}"
            f" / (namespace_job:aura_api_timed_requests:rate{SLO_PERIOD}{scope} > 0)",
        ),
    ]


def auth_recording_rules() -> list[tuple[str, str]]:
    """The aggregates alert-rules.yml reads: auth requests by status, API latency buckets."""
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
