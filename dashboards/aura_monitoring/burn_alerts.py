"""The SLO burn-rate alerts of slo-rules.yml: multiwindow, multi-burn-rate (fast burn pages,
slow burn opens a ticket), quiet while an alert for their cause pages."""

from __future__ import annotations

from typing import Any

from .slo import (
    ALERT_SCOPE,
    BURN_ALERTS,
    DEMO_FOR,
    DEPENDENCY_ALERTS,
    MIN_REQUESTS_PER_SECOND,
    SLO,
    SLO_PERIOD,
    SLOS,
    BurnAlert,
    Profile,
    in_profile,
    longest,
)

# Where every alert's runbook_url points (docs/runbooks.md, one section per alert): point it at
# where your copy of the repository is browsable.
RUNBOOK_BASE = "https://git.example.com/aura/aura-backend/blob/main/docs/runbooks.md"


def quieted_by(slo: SLO, alert: BurnAlert) -> tuple[str, ...]:
    """The alerts whose firing (now or within the burn alert's longest short window) keeps a
    burn alert quiet: the cause's alerts, and for a slow burn its SLO's fast burn as well."""
    fast = (f"{slo.alert}FastBurn",) if alert.speed == "slow" else ()
    return DEPENDENCY_ALERTS + fast


def burn_alert_expr(slo: SLO, alert: BurnAlert, profile: Profile) -> str:
    """(long > f*budget and short > f*budget and short-window traffic >= floor) or (...),
    unless an alert that already paged for the cause fired within the longest short window.

    The floor reads the short window: rate() over a long window divides by the whole window,
    so on a service younger than it (a new namespace, a fresh Prometheus) the long-window rate
    understates the traffic the alert is judging.

    The `unless`: the page for a cause covers the incident, and the incident's errors keep the
    burn windows above their factors after recovery - the slow burn's for hours. Without it,
    the slow-burn ticket went out after the incident, when the page resolved and Alertmanager's
    inhibition lifted, and a Redis outage paged again through the fast burn once the Redis
    alert had resolved. Prometheus's ALERTS series is what remembers that an alert fired.
    """
    scope = f"{{{ALERT_SCOPE}}}"

    def window(w: str) -> str:
        return in_profile(w, profile)

    parts = []
    for long, short, factor in alert.pairs:
        threshold = f"({factor} * {slo.budget})"
        parts.append(
            f"(\n  namespace_job:aura_slo_{slo.name}_errors:ratio_rate{window(long)}{scope} > {threshold}\n"
            f"  and namespace_job:aura_slo_{slo.name}_errors:ratio_rate{window(short)}{scope} > {threshold}\n"
            f"  and on (namespace, job) namespace_job:aura_api_requests:rate{window(short)}{scope}"
            f" >= {MIN_REQUESTS_PER_SECOND}\n)"
        )
    causes = "|".join(quieted_by(slo, alert))
    quiet = window(longest(short for _, short, _ in alert.pairs))
    fired = f'ALERTS{{alertname=~"{causes}", alertstate="firing", {ALERT_SCOPE}}}'
    return "(\n" + "\nor\n".join(parts) + f"\n)\nunless on (namespace, job)\nmax_over_time({fired}[{quiet}])"


def runbook_url(alert_name: str) -> str:
    """The alert's section of docs/runbooks.md."""
    return f"{RUNBOOK_BASE}#{alert_name.lower()}"


def burn_alerts(profile: Profile) -> list[dict[str, Any]]:
    """Every SLO's fast and slow burn alert, as rules of a rule file."""
    out = []
    for slo in SLOS:
        for alert in BURN_ALERTS:
            name = f"{slo.alert}{alert.speed.capitalize()}Burn"
            windows = " and ".join(
                f"{in_profile(long, profile)}/{in_profile(short, profile)}" for long, short, _ in alert.pairs
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
