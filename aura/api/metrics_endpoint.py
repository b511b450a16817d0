"""GET /metrics: Prometheus exposition for the whole Gunicorn instance."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from aura import metrics
from aura.errors import error_response

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    """Every worker's metrics, aggregated per scrape; 404 when prometheus-client is absent."""
    if not metrics.ENABLED:
        return error_response(404, "not_found", "Metrics are disabled: prometheus-client is not installed.")
    settings = current_app.config["AURA"]
    if settings.metrics_auth_token:
        presented = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.metrics_auth_token}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return error_response(401, "unauthorized", "A valid Bearer token is required for /metrics.",
                                  headers={"WWW-Authenticate": "Bearer"})
    from aura.metrics.exposition import render

    body, headers = render(settings.prometheus_multiproc_dir, request.headers.get("Accept"),
                           request.headers.get("Accept-Encoding"))
    return Response(body, headers=headers)
