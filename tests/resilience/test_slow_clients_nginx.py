"""Slow clients through the shipped nginx configuration do not hold Gunicorn's sync workers.

Eight connections sending one header line every second (and one sending its body a byte at a
time) would block both of a sync Gunicorn's workers until its 30 s timeout. Through nginx
(k8s/nginx/nginx.conf, Debian's nginx-light) they cost nginx a connection each: /healthz and a
real API call answer meanwhile, and nginx closes the slow clients itself (408).
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.resilience.conftest import TIMEOUT

pytestmark = pytest.mark.gunicorn


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
