"""The panel vocabulary: what a panel and a dashboard are, and the PromQL the panels share.

Every panel reads only the series the dashboard's variables select (namespace, job, pod):
`sel()` writes that scope, and the helpers below put it into every selector they write.
"""

from __future__ import annotations

from dataclasses import dataclass

# Grafana's rate window: at least four scrape intervals (the datasource's timeInterval).
RATE_WINDOW = "$__rate_interval"
# The dashboard's whole time range: pie charts show shares over what is on screen.
RANGE_WINDOW = "$__range"
PERCENTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""
    # Ask Prometheus for the series' exemplars too (only http_request_duration_seconds keeps
    # them: each bucket's latest request and its trace id, docs/metrics.md "Exemplars").
    exemplar: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel as the spec describes it: kind (timeseries, stat or piechart), title, queries."""

    kind: str
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    # Threshold lines drawn across a time series (burn-rate factors, targets, HPA marks).
    thresholds: tuple[float, ...] = ()
    # Series named here (by legend) are listed in the legend with their last value but not
    # drawn: a limit far above the data would flatten it against the axis.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dashboard:
    """One dashboard file."""

    filename: str
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


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


def rates(metric: str, by: str, selector: str = "") -> tuple[Target, ...]:
    """rate_by as a panel's one query, each series named by its labels ("{{endpoint}} {{status}}")."""
    return (Target(rate_by(metric, by, selector), " ".join(f"{{{{{label}}}}}" for label in by.split(", "))),)


def quantiles(
    histogram: str, by: str = "", legend: str = "", selector: str = "", exemplar: bool = False
) -> tuple[Target, ...]:
    """P50, P95 and P99 of a histogram over all pods, optionally split by labels (and its exemplars)."""
    group = f"le, {by}" if by else "le"
    prefix = f"{legend} " if legend else ""
    return tuple(
        Target(
            f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket{selector or sel()}[{RATE_WINDOW}])))",
            f"{prefix}p{round(q * 100)}",
            exemplar,
        )
        for q in PERCENTILES
    )


def last_hour(metric: str, selector: str = "") -> tuple[Target, ...]:
    """A counter's increase over the last hour, summed over pods (for "in the last hour" stats)."""
    return (Target(f"sum(increase({metric}{selector or sel()}[1h]))"),)


def shares(metric: str, by: str) -> tuple[Target, ...]:
    """A counter's increase over the dashboard's range, per label value (for pie charts)."""
    return (Target(f"sum by ({by}) (increase({metric}{sel()}[{RANGE_WINDOW}]))", f"{{{{{by}}}}}"),)
