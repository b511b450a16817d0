"""The metrics listener (a thread of the Gunicorn master) under a slowloris flood: hundreds of
connections that send a request line and never finish their headers.

Issue 23's attack grew the master from 340 MB to 964 MB with a thread per connection, and its
/healthz - the liveness probe - timed out for ~40 s. Here the master's threads, descriptors and
RSS are read from /proc during the flood, and /healthz and /metrics must answer throughout.
"""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from aura.metrics.listener import HEADER_TIMEOUT, MAX_CONNECTIONS, MAX_HEAD_BYTES, RENDER_THREADS
from aura.testing.servers import free_port

pytestmark = pytest.mark.gunicorn
# The tests marked serial measure the master's memory under a flood or wait on the 5 s header
# timeout to the second: make test runs them alone, after the rest.

FLOOD = 600  # the count
PROBE_TIMEOUT = 5.0  # the probe's own timeout; the pod's liveness probe allows 2 s


@dataclass(frozen=True)
class Usage:
    rss_kib: int
    threads: int
    fds: int


def _usage(pid: int) -> Usage:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return Usage(
        rss_kib=int(status["VmRSS"].split()[0]),
        threads=int(status["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
    )


def _probe(url: str, path: str) -> int:
    return requests.get(url + path, headers={"Connection": "close"}, timeout=PROBE_TIMEOUT).status_code


def _slow_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: attacker\r\n")  # and never the blank line
    return sock


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True when the server has closed (or reset) the connection within ``timeout`` seconds."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return True
    assert data == b"", f"the server answered a request head that never ended: {data!r}"
    return True


@pytest.fixture
def listener(gunicorn):
    port = free_port()
    server = gunicorn(workers=2, METRICS_PORT=str(port))
    server.wait_for_workers(2)  # ready means one worker answers; the second may still be forking
    url = f"http://127.0.0.1:{port}"
    # This master's listener, not another program that took the free port meanwhile.
    assert f"metrics listener on 127.0.0.1:{port}" in server.log(), server.log()
    for _ in range(3):  # warm: the render threads, the archive cache
        assert _probe(url, "/metrics") == 200 and _probe(url, "/healthz") == 200
    return server, port, url


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_a_slowloris_flood_neither_grows_the_master_nor_starves_healthz(listener):
    server, port, url = listener
    master = server.proc.pid
    before = _usage(master)
    held: list[socket.socket] = []
    peak = before
    try:
        for n in range(FLOOD):
            held.append(_slow_client(port))
            if n % 100 == 99:  # the probe is answered at every stage of the flood
                assert _probe(url, "/healthz") == 200
                peak = max(peak, _usage(master), key=lambda u: u.fds)
        during = _usage(master)
        assert _probe(url, "/healthz") == 200
        assert _probe(url, "/metrics") == 200
        assert _probe(server.url, "/healthz") == 200  # the workers never saw any of it
    finally:
        for sock in held:
            sock.close()
    peak = max(peak, during, key=lambda u: u.fds)
    print(f"master before {before}, during {during}, peak descriptors {peak.fds}")
    # No thread per connection: the loop and the render pool existed before the flood.
    assert during.threads <= before.threads + RENDER_THREADS, (before, during)
    # Descriptors: at most the connection cap (plus the probes') open at once.
    assert peak.fds <= before.fds + MAX_CONNECTIONS + 8, (before, peak)
    # Memory: a few KiB per open connection, not a thread stack and buffers each.
    assert during.rss_kib - before.rss_kib < 32 * 1024, (before, during)
    assert "Traceback" not in server.log()


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_a_connection_that_never_finishes_its_headers_is_closed(listener):
    """The header timeout: a whole request head within HEADER_TIMEOUT, however it trickles in."""
    _, port, url = listener
    silent = _slow_client(port)
    trickling = _slow_client(port)
    try:
        closed = False
        for n in range(int(HEADER_TIMEOUT) * 3):  # one header line a second keeps it "active"
            trickling.sendall(f"X-Trickle-{n}: 1\r\n".encode())
            if _closed_by_server(trickling, 1.0):
                closed = True
                break
        assert closed, "a trickling head was kept open three times the header timeout"
        assert _closed_by_server(silent, HEADER_TIMEOUT)
        assert _probe(url, "/healthz") == 200
    finally:
        silent.close()
        trickling.close()


@pytest.mark.serial  # a short deadline: run alone (make test)
def test_a_worker_forked_while_a_client_is_connected_does_not_keep_it_open(listener):
    """Fork copies the master's descriptors, the listener's connections included: a worker
    forked (spawned, recycled) while a scrape or probe connection is open must let go of its
    copy, or the master's close is never seen by the client (issue found by the test above,
    which failed whenever the second worker booted after its clients connected)."""
    server, port, url = listener
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        kept.request("GET", "/healthz")  # answered: the master holds this connection now
        assert kept.getresponse().read() and kept.sock is not None
        os.kill(server.proc.pid, signal.SIGTTIN)  # one more worker, forked now
        server.wait_for_workers(3)
        # idle keep-alive: the master closes it after HEADER_TIMEOUT; the new worker must not
        assert _closed_by_server(kept.sock, HEADER_TIMEOUT + 5), "a forked worker kept the connection open"
    finally:
        kept.close()
    assert _probe(url, "/healthz") == 200


def test_a_request_head_is_bounded_in_size(listener):
    _, port, url = listener
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"a" * (4 * MAX_HEAD_BYTES))
        answer = b""
        while chunk := sock.recv(65536):  # the server answers and closes
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"error": "request_too_large"' in answer
    assert _probe(url, "/healthz") == 200


def test_keep_alive_and_errors_on_the_listener(listener):
    """Prometheus keeps its connection open between scrapes; other methods and paths are refused
    in the JSON error shape."""
    _, _, url = listener
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(url + "/metrics", timeout=PROBE_TIMEOUT).status_code == 200
        assert session.head(url + "/healthz", timeout=PROBE_TIMEOUT).status_code == 200
        refused = session.post(url + "/metrics", timeout=PROBE_TIMEOUT)
        assert refused.status_code == 405 and refused.json()["error"] == "method_not_allowed"
        missing = session.get(url + "/nothing", timeout=PROBE_TIMEOUT)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.1 400 ")
