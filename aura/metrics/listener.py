"""A metrics listener in the Gunicorn master: scrapes that do not wait behind busy workers.

``/metrics`` on the app port is served by a worker, so when every worker is busy or stuck a
scrape waits in the same listen backlog as the requests it should report on. This listener is a
thread of the master (it dies with it and leaves no process behind) serving the same exposition
from the same directory, plus ``/healthz``, which tells that the instance is alive without a
worker (busy is not dead) - the Kubernetes liveness probe - and ``/readyz``, which asks the
``readiness`` callable the server gave it whether this instance can serve (gunicorn.conf.py: a
live worker that has loaded the app) - the readiness probe. Neither asks a dependency.

It lives in the master, so nothing a client does may grow the master or starve the probe:

* one thread runs an asyncio loop for every connection (a connection costs a few KiB, never a
  thread); ``/healthz`` and every error are answered on that loop, at once;
* a request head (request line and headers) must arrive whole within ``HEADER_TIMEOUT`` and fit
  in ``MAX_HEAD_BYTES`` (431 beyond); bodies are never read;
* at most ``MAX_CONNECTIONS`` connections are open: a new one closes the oldest connection still
  sending its head (a slow client's, in a flood), so a probe that sends its request at once is
  always read; when every open connection is being answered the newcomer is closed instead;
* scrapes render on ``RENDER_THREADS`` threads; at most ``MAX_SCRAPES`` are rendering or being
  sent at once (503 beyond), so at most that many bodies are held, and a client that does not
  read its answer within ``WRITE_TIMEOUT`` is disconnected.

tests/gunicorn/test_listener_flood.py floods a real master and reads its RSS, threads and
descriptors from /proc.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

log = logging.getLogger("aura.metrics")

Render = Callable[[str | None, str | None], tuple[bytes, dict[str, str]]]
# () -> (ready, details for the answer); cheap and non-blocking: it runs on the loop's thread.
Readiness = Callable[[], tuple[bool, dict[str, object]]]

MAX_CONNECTIONS = 128  # open at once; more than one accept batch (asyncio accepts 100 at a time)
HEADER_TIMEOUT = 5.0  # seconds for a whole request head, from connect or from the previous answer
MAX_HEAD_BYTES = 8192  # request line + headers
WRITE_TIMEOUT = 10.0  # seconds for a client to take an answer
RENDER_THREADS = 2  # scrapes rendered at once
MAX_SCRAPES = 8  # scrapes rendering, waiting for a thread or being sent; 503 beyond
_WRITE_BUFFER = 16384  # bytes queued per connection before the answer waits for the client


class MetricsListener:
    """``GET /metrics``, ``/healthz`` and ``/readyz`` on their own port, served by one asyncio thread."""

    def __init__(self, host: str, port: int, render: Render, auth_token: str = ""):
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self.sock = socket.create_server(address[:2], family=family, backlog=128)
        self.sock.setblocking(False)
        self._render = render
        self.readiness: Readiness | None = None  # set by the server; /readyz is 404 until then
        self._expected = f"Bearer {auth_token}".encode() if auth_token else None
        self._alive: set[asyncio.StreamWriter] = set()  # open connections
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # of which sending a head, oldest first
        self._scrapes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="aura-metrics-render")
        self.thread = threading.Thread(target=self._serve, name="aura-metrics-listener", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> MetricsListener:
        """Serve in the background."""
        self.thread.start()
        return self

    def close_inherited(self) -> None:
        """In a forked worker: let go of the listener's sockets (the threads did not fork, the
        descriptors did).

        Fork copies every descriptor, so a worker forked while a probe or scrape is connected
        holds that connection too: when the master closes it (header timeout, eviction, an
        answer with ``Connection: close``) the peer sees nothing, because the worker's copy keeps
        it open for the worker's lifetime. Each socket bound to the listener's port - the
        listening one and every accepted one, registered with the loop yet or not - is pointed at
        /dev/null: the copy is released, and the descriptor number stays taken, so the asyncio
        objects copied with it can never close a number the worker has reused since.
        """
        port = self.address[1]
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for fd in _open_descriptors():
                if fd != null and _local_port(fd) == port:
                    os.dup2(null, fd)
        finally:
            os.close(null)

    # ------------------------------------------------------------------ the loop's thread

    def _serve(self) -> None:
        self._loop = loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.start_server(self._connection, sock=self.sock, limit=MAX_HEAD_BYTES))
        loop.run_forever()

    def _admit(self, writer: asyncio.StreamWriter) -> bool:
        """Count a new connection in; at the cap, close the oldest one still sending its head."""
        self._alive.add(writer)
        while len(self._alive) > MAX_CONNECTIONS:
            oldest = next(iter(self._waiting), None)
            if oldest is None:  # every other connection is being answered: refuse this one
                self._alive.discard(writer)
                return False
            del self._waiting[oldest]
            self._alive.discard(oldest)
            oldest.transport.abort()
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER)
        if not self._admit(writer):
            writer.transport.abort()
            return
        try:
            keep_alive = True
            while keep_alive:
                self._waiting[writer] = None  # evictable until its head has arrived
                try:
                    async with asyncio.timeout(HEADER_TIMEOUT):
                        head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    await self._send(writer, "GET", 431, _error("request_too_large", "The request head is too large."))
                    return
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return  # slow, gone, or evicted
                finally:
                    self._waiting.pop(writer, None)
                request = _parse(head)
                if request is None:
                    await self._send(writer, "GET", 400, _error("bad_request", "Malformed HTTP request."))
                    return
                method, path, headers, keep_alive = request
                await self._answer(writer, method, path, headers, keep_alive)
        except (TimeoutError, ConnectionError):
            pass  # a client that does not take its answer
        finally:
            self._alive.discard(writer)
            writer.transport.abort()

    async def _answer(
        self, writer: asyncio.StreamWriter, method: str, path: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        if method not in ("GET", "HEAD"):
            body = _error("method_not_allowed", "Only GET and HEAD are served here.")
            await self._send(writer, method, 405, body, {"Allow": "GET, HEAD"}, keep_alive)
        elif path == "/healthz":
            await self._send(writer, method, 200, (json.dumps({"status": "alive"}).encode(), {}), keep_alive=keep_alive)
        elif path == "/readyz" and self.readiness is not None:
            await self._send(writer, method, *self._ready(), keep_alive=keep_alive)
        elif path != "/metrics":
            body = _error("not_found", "Only /metrics, /healthz and /readyz are served here.")
            await self._send(writer, method, 404, body, keep_alive=keep_alive)
        elif self._expected and not hmac.compare_digest(headers.get("authorization", "").encode(), self._expected):
            body = _error("unauthorized", "A valid Bearer token is required.")
            await self._send(writer, method, 401, body, {"WWW-Authenticate": "Bearer"}, keep_alive)
        elif self._scrapes >= MAX_SCRAPES:
            body = _error("service_unavailable", "Too many scrapes at once; try again.")
            await self._send(writer, method, 503, body, {"Retry-After": "1"}, keep_alive)
        else:
            self._scrapes += 1
            try:
                await self._scrape(writer, method, headers, keep_alive)
            finally:
                self._scrapes -= 1

    def _ready(self) -> tuple[int, tuple[bytes, dict[str, str]]]:
        assert self.readiness is not None
        try:
            ready, details = self.readiness()
        except Exception as exc:  # noqa: BLE001 - a failing check means not ready, never a dead loop
            log.warning("readiness check failed: %s", exc)
            ready, details = False, {"message": f"The readiness check failed: {exc.__class__.__name__}."}
        if ready:
            return 200, (json.dumps({"status": "ready", **details}).encode(), {"Content-Type": "application/json"})
        body = {"error": "service_unavailable", "message": "This instance cannot serve yet.", **details}
        return 503, (json.dumps(body).encode(), {"Content-Type": "application/json", "Retry-After": "1"})

    async def _scrape(
        self, writer: asyncio.StreamWriter, method: str, headers: dict[str, str], keep_alive: bool
    ) -> None:
        assert self._loop is not None
        accept, encoding = headers.get("accept"), headers.get("accept-encoding")
        try:
            body, extra = await self._loop.run_in_executor(self._executor, self._render, accept, encoding)
        except Exception as exc:  # noqa: BLE001 - the directory, not this request
            log.warning("metrics listener cannot render: %s", exc)
            answer = _error("service_unavailable", f"Metrics are unavailable: {exc}")
            await self._send(writer, method, 503, answer, {"Retry-After": "15"}, keep_alive)
            return
        await self._send(writer, method, 200, (body, extra), keep_alive=keep_alive)

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        method: str,
        status: int,
        answer: tuple[bytes, dict[str, str]],
        headers: dict[str, str] | None = None,
        keep_alive: bool = False,
    ) -> None:
        body, own = answer
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: aura-metrics"]
        lines += [f"{name}: {value}" for name, value in {**own, **(headers or {})}.items()]
        lines += [f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if method == "HEAD" else body))
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()


def _error(code: str, message: str) -> tuple[bytes, dict[str, str]]:
    """The project's error shape, as a body and its headers."""
    return json.dumps({"error": code, "message": message}).encode(), {"Content-Type": "application/json"}


def _parse(head: bytes) -> tuple[str, str, dict[str, str], bool] | None:
    """(method, path without query, lower-cased headers, keep-alive) of a request head, or None."""
    try:
        lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not method.isalpha() or not target.startswith("/") or version not in ("HTTP/1.0", "HTTP/1.1"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
    keep_alive = version == "HTTP/1.1" and connection != "close" and not has_body  # bodies are never read
    return method, target.split("?", 1)[0], headers, keep_alive


def _open_descriptors() -> list[int]:
    """This process's open descriptors (Linux: /proc/self/fd; BSD and macOS: /dev/fd)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return [int(name) for name in os.listdir(directory)]
        except OSError:
            continue
    return []


def _local_port(fd: int) -> int | None:
    """The local port of an internet socket ``fd``; None for anything else (or a closed fd)."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        address = sock.getsockname() if sock.family in (socket.AF_INET, socket.AF_INET6) else None
    except OSError:
        address = None
    finally:
        sock.detach()  # the descriptor is not ours to close
    return int(address[1]) if address else None
