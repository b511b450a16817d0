"""GET /metrics: Prometheus exposition for the whole Gunicorn instance."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, request

from aura.api.errors import error_response
from aura.instrumentation import recorder

bp = Blueprint("metrics", __name__)
log = logging.getLogger("aura.metrics")


@bp.get("/metrics")
def scrape() -> Response:
    """Every worker's metrics, aggregated per scrape; 404 when prometheus-client is absent."""
    return metrics_response()


def metrics_response() -> Response:
    """The body of `scrape` (a plain function: mutmut leaves decorated functions alone)."""
    if not recorder.enabled:
        return error_response(404, "not_found", "Metrics are disabled: prometheus-client is not installed.")
    settings = current_app.config["AURA"]
    if settings.metrics_auth_token:
        presented = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.metrics_auth_token}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return error_response(
                401,
                "unauthorized",
                "A valid Bearer token is required for /metrics.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    # Here, not at the top: prometheus-client is optional (the check above answers without it).
    from aura.metrics import MetricsDirectoryError, MetricsLockTimeout, render

    try:
        body, headers = render(
            settings.prometheus_multiproc_dir, request.headers.get("Accept"), request.headers.get("Accept-Encoding")
        )
    # The directory, not this request: unusable since start, locked too long, gone or replaced
    # (the collectors raise ValueError for a path that is no longer a directory). Never a 500.
    except (MetricsDirectoryError, MetricsLockTimeout, OSError, ValueError) as exc:
        log.warning("metrics are degraded: cannot read the metrics directory: %s", exc)
        return error_response(503, "service_unavailable", f"Metrics are unavailable: {exc}")  # Retry-After: the edge
    return Response(body, headers=headers)
