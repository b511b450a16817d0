"""A real Alertmanager (Debian's prometheus-alertmanager) and a local webhook receiver for it."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

from aura.testing.servers import free_port, wait_ready


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it, with its path."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def notifications(self) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    """Alertmanager on a free loopback port with a given configuration; stopped by pid."""

    def __init__(self, tmp_path: Path, config: dict):
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, (
            "prometheus-alertmanager is missing: apt-get install -y prometheus-alertmanager "
            "(scripts/ensure-services.sh does this)"
        )
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self.dir = tmp_path / f"alertmanager-{self.port}"
        self.dir.mkdir()
        self.config_path = self.dir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Alertmanager:
        with open(self.dir / "alertmanager.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.path={self.dir / 'data'}",
                    f"--web.listen-address={self.address}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(self.proc, f"{self.url}/-/ready", self.dir / "alertmanager.log", "alertmanager", timeout)
        return self

    def alerts(self) -> list[dict]:
        """Every alert it holds, active, silenced and inhibited (API v2)."""
        return requests.get(f"{self.url}/api/v2/alerts", timeout=10).json()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
