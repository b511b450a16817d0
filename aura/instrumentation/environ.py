"""What the request's WSGI environ carries for the HTTP metrics, and the endpoint label of unmatched paths.

The web layer (``aura.api.edge``) writes the matched route template (and a routing error) into
the environ as it routes; the HTTP metrics (``aura.instrumentation.http``), log records and the
access log (``aura.infra.logs``) read them from there. The edge also writes the request's trace
id, which log lines carry and the HTTP metrics keep as their exemplars' ``trace_id``.
"""

from collections.abc import Callable, Iterable
from typing import Any

# PEP 3333's shapes, as every WSGI layer of the stack (aura/api/pipeline.py) is typed.
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

ROUTE_KEY = "aura.route"
ROUTING_ERROR_KEY = "aura.routing_error"
INFLIGHT_SLOT_KEY = "aura.inflight_slot"  # the request's in-flight slot (aura.instrumentation.http)
UNMATCHED = "unmatched"  # the metrics' endpoint label for paths that match no route
TRACE_ID_KEY = "aura.trace_id"  # a trusted caller's W3C trace id, else the request id (aura.infra.logs)
