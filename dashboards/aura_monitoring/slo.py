"""The SLOs: the one place for targets, thresholds and burn-rate windows.

Rules are generated from here into k8s/monitoring/prometheus/slo-rules.yml (and, with short
windows, into the demo's rule override). The shape is the Google SRE workbook's (chapter
"Alerting on SLOs", multiwindow multi-burn-rate), as Sloth and Pyrra generate it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
# Alerts that name the cause of an SLO breach: while one fires, and for the burn alert's
# longest short window after it resolved (the time its errors take to leave that window), the
# SLO burn alerts stay quiet - the cause pages, once. Alertmanager inhibits the same while the
# cause fires (alertmanager.yml); this also covers the tail after recovery, when the cause has
# resolved but the burn windows still hold its errors.
DEPENDENCY_ALERTS = ("AuraRedisConnectionErrors",)

# The demo's override: the same rules on windows 30-720 times shorter, so a breach fires within
# the demo's minutes (make demo, and the live Alertmanager test). Never deployed.
DEMO_WINDOWS = {"1h": "2m", "5m": "20s", "6h": "4m", "30m": "1m", "1d": "6m", "2h": "2m", "3d": "10m"}
DEMO_FOR = "10s"

# Which windows the rules use: None for the deployed ones, DEMO_WINDOWS for the demo's.
Profile = dict[str, str] | None


def in_profile(window: str, profile: Profile) -> str:
    """The window a profile puts in place of a deployed one ("1h" -> "2m" in the demo)."""
    return profile.get(window, window) if profile else window


def seconds(duration: str) -> int:
    """A Prometheus duration of one unit ("30m", "6h") in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def longest(windows: Iterable[str]) -> str:
    """The longest of some Prometheus durations ("30m", "6h")."""
    return max(windows, key=seconds)
