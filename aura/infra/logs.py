"""Log lines that can be joined with metrics: a request id on every line, as text or JSON.

Every request gets an id: the `X-Request-ID` a trusted proxy sent (TRUSTED_PROXY_COUNT >= 1),
or a fresh one. It is returned in the response header and attached, with the trace id (the
trace of a W3C `traceparent` header a trusted caller sent, else the request id: what the latency
histogram's exemplars name), the method and the route template (the metrics' `endpoint` label),
to every log record made while the request is handled (the middleware keeps the request's WSGI
environ in a context variable for the length of the call, so no web framework is needed to read
it). With LOG_FORMAT=json each line is one JSON object (python-json-logger), for Aura's logs and
- through `GunicornLogger` - Gunicorn's error and access logs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from aura.instrumentation.environ import ROUTE_KEY, TRACE_ID_KEY, UNMATCHED, Environ, StartResponse, WSGIApp

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = "aura.request_id"
# A proxy's id is believed only when it is short and plain: it ends up in every log line.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# W3C Trace Context: version, trace id, parent id, flags; versions after 00 may append fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")
_CONTEXT_FIELDS = ("request_id", "trace_id", "method", "route", "path")
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s [%(request_id)s]: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
_environ: ContextVar[dict[str, Any] | None] = ContextVar("aura_request_environ", default=None)


def assign_request_id(environ: dict[str, Any], trust_header: bool) -> str:
    """The request's id - a trusted proxy's X-Request-ID when plain, else 32 random hex digits -
    kept in the environ (for the access log) and returned."""
    sent = environ.get("HTTP_X_REQUEST_ID") if trust_header else None
    request_id = sent if sent and _VALID_ID.fullmatch(sent) else os.urandom(16).hex()
    environ[REQUEST_ID_KEY] = request_id
    traced = trace_id_of(environ.get("HTTP_TRACEPARENT")) if trust_header else None
    environ[TRACE_ID_KEY] = traced or request_id
    return request_id


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid W3C `traceparent` header (https://www.w3.org/TR/trace-context/), else None.

    Invalid: version ff, extra fields after version 00, an all-zero trace or parent id,
    upper-case hex; a receiver then starts a new trace, as the recommendation says.
    """
    match = _TRACEPARENT.fullmatch(traceparent.strip(" \t")) if traceparent else None
    if match is None:
        return None
    version, trace_id, parent_id, _, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or not int(trace_id, 16) or not int(parent_id, 16):
        return None
    return trace_id


def handling(wsgi_app: WSGIApp, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Call a WSGI app with `environ` as the request every log record made meanwhile belongs to."""
    token = _environ.set(environ)
    try:
        return wsgi_app(environ, start_response)
    finally:
        _environ.reset(token)


def route_of(environ: MutableMapping[str, Any]) -> str:
    """The matched route template, as the metrics label it (`unmatched` when none)."""
    route: str = environ.get(ROUTE_KEY) or UNMATCHED
    return route


def request_context() -> dict[str, str]:
    """Request id, trace id, method, route and path of the request being handled (empty outside one).

    The route is known once the web layer has matched one (it writes it to the environ).
    """
    environ = _environ.get()
    if environ is None:
        return {}
    # WSGI carries the path as latin-1 code points of its UTF-8 bytes (PEP 3333).
    path = environ.get("PATH_INFO", "").encode("latin-1", "replace").decode("utf-8", "replace")
    return {
        "request_id": environ.get(REQUEST_ID_KEY, "-"),
        "trace_id": environ.get(TRACE_ID_KEY, "-"),
        "method": environ.get("REQUEST_METHOD", "-"),
        "route": route_of(environ),
        "path": "/" + path.lstrip("/"),
    }


class _ContextDefaults(logging.Filter):
    """Records made outside a request still format: their context fields read `-`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, "-")
        return True


def _install_record_factory() -> None:
    """Attach the request context to every record made while a request is handled."""
    base = logging.getLogRecordFactory()
    if getattr(base, "_aura", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        for name, value in request_context().items():
            setattr(record, name, value)
        return record

    factory._aura = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message, and any context fields."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        datefmt=DATE_FORMAT,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for LOG_FORMAT."""
    return json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT, DATE_FORMAT)


def configure_logging(log_level: str, log_format: str) -> None:
    """Aura's handler on the root logger, unless logging was configured by the host (pytest, ...)."""
    _install_record_factory()
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_aura", False)]
    if root.handlers and not ours:
        return  # like logging.basicConfig: leave a host's configuration alone
    handler = ours[0] if ours else logging.StreamHandler()
    handler._aura = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(log_format))
    if not any(isinstance(f, _ContextDefaults) for f in handler.filters):
        handler.addFilter(_ContextDefaults())
    if not ours:
        root.addHandler(handler)
    root.setLevel(log_level)


try:  # Gunicorn is not needed to import the rest of this module (flask commands, tests)
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # pragma: no cover
    _GunicornBase = object  # type: ignore[assignment,misc]


class TextAccessLogger(_GunicornBase):
    """Gunicorn's logger and its familiar access line (LOG_FORMAT=text), minus query strings.

    A query string may carry secrets (a cursor, a token someone put in a URL), so the request
    line keeps only the path and the referrer loses its query, as in the JSON access line.
    """

    def atoms(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any) -> Any:
        """Gunicorn's atoms, with `r`, `f` and `q` free of query strings."""
        atoms = super().atoms(resp, req, environ, request_time)
        method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
        atoms["r"] = f"{method} {_without_query(environ.get('RAW_URI') or environ.get('PATH_INFO', ''))} {protocol}"
        atoms["f"] = _without_query(atoms.get("f", "-"))
        atoms["q"] = "-"
        return atoms


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


class GunicornLogger(_GunicornBase):
    """Gunicorn's logger with JSON lines (gunicorn.conf.py selects it when LOG_FORMAT=json).

    The error log keeps Gunicorn's messages; each access line carries the request id, method,
    route template, status and duration, read from the WSGI environ the app filled in.
    """

    def setup(self, cfg: Any) -> None:
        """Gunicorn's handlers, with the JSON formatter."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(json_formatter())

    def access(self, resp: Any, req: Any, environ: MutableMapping[str, Any], request_time: Any) -> None:
        """One JSON access line per request."""
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        duration = request_time.total_seconds()
        method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
        self.access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "request_id": environ.get(REQUEST_ID_KEY, "-"),
                "trace_id": environ.get(TRACE_ID_KEY, "-"),
                "method": method,
                "route": route_of(environ),
                "path": path,
                "status": int(status),
                "duration_seconds": round(duration, 6),
                "remote_addr": environ.get("REMOTE_ADDR", "-"),
            },
        )
