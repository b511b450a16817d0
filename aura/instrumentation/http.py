"""HTTP metrics for every request, as WSGI middleware around the Flask app (the outermost layer of
the stack aura/api/pipeline.py installs).

Middleware sees every response, including those produced before a view runs (404, 405, 413,
errors from other hooks). Label values are bounded: `endpoint` is the matched URL rule or one
fixed value for unmatched paths, and non-standard methods fold into one value.

Every request pays for this, so it adds no Flask hook: the matched rule reaches the middleware
through the environ, where the web layer's request class (`aura.api.edge.RoutedRequest`) writes
it as Flask routes, and the counter and histogram children are bound once per label set
(bench/http_overhead.py measures the cost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from time import perf_counter, time
from typing import Any

from aura.instrumentation import recorder
from aura.instrumentation.environ import (
    INFLIGHT_SLOT_KEY,
    ROUTE_KEY,
    ROUTING_ERROR_KEY,
    TRACE_ID_KEY,
    UNMATCHED,
    Environ,
    StartResponse,
    WSGIApp,
)
from aura.instrumentation.recorder import OTHER_METHOD

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def queue_seconds(header: str, now: float) -> float | None:
    """Seconds since the proxy's X-Request-Start (``t=`` seconds, ms or µs since the epoch), if sane.

    The unit is told by magnitude, as nginx (``t=${msec}``: seconds with ms) and Heroku (ms)
    write it. A time in the future by less than a second (clock skew between hosts) counts as
    0; anything else outside [0, 1 day] is no proxy's stamp and is ignored.
    """
    value = header.strip()
    if value.startswith("t="):
        value = value[2:]
    try:
        stamp = float(value)
    except ValueError:
        return None
    if stamp > 1e14:
        stamp /= 1e6
    elif stamp > 1e11:
        stamp /= 1e3
    waited = now - stamp
    if -1.0 <= waited < 0:
        return 0.0
    return waited if 0 <= waited <= 86400 else None


class HttpMetricsMiddleware:
    """Count and time each request by method, matched rule and status code."""

    def __init__(self, wsgi_app: WSGIApp, url_map: Any = None, trust_request_start: bool = False):
        self.wsgi_app = wsgi_app
        self.url_map = url_map
        self.trust_request_start = trust_request_start
        self.started = recorder.request_started  # bound once: every request calls these
        self.ended = recorder.request_ended
        self.recorders: dict[tuple[str, str, str], Callable[[float, str], None]] = {}

    def _label_without_rule(self, environ: Environ) -> str:
        # A 405 matched a path but not its method: name the path's rule (error path only).
        valid = getattr(environ.get(ROUTING_ERROR_KEY), "valid_methods", None)
        if valid and self.url_map is not None:
            try:
                rule: str = self.url_map.bind_to_environ(environ).match(method=valid[0], return_rule=True)[0].rule
                return rule
            except Exception:  # noqa: BLE001 - a label must never fail a request
                pass
        return UNMATCHED

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run the app; record when the status line is known.

        A worker aborted (Gunicorn's timeout: ``SystemExit`` raised in the request) records
        nothing here: its in-flight slot stays taken and the master records the request when it
        merges the dead worker's files, as for a worker killed outright.
        """
        start = perf_counter()
        method = environ.get("REQUEST_METHOD", "")
        if method not in _METHODS:
            method = OTHER_METHOD
        slot = environ[INFLIGHT_SLOT_KEY] = self.started(start, method)
        if self.trust_request_start and "HTTP_X_REQUEST_START" in environ:
            waited = queue_seconds(environ["HTTP_X_REQUEST_START"], time())
            if waited is not None:
                recorder.request_queued(waited)
        status_holder: list[str] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_holder.append(status)
            return start_response(status, headers, exc_info)

        dying = False
        try:
            return self.wsgi_app(environ, recording_start_response)
        except BaseException as exc:
            dying = slot >= 0 and not isinstance(exc, Exception)  # SystemExit, KeyboardInterrupt
            raise
        finally:
            if not dying:
                seconds = perf_counter() - start
                self.ended(slot, seconds)
                status = status_holder[-1][:3] if status_holder else "500"
                endpoint = environ.get(ROUTE_KEY) or self._label_without_rule(environ)
                key = (method, endpoint, status)
                record = self.recorders.get(key)
                if record is None:
                    record = self.recorders[key] = recorder.http_recorder(method, endpoint, status)
                record(seconds, environ.get(TRACE_ID_KEY, ""))  # the request is its series' exemplar
