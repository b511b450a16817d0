"""The WSGI stack around Flask: the one place that wraps ``app.wsgi_app``, outermost first.

1. HTTP metrics (``aura.instrumentation.http``): outermost, so every response is counted and
   timed, those made before any view (404, 405, 413, the edge's own errors) included;
2. ProxyFix, when ``TRUSTED_PROXY_COUNT`` > 0: ``REMOTE_ADDR`` from that many ``X-Forwarded-For``
   hops, for everything inside it (rate limits, logs);
3. the edge (``aura.api.edge``): the request id, security headers, the request's log context;
4. Flask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from aura.api.edge import EdgeMiddleware
from aura.config import Settings
from aura.instrumentation.http import HttpMetricsMiddleware


def install(app: Flask, settings: Settings, metrics: bool) -> None:
    """Wrap ``app``'s WSGI callable in the stack; ``metrics``: with the HTTP metrics layer."""
    trusted = settings.trusted_proxy_count
    stack: Callable[..., Any] = EdgeMiddleware(app.wsgi_app, trust_request_id=trusted >= 1)
    if trusted:
        stack = ProxyFix(stack, x_for=trusted)
    if metrics:
        # A trusted proxy writes X-Request-Start (a client could forge it otherwise).
        stack = HttpMetricsMiddleware(stack, app.url_map, trust_request_start=trusted >= 1)
    # Wrapping `wsgi_app` is how Flask takes WSGI middleware (its docs); mypy sees a method.
    app.wsgi_app = stack  # type: ignore[method-assign]
