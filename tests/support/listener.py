"""A Gunicorn instance running tests/support/slow_app.py, read from its metrics listener (METRICS_PORT)."""

from __future__ import annotations

import time

import requests

from aura.testing.servers import free_port
from tests.support.metrics import parse_exposition, value

APP = "tests.support.slow_app:app"


class Listener:
    """The metrics listener of one instance (METRICS_PORT); scrapes there add no busy time."""

    def __init__(self, gunicorn, workers: int = 2, **settings: str):
        self.port = free_port()
        self.server = gunicorn(
            workers=workers, app=APP, METRICS_PORT=str(self.port), GUNICORN_MAX_REQUESTS_JITTER="0", **settings
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def scrape(self, timeout: float = 5.0) -> dict:
        response = requests.get(self.url + "/metrics", timeout=timeout)
        assert response.status_code == 200
        return parse_exposition(response.text)

    def value(self, name: str, **labels: str) -> float:
        return value(self.scrape(), name, **labels)

    def wait_for(self, predicate, what: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if predicate(samples):
                return samples
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)
