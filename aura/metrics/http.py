"""HTTP metrics for every request, as WSGI middleware around the Flask app.

Middleware sees every response, including those produced before a view runs (404, 405, 413,
errors from other hooks). Label values are bounded: `endpoint` is the matched URL rule or one
fixed value for unmatched paths, and non-standard methods fold into one value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter

from flask import request

from aura import metrics

UNMATCHED = "unmatched"
_ENDPOINT_KEY = "aura.metrics.endpoint"
OTHER_METHOD = "OTHER"
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def endpoint_label(request, url_map) -> str:
    """The matched URL rule of the request, or UNMATCHED."""
    rule = request.url_rule
    if rule is not None:
        return rule.rule
    # A 405 matched a path but not its method: name the path's rule (error path only).
    valid = getattr(request.routing_exception, "valid_methods", None)
    if valid:
        try:
            adapter = url_map.bind_to_environ(request.environ)
            return adapter.match(method=valid[0], return_rule=True)[0].rule
        except Exception:  # noqa: BLE001 - a label must never fail a request
            pass
    return UNMATCHED


def install(app) -> None:
    """Wrap the app in the middleware; a teardown hook hands it the matched rule."""
    url_map = app.url_map

    @app.teardown_request
    def _remember_rule(_exc=None) -> None:
        # Flask forgets the request when its context ends; keep the label in the environ.
        request.environ[_ENDPOINT_KEY] = endpoint_label(request, url_map)

    app.wsgi_app = HttpMetricsMiddleware(app.wsgi_app)


class HttpMetricsMiddleware:
    """Count and time each request by method, matched rule and status code."""

    def __init__(self, wsgi_app: Callable):
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Run the app; record when the status line is known."""
        start = perf_counter()
        status_holder: list[str] = []

        def recording_start_response(status: str, headers, exc_info=None):
            status_holder.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, recording_start_response)
        finally:
            method = environ.get("REQUEST_METHOD", "")
            if method not in _METHODS:
                method = OTHER_METHOD
            status = status_holder[-1][:3] if status_holder else "500"
            endpoint = environ.get(_ENDPOINT_KEY, UNMATCHED)
            metrics.http_request(method, endpoint, status, perf_counter() - start)
