"""What every request and response passes through at the edge of the app, in one WSGI layer.

On the way in: the request id (`aura.infra.logs.assign_request_id`) and the log context. On the
way out, in one pass over the header list: `X-Request-ID`, `nosniff` everywhere, frame and
referrer policies unless a view chose its own, `Retry-After` only where it means something (the
429 it belongs to, and a short hint on every 503 - Flask-Limiter adds its own to every response,
so a 503's is replaced, never kept), and no caching of token-bearing auth
responses. Done here rather than in Flask hooks, which cost several times more per request
(bench/http_overhead.py).

`RoutedRequest` is Flask's request class, writing the matched route (or routing error) into
the WSGI environ as Flask routes, for log records, the access log and the HTTP metrics (and the
route into the request's in-flight slot, for a worker that dies before it answers).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Request

from aura.infra.logs import REQUEST_ID_HEADER, assign_request_id, handling
from aura.instrumentation import recorder
from aura.instrumentation.environ import (
    INFLIGHT_SLOT_KEY,
    ROUTE_KEY,
    ROUTING_ERROR_KEY,
    Environ,
    StartResponse,
    WSGIApp,
)

AUTH_PREFIX = "/api/v1/auth/"
_ALWAYS_SET = frozenset(("x-request-id", "x-content-type-options"))
_AUTH_SET = frozenset(("cache-control", "pragma"))


class RoutedRequest(Request):
    """Flask's request, leaving its matched rule (or routing error) in the WSGI environ."""

    _rule: Any = None
    _routing_error: Any = None

    @property
    def url_rule(self) -> Any:
        return self._rule

    @url_rule.setter
    def url_rule(self, rule: Any) -> None:
        self._rule = rule
        if rule is not None:
            self.environ[ROUTE_KEY] = rule.rule
            # Known to the master from now on, should the worker die in this request.
            recorder.request_routed(self.environ.get(INFLIGHT_SLOT_KEY, -1), rule.rule)

    @property
    def routing_exception(self) -> Any:
        return self._routing_error

    @routing_exception.setter
    def routing_exception(self, exc: Any) -> None:
        self._routing_error = exc
        self.environ[ROUTING_ERROR_KEY] = exc


def response_headers(status: str, headers: list[tuple[str, str]], request_id: str, auth: bool) -> list[tuple[str, str]]:
    """The response's headers with the edge's own set, replaced or added in one pass."""
    code = status[:3]
    replaced = _ALWAYS_SET
    if code != "429":  # Flask-Limiter's Retry-After stays on its 429 only
        replaced = replaced | {"retry-after"}
    if auth:
        replaced = replaced | _AUTH_SET
    kept = []
    present = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered not in replaced:
            kept.append((name, value))
            present.add(lowered)
    kept.append((REQUEST_ID_HEADER, request_id))
    kept.append(("X-Content-Type-Options", "nosniff"))
    if "x-frame-options" not in present:
        kept.append(("X-Frame-Options", "DENY"))
    if "referrer-policy" not in present:
        kept.append(("Referrer-Policy", "no-referrer"))
    if code == "503":
        kept.append(("Retry-After", "5"))
    if auth:
        kept.append(("Cache-Control", "no-store"))
        kept.append(("Pragma", "no-cache"))
    return kept


class EdgeMiddleware:
    """WSGI middleware: request id and log context in, the edge's response headers out."""

    def __init__(self, wsgi_app: WSGIApp, trust_request_id: bool):
        self.wsgi_app = wsgi_app
        self.trust_request_id = trust_request_id

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run the app as this request; rewrite the headers when the status line is known."""
        request_id = assign_request_id(environ, self.trust_request_id)
        auth = environ.get("PATH_INFO", "").startswith(AUTH_PREFIX)

        def edge_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, response_headers(status, headers, request_id, auth), exc_info)

        return handling(self.wsgi_app, environ, edge_start_response)
