"""Slow clients through the shipped nginx configuration do not hold Gunicorn's sync workers.

Eight connections sending one header line every second (and one sending its body a byte at a
time) would block both of a sync Gunicorn's workers until its 30 s timeout. Through nginx
(k8s/nginx/nginx.conf, Debian's nginx-light) they cost nginx a connection each: /healthz and a
real API call answer meanwhile, and nginx closes the slow clients itself (408).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from aura.testing.servers import ROOT, free_port
from tests.resilience.conftest import TIMEOUT

pytestmark = pytest.mark.gunicorn

CONFIG = ROOT / "k8s" / "nginx" / "nginx.conf"


def _nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    assert found, "nginx is missing: apt-get install -y nginx-light (scripts/ensure-services.sh does this)"
    return found


class Nginx:
    """The shipped configuration on a free port in front of `upstream`; stopped by pid."""

    def __init__(self, tmp_path: Path, upstream: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp_path / f"nginx-{self.port}"
        self.dir.mkdir()
        self.dir.chmod(0o777)  # workers run as an unprivileged user when started as root
        text = CONFIG.read_text()
        assert "listen 8080;" in text and "server 127.0.0.1:8000;" in text
        text = (
            text.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
            .replace("server 127.0.0.1:8000;", f"server {upstream};")
            .replace("/tmp/nginx", str(self.dir))
        )
        self.config = self.dir / "nginx.conf"
        self.config.write_text(text)
        self.log = self.dir / "nginx.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Nginx:
        binary = _nginx_binary()
        test = subprocess.run(
            [binary, "-t", "-c", str(self.config), "-p", str(self.dir)], capture_output=True, text=True, timeout=30
        )
        assert test.returncode == 0, test.stderr
        with open(self.log, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.config), "-p", str(self.dir), "-g", "daemon off;"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("nginx did not answer: " + self.log.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # fast shutdown of the master and its workers
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def nginx(tmp_path):
    started: list[Nginx] = []

    def start(upstream: str) -> Nginx:
        server = Nginx(tmp_path, upstream)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _slow_header_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: aura\r\n")
    return sock


def _still_open(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"X-Slow: 1\r\n")
        return True
    except OSError:
        return False


def test_slow_clients_through_nginx_do_not_delay_healthz(start_gunicorn, nginx):
    server = start_gunicorn(workers=2, env={"TRUSTED_PROXY_COUNT": "1"})
    proxy = nginx(f"127.0.0.1:{server.port}")
    slow = [_slow_header_client(proxy.port) for _ in range(8)]
    body = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
    body.sendall(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: aura\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    try:
        for round_ in range(3):  # three rounds, one header line from each slow client between them
            for sock in slow:
                assert _still_open(sock)  # still sending headers: nginx holds them
            body.sendall(b" ")
            for _ in range(4):  # more probes than Gunicorn has workers
                health = requests.get(proxy.url + "/healthz", headers={"Connection": "close"}, timeout=TIMEOUT)
                assert health.status_code == 200 and health.json() == {"status": "ok"}, round_
            login = requests.post(
                proxy.url + "/api/v1/auth/login",
                timeout=TIMEOUT,
                json={"email": "nobody@example.com", "password": "long-enough-pw"},
            )
            assert login.status_code == 401, login.text  # the app answers through nginx
            time.sleep(1)
        # nginx, not Gunicorn, ends the slow clients (client_header_timeout 5s): a 408 or a close.
        for sock in slow:
            sock.settimeout(TIMEOUT)
            try:
                answer = sock.recv(200)
            except OSError:
                answer = b""
            assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer
        assert server.proc.poll() is None and len(server.worker_pids()) == 2
        assert "WORKER TIMEOUT" not in server.log()
    finally:
        for sock in [*slow, body]:
            sock.close()
