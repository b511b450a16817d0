"""A metrics listener in the Gunicorn master: scrapes that do not wait behind busy workers.

``/metrics`` on the app port is served by a worker, so when every worker is busy or stuck a
scrape waits in the same listen backlog as the requests it should report on. This listener is a
thread of the master (it dies with it and leaves no process behind) serving the same exposition
from the same directory, plus ``/healthz``, which tells that the instance is alive without a
worker (busy is not dead).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("aura.metrics")

Render = Callable[[str | None, str | None], tuple[bytes, dict[str, str]]]


class MetricsListener:
    """``GET /metrics`` and ``GET /healthz`` on their own port, served by daemon threads."""

    def __init__(self, host: str, port: int, render: Render, auth_token: str = ""):
        handler = _handler(render, auth_token)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="aura-metrics-listener", kwargs={"poll_interval": 0.5}, daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsListener:
        """Serve in the background."""
        self.thread.start()
        return self

    def close_inherited(self) -> None:
        """In a forked worker: drop the copy of the listening socket (the thread did not fork)."""
        self.server.socket.close()


def _handler(render: Render, auth_token: str) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {auth_token}".encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "aura-metrics"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(200, {"status": "alive"})
            elif path != "/metrics":
                self._json(404, {"error": "not_found", "message": "Only /metrics and /healthz are served here."})
            elif auth_token and not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                self._json(
                    401,
                    {"error": "unauthorized", "message": "A valid Bearer token is required."},
                    {"WWW-Authenticate": "Bearer"},
                )
            else:
                try:
                    body, headers = render(self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
                except Exception as exc:  # noqa: BLE001 - the directory, not this request
                    log.warning("metrics listener cannot render: %s", exc)
                    self._json(
                        503,
                        {"error": "service_unavailable", "message": "Metrics are unavailable."},
                        {"Retry-After": "15"},
                    )
                    return
                self._send(200, body, headers)

        def _json(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            return  # scrapes every few seconds would flood the error log

    return Handler
