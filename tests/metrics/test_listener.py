"""The metrics listener in process: started on 127.0.0.1 in the test process, spoken to over raw
sockets, stopped after each test.

tests/gunicorn/test_listener_flood.py runs it in a real master (RSS, threads and descriptors under
a flood, the 5 s header timeout to the second); these tests check each rule on its own, with the
timeouts and caps made small through the module's constants (monkeypatch), so they need no
Gunicorn and no wall clock: a wait is a bounded poll or a socket timeout that only a broken
listener reaches.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator

import pytest

from aura.metrics import listener
from aura.metrics.listener import MetricsListener
from aura.testing.servers import free_port

TIMEOUT = 5.0  # a client's socket timeout: reached only when the listener does not do its part
RENDER_PREFIX = "aura-metrics-render"
METRICS = b"# metrics\n"


def _render(accept: str | None, encoding: str | None) -> tuple[bytes, dict[str, str]]:
    return METRICS, {"Content-Type": "text/plain; version=0.0.4"}


class Client:
    """One raw connection to the listener."""

    def __init__(self, address: tuple[str, int], rcvbuf: int = 0):
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str = "GET", path: str = "/healthz", *headers: str, version: str = "HTTP/1.1") -> None:
        self.send("\r\n".join([f"{method} {path} {version}", "Host: test", *headers, "", ""]).encode("latin-1"))

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def raw(self, head_only: bool = False) -> bytes:
        """One whole answer, as sent: its head and Content-Length bytes of body (none for HEAD)."""
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"closed before an answer: {self.buffer[:200]!r}"
        assert self.buffer.startswith(b"HTTP/1.1 "), f"not an answer: {self.buffer[:200]!r}"  # e.g. a body after HEAD
        end = self.buffer.index(b"\r\n\r\n") + 4
        length = 0
        for line in self.buffer[:end].decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if head_only:
            length = 0
        while len(self.buffer) < end + length:
            assert self._fill(), f"closed inside an answer: {self.buffer[:200]!r}"
        answer, self.buffer = self.buffer[: end + length], self.buffer[end + length :]
        return answer

    def answer(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-cased names, body) of one answer."""
        raw = self.raw(head_only)
        head, body = raw.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(": ")
            headers[name.lower()] = value
        return int(status_line.split(" ")[1]), headers, body

    def closed(self) -> bool:
        """True once the listener has closed (or reset) this connection with nothing more to say."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        assert data == b"", f"an answer where the connection should have been closed: {data[:200]!r}"
        return True

    def close(self) -> None:
        self.sock.close()


class Served:
    """A started listener and what the test needs to watch it."""

    def __init__(self, server: MetricsListener):
        self.server = server
        self.clients: list[Client] = []
        self.unhandled: list[dict] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self.server._loop is not None
        return self.server._loop

    def connect(self, rcvbuf: int = 0) -> Client:
        client = Client(self.server.address, rcvbuf)
        self.clients.append(client)
        return client

    def get(self, path: str, *headers: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """One request on a connection of its own."""
        client = self.connect()
        client.request(method, path, *headers)
        return client.answer(head_only=method == "HEAD")

    def on_loop(self, fn: Callable[[], object]) -> object:
        """``fn()`` run on the listener's loop, between two of its steps."""

        async def call() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(TIMEOUT)

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait, on the loop, until ``predicate()`` holds (a bounded poll)."""

        async def poll() -> bool:
            for _ in range(1000):
                if predicate():
                    return True
                await asyncio.sleep(0.005)
            return False

        assert asyncio.run_coroutine_threadsafe(poll(), self.loop).result(TIMEOUT + 5), f"never: {what}"

    def paused(self) -> threading.Event:
        """Hold the loop's thread until the event returned is set (connections queue meanwhile)."""
        resume, holding = threading.Event(), threading.Event()

        def hold() -> None:
            holding.set()
            resume.wait(TIMEOUT)

        self.loop.call_soon_threadsafe(hold)
        assert holding.wait(TIMEOUT)
        return resume

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        server = self.server
        try:
            # Every client is gone: no connection, waiting head or scrape may be left counted.
            self.until(lambda: not server._alive and not server._waiting and server._scrapes == 0, "all let go")
        finally:

            async def shutdown() -> None:
                for writer in list(server._alive):
                    writer.transport.abort()
                tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            loop = self.loop
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            server.thread.join(TIMEOUT)
            assert not server.thread.is_alive()
            loop.close()
            server.sock.close()
            server._executor.shutdown(wait=True)
        assert self.unhandled == [], self.unhandled  # nothing escaped a connection's handler


@pytest.fixture
def serve(monkeypatch) -> Iterator[Callable[..., Served]]:
    """``serve(render=..., auth_token=..., readiness=..., HEADER_TIMEOUT=...)``: a started listener
    on 127.0.0.1, its module constants set first; stopped (and checked clean) after the test."""
    started: list[Served] = []

    def start(
        render: listener.Render = _render,
        auth_token: str | None = None,
        readiness: listener.Readiness | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **constants: float,
    ) -> Served:
        for name, value in constants.items():
            assert hasattr(listener, name), name
            monkeypatch.setattr(listener, name, value)
        # Only what the test gives: the defaults are the listener's own (no token, no readiness).
        if auth_token is None:
            server = MetricsListener(host, port, render)
        else:
            server = MetricsListener(host, port, render, auth_token)
        if readiness is not None:
            server.readiness = readiness
        served = Served(server.start())

        def running() -> bool:
            return server._loop is not None and server._loop.is_running()

        for _ in range(10_000):  # the loop's thread starts it first thing, or dies trying
            if running() or not server.thread.is_alive():
                break
            server.thread.join(0.001)
        if not running():
            server.sock.close()
            server._executor.shutdown()
            pytest.fail("the listener's loop is not running")
        started.append(served)
        served.loop.set_exception_handler(lambda loop, context: served.unhandled.append(context))
        return served

    yield start
    for served in started:
        served.stop()


class Gate:
    """A render that blocks until released, counting the renders under way."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = 0
        self.threads: list[str] = []
        self.calls: list[tuple[str | None, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, accept: str | None, encoding: str | None) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            self.entered += 1
            self.threads.append(threading.current_thread().name)
            self.calls.append((accept, encoding))
        assert self.release.wait(TIMEOUT)
        return METRICS, {"Content-Type": "text/plain"}


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release.set()  # a render never outlives its test


def _render_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(RENDER_PREFIX)]


# ---------------------------------------------------------------------- the request head


def _json_answer(status: str, body: bytes, extra: bytes = b"", close: bool = False) -> bytes:
    """The listener's whole answer in the error shape, byte for byte: its fixed head, then `extra`."""
    connection = b"close" if close else b"keep-alive"
    return (
        b"HTTP/1.1 %s\r\nServer: aura-metrics\r\nContent-Type: application/json\r\n"
        b"%sContent-Length: %d\r\nConnection: %s\r\n\r\n%s" % (status.encode(), extra, len(body), connection, body)
    )


def _head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_parse_reads_method_path_headers_and_keep_alive():
    head = _head("GET /metrics?name=x?y HTTP/1.1", "Host: a", "Accept:  text/plain  ", "X-Colon: a:b", "UPPER: V")
    assert listener._parse(head) == (
        "GET",
        "/metrics",
        {"host": "a", "accept": "text/plain", "x-colon": "a:b", "upper": "V"},
        True,
    )
    assert listener._parse(_head("HEAD / HTTP/1.1")) == ("HEAD", "/", {}, True)
    assert listener._parse(_head("GET /a HTTP/1.1", "X-Latin: caf\xe9")) == ("GET", "/a", {"x-latin": "caf\xe9"}, True)
    assert listener._parse(_head("GET /a HTTP/1.1", "X-Empty:")) == ("GET", "/a", {"x-empty": ""}, True)


@pytest.mark.parametrize(
    ("lines", "keep_alive"),
    [
        (["GET / HTTP/1.0"], False),
        (["GET / HTTP/1.0", "Connection: keep-alive"], False),
        (["GET / HTTP/1.1", "Connection: close"], False),
        (["GET / HTTP/1.1", "Connection: Close"], False),
        (["GET / HTTP/1.1", "Connection: keep-alive"], True),
        (["GET / HTTP/1.1", "Content-Length: 0"], True),
        (["GET / HTTP/1.1", "Content-Length: 5"], False),
        (["GET / HTTP/1.1", "Transfer-Encoding: chunked"], False),
    ],
)
def test_parse_keeps_alive_only_http_1_1_without_close_or_a_body(lines, keep_alive):
    assert listener._parse(_head(*lines))[3] is keep_alive


@pytest.mark.parametrize(
    "head",
    [
        _head("GET /metrics"),  # two parts
        _head("GET /metrics HTTP/1.1 extra"),  # four
        _head("GET  /metrics HTTP/1.1"),  # an empty part
        _head("G3T /metrics HTTP/1.1"),  # a method of letters only
        _head("GET metrics HTTP/1.1"),  # an origin-form target
        _head("GET * HTTP/1.1"),
        _head("GET /metrics HTTP/2.0"),
        _head("GET /metrics http/1.1"),
        _head("GET /metrics HTTP/1.1", "NoColon"),
        _head("GET /metrics HTTP/1.1", ": no name"),
        _head("GET /metrics HTTP/1.1", "Host : space before the colon"),
        _head("GET /metrics HTTP/1.1", " Host: folded"),
        b"\r\n\r\n",
    ],
)
def test_parse_refuses_a_malformed_head(head):
    assert listener._parse(head) is None


def test_error_is_the_projects_error_shape():
    assert listener._error("not_found", "Nothing here.") == (
        b'{"error": "not_found", "message": "Nothing here."}',
        {"Content-Type": "application/json"},
    )


# ---------------------------------------------------------------------- answers


def test_healthz_answers_alive_and_keeps_the_connection(serve):
    served = serve()
    client = served.connect()
    client.request("GET", "/healthz")
    assert client.raw() == (
        b"HTTP/1.1 200 OK\r\nServer: aura-metrics\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
        b'{"status": "alive"}'
    )
    client.request("HEAD", "/healthz")  # the same connection: the head, and no body
    assert client.raw(head_only=True) == (
        b"HTTP/1.1 200 OK\r\nServer: aura-metrics\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
    )
    client.request("GET", "/healthz", "Connection: close")  # a body sent after HEAD would show here
    assert client.raw() == (
        b'HTTP/1.1 200 OK\r\nServer: aura-metrics\r\nContent-Length: 19\r\nConnection: close\r\n\r\n{"status": "alive"}'
    )
    assert client.closed()


def test_http_1_0_and_a_request_with_a_body_are_answered_then_closed(serve):
    served = serve()
    old = served.connect()
    old.request("GET", "/healthz", version="HTTP/1.0")
    status, headers, _ = old.answer()
    assert (status, headers["connection"]) == (200, "close")
    assert old.closed()
    posted = served.connect()
    posted.request("POST", "/metrics", "Content-Length: 4")
    posted.send(b"body")  # never read: the connection cannot be reused
    status, headers, _ = posted.answer()
    assert (status, headers["connection"]) == (405, "close")
    assert posted.closed()


def test_other_methods_and_paths_are_refused_in_the_error_shape(serve):
    served = serve()
    client = served.connect()
    client.request("POST", "/metrics")
    body = b'{"error": "method_not_allowed", "message": "Only GET and HEAD are served here."}'
    assert client.raw() == _json_answer("405 Method Not Allowed", body, b"Allow: GET, HEAD\r\n")
    for path in ("/nothing", "/metricsx", "/readyz"):  # /readyz: no readiness check given
        client.request("GET", path)
        body = b'{"error": "not_found", "message": "Only /metrics, /healthz and /readyz are served here."}'
        assert client.raw() == _json_answer("404 Not Found", body)
    client.request("DELETE", "/healthz")
    assert client.answer()[0] == 405
    client.request("HEAD", "/nothing")
    assert client.answer(head_only=True)[0] == 404


def test_a_malformed_request_is_answered_400_and_closed(serve):
    served = serve()
    client = served.connect()
    client.send(b"NOT HTTP AT ALL\r\n\r\n")
    body = b'{"error": "bad_request", "message": "Malformed HTTP request."}'
    assert client.raw() == _json_answer("400 Bad Request", body, close=True)
    assert client.closed()


def test_readyz_asks_the_readiness_check(serve):
    answers: list[tuple[bool, dict[str, object]]] = [(True, {"workers": 2}), (False, {"workers": 0})]
    served = serve(readiness=lambda: answers.pop(0))
    client = served.connect()
    client.request("GET", "/readyz")
    body = b'{"status": "ready", "workers": 2}'
    assert client.raw() == _json_answer("200 OK", body)
    client.request("GET", "/readyz")
    body = b'{"error": "service_unavailable", "message": "This instance cannot serve yet.", "workers": 0}'
    assert client.raw() == _json_answer("503 Service Unavailable", body, b"Retry-After: 1\r\n")


def test_a_failing_readiness_check_is_not_ready_and_the_loop_goes_on(serve):
    def broken() -> tuple[bool, dict[str, object]]:
        raise RuntimeError("boom")

    served = serve(readiness=broken)
    status, headers, body = served.get("/readyz")
    assert (status, headers["retry-after"], headers["content-type"]) == (503, "1", "application/json")
    # The check's message, in the answer's place: nothing of the exception's text.
    assert json.loads(body) == {"error": "service_unavailable", "message": "The readiness check failed: RuntimeError."}
    assert served.get("/healthz")[0] == 200


def test_metrics_are_rendered_off_the_loop_with_the_clients_accept_and_encoding(serve):
    calls: list[tuple[str | None, str | None, str]] = []

    def render(accept: str | None, encoding: str | None) -> tuple[bytes, dict[str, str]]:
        calls.append((accept, encoding, threading.current_thread().name))
        return b"gzipped", {"Content-Type": "application/openmetrics-text", "Content-Encoding": "gzip"}

    served = serve(render=render)
    client = served.connect()
    client.request("GET", "/metrics?x=1", "Accept: application/openmetrics-text", "Accept-Encoding: gzip")
    assert client.raw() == (
        b"HTTP/1.1 200 OK\r\nServer: aura-metrics\r\nContent-Type: application/openmetrics-text\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\ngzipped"
    )
    client.request("HEAD", "/metrics")
    assert client.answer(head_only=True)[:2] == (
        200,
        {
            "server": "aura-metrics",
            "content-type": "application/openmetrics-text",
            "content-encoding": "gzip",
            "content-length": "7",
            "connection": "keep-alive",
        },
    )
    client.request("GET", "/metrics")
    assert client.answer()[2] == b"gzipped"  # nothing was left over from the HEAD
    assert [(accept, encoding) for accept, encoding, _ in calls] == [
        ("application/openmetrics-text", "gzip"),
        (None, None),
        (None, None),
    ]
    assert all(name.startswith(RENDER_PREFIX) for _, _, name in calls), calls
    assert served.server.thread.name == "aura-metrics-listener" and served.server.thread.daemon


def test_a_render_that_fails_is_a_503_and_gives_its_slot_back(serve):
    failures = [OSError("no such directory")]

    def render(accept: str | None, encoding: str | None) -> tuple[bytes, dict[str, str]]:
        if failures:
            raise failures.pop()
        return METRICS, {}

    served = serve(render=render, MAX_SCRAPES=1)
    client = served.connect()
    client.request("GET", "/metrics")
    body = b'{"error": "service_unavailable", "message": "Metrics are unavailable: no such directory"}'
    assert client.raw() == _json_answer("503 Service Unavailable", body, b"Retry-After: 15\r\n")
    client.request("GET", "/metrics")
    assert client.answer()[::2] == (200, METRICS)


def test_metrics_need_the_bearer_token_when_one_is_set(serve):
    served = serve(auth_token="s3cret")
    body = b'{"error": "unauthorized", "message": "A valid Bearer token is required."}'
    for headers in ((), ("Authorization: Bearer wrong",), ("Authorization: s3cret",), ("Authorization: Bearer s3cre",)):
        client = served.connect()
        client.request("GET", "/metrics", *headers)
        assert client.raw() == _json_answer("401 Unauthorized", body, b"WWW-Authenticate: Bearer\r\n")
    assert served.get("/metrics", "Authorization: Bearer s3cret")[::2] == (200, METRICS)
    assert served.get("/metrics", "authorization: Bearer s3cret")[::2] == (200, METRICS)
    assert served.get("/healthz")[0] == 200  # the probes need no token
    assert serve().get("/metrics")[::2] == (200, METRICS)  # no token set: none asked


def test_head_is_answered_without_its_body_on_every_path(serve, gate):
    """Each answer to HEAD is the head alone: the next answer on the connection starts clean."""
    failures = [OSError("gone")]

    def render(accept: str | None, encoding: str | None) -> tuple[bytes, dict[str, str]]:
        if failures:
            raise failures.pop()
        return gate(accept, encoding)

    served = serve(render=render, auth_token="t", readiness=lambda: (True, {}), MAX_SCRAPES=1, RENDER_THREADS=1)
    client = served.connect()
    expected = [
        ("/readyz", (), 200),
        ("/nothing", (), 404),
        ("/metrics", (), 401),
        ("/metrics", ("Authorization: Bearer t",), 503),  # the render fails
    ]
    for path, headers, status in expected:
        client.request("HEAD", path, *headers)
        assert client.answer(head_only=True)[0] == status, path
    busy = served.connect()
    busy.request("GET", "/metrics", "Authorization: Bearer t")
    served.until(lambda: served.server._scrapes == 1, "one scrape under way")
    client.request("HEAD", "/metrics", "Authorization: Bearer t")
    assert client.answer(head_only=True)[0] == 503  # too many
    gate.release.set()
    assert busy.answer()[0] == 200
    served.until(lambda: served.server._scrapes == 0, "the slot given back")
    client.request("HEAD", "/metrics", "Authorization: Bearer t")
    assert client.answer(head_only=True)[0] == 200
    client.request("GET", "/healthz")
    assert client.answer() == (200, client_headers(19), b'{"status": "alive"}')


def client_headers(length: int) -> dict[str, str]:
    return {"server": "aura-metrics", "content-length": str(length), "connection": "keep-alive"}


# ---------------------------------------------------------------------- caps and timeouts


def test_scrapes_beyond_max_scrapes_are_refused_until_one_ends(serve, gate):
    served = serve(render=gate, MAX_SCRAPES=2, RENDER_THREADS=2)
    first, second = served.connect(), served.connect()
    first.request("GET", "/metrics")
    second.request("GET", "/metrics")
    served.until(lambda: served.server._scrapes == 2, "two scrapes under way")
    third = served.connect()
    third.request("GET", "/metrics")
    body = b'{"error": "service_unavailable", "message": "Too many scrapes at once; try again."}'
    assert third.raw() == _json_answer("503 Service Unavailable", body, b"Retry-After: 1\r\n")
    assert served.get("/healthz")[0] == 200  # the probe is answered meanwhile
    gate.release.set()
    assert first.answer()[::2] == (200, METRICS) and second.answer()[::2] == (200, METRICS)
    served.until(lambda: served.server._scrapes == 0, "the slots given back")
    third.request("GET", "/metrics")
    assert third.answer()[0] == 200


def test_scrapes_render_on_render_threads_threads(serve, gate):
    served = serve(render=gate, MAX_SCRAPES=3, RENDER_THREADS=2)
    clients = [served.connect() for _ in range(3)]
    for client in clients:
        client.request("GET", "/metrics")
    # Each scrape is handed to the pool in the loop step that counts it.
    served.until(lambda: served.server._scrapes == 3, "three scrapes handed to the pool")
    assert len(_render_threads()) == 2, _render_threads()
    gate.release.set()
    for client in clients:
        assert client.answer()[0] == 200
    assert gate.entered == 3 and all(name.startswith(RENDER_PREFIX) for name in gate.threads)


def test_a_head_must_arrive_within_header_timeout(serve):
    served = serve(HEADER_TIMEOUT=0.2)
    silent = served.connect()
    silent.send(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")  # and never the blank line
    assert silent.closed()
    idle = served.connect()  # the next head is timed from the previous answer
    idle.request("GET", "/healthz")
    assert idle.answer()[0] == 200
    assert idle.closed()


def test_a_head_over_max_head_bytes_is_answered_431_and_closed(serve):
    served = serve(MAX_HEAD_BYTES=256)
    fits = served.connect()
    fits.request("GET", "/healthz", "X-Padding: " + "a" * 150)
    assert fits.answer()[0] == 200
    client = served.connect()
    client.send(b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"a" * 300)  # no end in sight
    body = b'{"error": "request_too_large", "message": "The request head is too large."}'
    assert client.raw() == _json_answer("431 Request Header Fields Too Large", body, close=True)
    assert client.closed()


def test_at_the_connection_cap_a_newcomer_closes_the_oldest_head_still_arriving(serve):
    served = serve(MAX_CONNECTIONS=3)
    server = served.server
    slow = []
    for n in range(3):  # one at a time: the oldest is the first
        slow.append(served.connect())
        slow[-1].send(b"GET /healthz HTTP/1.1\r\n")
        served.until(lambda n=n: len(server._waiting) == n + 1, "the head waited for")
    # Two newcomers accepted in one step of the loop: each closes one of the oldest two.
    resume = served.paused()
    newcomers = [served.connect(), served.connect()]
    resume.set()
    assert slow[0].closed() and slow[1].closed()
    slow[2].send(b"Host: test\r\n\r\n")  # still open, still read
    assert slow[2].answer()[0] == 200
    for client in newcomers:
        client.request("GET", "/healthz")
        assert client.answer()[0] == 200
    served.until(lambda: len(server._alive) == 3, "the two closed ones no longer counted")


def test_at_the_connection_cap_with_every_connection_answered_the_newcomer_is_closed(serve, gate):
    served = serve(render=gate, MAX_CONNECTIONS=2, MAX_SCRAPES=2, RENDER_THREADS=2)
    answered = [served.connect(), served.connect()]
    for client in answered:
        client.request("GET", "/metrics")
    served.until(lambda: served.server._scrapes == 2, "both being answered")
    refused = served.connect()
    refused.request("GET", "/healthz")
    assert refused.closed()  # no answer: there was no connection to close in its place
    served.until(lambda: len(served.server._alive) == 2, "the refused one not counted")
    gate.release.set()
    for client in answered:
        assert client.answer()[::2] == (200, METRICS)
    for client in answered:
        client.close()
    served.until(lambda: not served.server._alive, "every connection let go")
    assert served.get("/healthz")[0] == 200


def test_a_client_that_does_not_take_its_answer_is_disconnected(serve):
    big = b"x" * (16 * 1024 * 1024)
    bodies = [big, METRICS]
    served = serve(render=lambda accept, encoding: (bodies.pop(0), {}), WRITE_TIMEOUT=0.2, MAX_SCRAPES=1)
    server = served.server
    stuck = served.connect(rcvbuf=4096)
    stuck.request("GET", "/metrics")
    served.until(lambda: server._scrapes == 1, "the scrape under way")
    limits = served.on_loop(lambda: [writer.transport.get_write_buffer_limits() for writer in server._alive])
    assert limits == [(4096, 16384)]
    served.until(lambda: server._scrapes == 0 and not server._alive, "the stuck client dropped")
    received = 0
    try:
        while chunk := stuck.sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    assert received < len(big)
    assert served.get("/metrics")[::2] == (200, METRICS)  # its slot was given back


def test_clients_that_reset_or_vanish_leave_nothing_behind(serve):
    served = serve()
    half = served.connect()
    half.send(b"GET /healthz HTTP/1.1\r\n")
    reset = served.connect()
    reset.send(b"GET /healthz HTTP/1.1\r\n")
    served.until(lambda: len(served.server._waiting) == 2, "both heads waited for")
    half.sock.shutdown(socket.SHUT_WR)  # the head ends early
    reset.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    reset.close()  # an RST
    served.until(lambda: not served.server._alive, "both let go")
    assert half.closed()


# ---------------------------------------------------------------------- the socket


def test_the_listener_binds_the_address_it_is_given(serve):
    served = serve()
    host, port = served.server.address
    assert host == "127.0.0.1" and port > 0
    six = serve(host="::1")
    assert six.server.sock.family == socket.AF_INET6 and six.server.address[0] == "::1"
    assert six.get("/healthz")[0] == 200


def test_the_listener_binds_the_port_it_is_given(serve):
    port = free_port()
    served = serve(port=port)
    assert served.server.address == ("127.0.0.1", port)
    assert served.get("/healthz")[0] == 200


def test_local_port_names_the_port_of_internet_sockets_only(tmp_path):
    with (
        socket.create_server(("127.0.0.1", 0)) as four,
        socket.create_server(("::1", 0), family=socket.AF_INET6) as six,
    ):
        assert listener._local_port(four.fileno()) == four.getsockname()[1]
        assert listener._local_port(six.fileno()) == six.getsockname()[1]
        four.getsockname()  # still open: the descriptor was not closed
        with socket.socket(socket.AF_UNIX) as unix:
            unix.bind(str(tmp_path / "s"))
            assert listener._local_port(unix.fileno()) is None
        with open(tmp_path / "f", "w") as f:
            assert listener._local_port(f.fileno()) is None
        with socket.socket() as unbound:
            assert listener._local_port(unbound.fileno()) == 0
        fd = os.dup(four.fileno())
        os.close(fd)
        assert listener._local_port(fd) is None


def test_open_descriptors_lists_this_processes_descriptors(tmp_path):
    with open(tmp_path / "f", "w") as f:
        fds = listener._open_descriptors()
        assert f.fileno() in fds and 0 in fds and 1 in fds
        assert all(isinstance(fd, int) for fd in fds)


def test_open_descriptors_without_proc_reads_dev_fd(monkeypatch, tmp_path):
    """BSD and macOS have no /proc: /dev/fd lists the same descriptors."""
    listdir = os.listdir

    def no_proc(path):
        if str(path).startswith("/proc"):
            raise FileNotFoundError(path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", no_proc)
    with open(tmp_path / "f", "w") as f:
        assert f.fileno() in listener._open_descriptors()
    monkeypatch.setattr(os, "listdir", lambda path: (_ for _ in ()).throw(OSError(path)))
    assert listener._open_descriptors() == []  # neither: nothing to let go of


def test_close_inherited_lets_go_of_the_listening_and_accepted_sockets_only():
    """In a forked worker: each socket on the listener's port points at /dev/null after."""
    server = MetricsListener("127.0.0.1", 0, _render)  # not started: the worker has no loop thread
    try:
        port = server.address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            accepted, _ = _accept(server.sock)
            with accepted, socket.create_server(("127.0.0.1", 0)) as other:
                listening_fd, accepted_fd = server.sock.fileno(), accepted.fileno()
                before = set(listener._open_descriptors())
                server.close_inherited()
                for fd in (listening_fd, accepted_fd):  # still taken, now /dev/null
                    assert not stat.S_ISSOCK(os.fstat(fd).st_mode)
                    assert os.path.samestat(os.fstat(fd), os.stat(os.devnull))
                assert listener._local_port(other.fileno()) == other.getsockname()[1]  # left alone
                assert listener._local_port(client.fileno()) is not None  # the client's end: another port
                assert set(listener._open_descriptors()) == before  # its /dev/null closed again
                assert client.recv(1) == b""  # the accepted copy was the only one: closed
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    finally:
        server.sock.close()
        server._executor.shutdown()


def _accept(sock: socket.socket) -> tuple[socket.socket, object]:
    sock.setblocking(True)
    sock.settimeout(TIMEOUT)
    try:
        return sock.accept()
    finally:
        sock.setblocking(False)
