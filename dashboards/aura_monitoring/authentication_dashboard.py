"""The monitoring spec's "Authentication Metrics" dashboard: its panels, with its titles in its order."""

from __future__ import annotations

from .panels import Dashboard, Panel, Target, last_hour, rates, sel, shares

PANELS = (
    Panel(
        "timeseries",
        "Authentication Requests Rate",
        "Rate of authentication requests by endpoint and status.",
        rates("auth_requests_total", "endpoint, status"),
        unit="reqps",
    ),
    Panel(
        "timeseries",
        "Authentication Success/Failure Rate",
        "Successful against failed authentication requests, all endpoints together.",
        rates("auth_requests_total", "status"),
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
        rates("auth_token_refreshes_total", "status"),
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
        rates("rate_limit_hits_total", "endpoint"),
        unit="reqps",
    ),
    Panel(
        "timeseries",
        "Tokens Issued",
        "Rate of tokens issued by type.",
        rates("tokens_issued_total", "token_type"),
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

DASHBOARD = Dashboard(
    "authentication-metrics.json",
    "aura-authentication",
    "Authentication Metrics",
    "Aura authentication: requests, token operations, rate limiting, Redis connections.",
    PANELS,
)
