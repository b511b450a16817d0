"""Gunicorn hooks: the instance's directory, worker identities and exits, dead workers merged.

``GunicornMetrics.start()`` runs in the master while gunicorn.conf.py is read, before the app
can record anything: it claims the directory (``directory.claim_directory``), points
``PROMETHEUS_MULTIPROC_DIR`` at it for the workers and installs the value class. Its methods
are the hooks of the same names. It also knows what only Gunicorn knows - why a worker ended,
which sockets it listens on - and serves the metrics listener (``listener``) from the master.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter
from prometheus_client.mmap_dict import mmap_key
from prometheus_client.multiprocess import mark_process_dead

from . import inflight
from .archive import Row, merge_all_dead
from .directory import Claim, claim_directory
from .exposition import render, serve_instance
from .fileformat import parse_key
from .instance import InstanceCollector
from .listener import MetricsListener
from .processes import run_worker_start, serve_in_workers, worker_identifier
from .values import install_value_class, use_worker_identifier

log = logging.getLogger("aura.metrics")

ROOT_VARIABLE = "AURA_METRICS_ROOT"  # the requested root, kept for a USR2 re-exec's new master
EXIT_REASONS = ("max_requests", "timeout", "crash", "shutdown")
GC_SAMPLE_SECONDS = 1.0
_EXITS = ("gunicorn_worker_exits", "Workers that ended, by reason.")
# (method, endpoint, status, seconds) -> the (type, row) pairs recording one request
RequestRows = Callable[[str, str, str, float], list[tuple[str, Row]]]


def _exit_key(reason: str) -> str:
    name, help_text = _EXITS
    return mmap_key(name, name + "_total", ["reason"], [reason], help_text)


class GunicornMetrics:
    """One Gunicorn instance's multiprocess metrics."""

    def __init__(
        self, claim: Claim, problem: str | None, metrics_port: int = 0, auth_token: str = "", metrics_host: str = ""
    ):
        self.claim = claim
        self.problem = problem  # why prometheus_client's stock value class and collector are used, if they are
        self.master_pid = os.getpid()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host or "127.0.0.1"
        self.auth_token = auth_token
        self.listen_fds: list[int] = []
        self.listener: MetricsListener | None = None
        self.aborted = False  # in a worker: the master asked it to abort (timeout)
        self.timed_out: set[str] = set()  # in the master: identifiers of workers it aborted
        self.exits = Counter(*_EXITS, ["reason"], registry=None)
        self.gc_collections = Counter(
            "python_gc_collections",
            "Garbage collections by generation, summed over workers.",
            ["generation"],
            registry=None,
        )
        self._gc_base: list[int] = []
        self._gc_counted: list[int] = []

    @classmethod
    def start(
        cls,
        default_root: str,
        metrics_port: int = 0,
        auth_token: str = "",
        metrics_host: str = "",
        requested_root: str = "",
    ) -> GunicornMetrics:
        """Claim this instance's directory under the requested root and install the value class.

        The root is ``requested_root`` (``PROMETHEUS_MULTIPROC_DIR`` as the operator set it, read
        by the settings), else ``default_root``. The claimed directory is then written to
        ``PROMETHEUS_MULTIPROC_DIR`` for the workers (their settings, and prometheus_client). A
        re-exec'd master (USR2) inherits the old master's choice in that variable, so the request
        is kept in AURA_METRICS_ROOT and wins. ``metrics_port`` (0: none) starts the
        metrics listener on ``metrics_host`` once the server is ready; ``auth_token`` protects its /metrics.
        """
        claim = claim_directory(os.environ.get(ROOT_VARIABLE) or requested_root or default_root)
        os.environ[ROOT_VARIABLE] = claim.root
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = claim.path
        metrics = cls(claim, install_value_class(), metrics_port, auth_token, metrics_host)
        serve_instance(claim, metrics.collectors)  # this process's (and its workers') scrapes are the instance's
        serve_in_workers()  # what the app asks to run on_worker_start waits for post_worker_init
        return metrics

    def collectors(self) -> list[InstanceCollector]:
        """Scrape-time collectors of the whole instance (process metrics, workers, backlog)."""
        return [InstanceCollector(self.master_pid, self.listen_fds)]

    # ------------------------------------------------------------------ master

    def on_starting(self, server: Any) -> None:
        """Say where metrics go, or why they are degraded (the server starts either way)."""
        if self.claim.error:
            # Requests matter more than metrics: workers count in memory, /metrics answers 503.
            server.log.error("metrics are degraded: %s", self.claim.error)
        else:
            server.log.info("prometheus multiprocess directory: %s", self.claim.path)
        if self.problem:
            server.log.warning(
                "%s; using its stock value class and collector (dead workers are not "
                "merged, so scrapes slow down as workers recycle)",
                self.problem,
            )

    def when_ready(self, server: Any) -> None:
        """Start the metrics listener on ``metrics_host`` (METRICS_HOST, or the bind's host)."""
        self.listen_fds = [listener.fileno() for listener in server.LISTENERS]
        if not self.metrics_port or self.listener is not None:
            return
        host = self.metrics_host
        try:
            self.listener = MetricsListener(
                host,
                self.metrics_port,
                lambda accept, encoding: render(self.claim.path, accept, encoding),
                self.auth_token,
            ).start()
        except OSError as exc:  # a port in use must not stop the service
            server.log.error("metrics listener not started on %s:%s: %s", host, self.metrics_port, exc)
            return
        server.log.info("metrics listener on %s:%s", *self.listener.address)

    def child_exit(self, server: Any, worker: Any, request_rows: RequestRows | None = None) -> None:
        """In the master, after a worker died: fold every dead worker's files into the archive.

        All dead ones, not just this one: Gunicorn reaps some workers without calling
        child_exit, and a merge that timed out on the lock leaves files for the next one. A
        worker that could not count its own exit (killed) is counted here: ``timeout`` if the
        master aborted it, else ``crash``. The requests it was running when it died are
        recorded here too, by ``request_rows(method, endpoint, status, seconds)``: status 504
        after a timeout, else 502 (what a proxy in front answered), ending now.
        """
        try:
            if self.problem:
                mark_process_dead(worker.pid, self.claim.path)
                return
            identifier = worker_identifier(worker.pid, worker.age)
            if worker.aborted:
                self.timed_out.add(identifier)
            self._stamp_death(identifier)
            live = [worker_identifier(pid, w.age) for pid, w in list(server.WORKERS.items())]
            stats = merge_all_dead(
                self.claim.path,
                live,
                extra_rows=lambda i, rows, running: self._death_rows(i, rows, running, request_rows),
            )
            server.log.debug("metrics merge after worker %s: %s", worker.pid, stats)
        except Exception:  # the master must survive any metrics failure
            server.log.exception("could not merge metrics of worker %s", worker.pid)

    def _stamp_death(self, identifier: str) -> None:
        try:
            inflight.stamp_ended(os.path.join(self.claim.path, inflight.file_name(identifier)))
        except FileNotFoundError:
            pass  # no in-flight file (it could not be created): nothing was running that we know of
        except Exception:  # noqa: BLE001 - damaged: the merge discards it, logged; merge anyway
            log.debug("cannot stamp the in-flight file of worker %s", identifier, exc_info=True)

    def _death_rows(
        self,
        identifier: str,
        counter_rows: list[Row],
        running: list[inflight.Running],
        request_rows: RequestRows | None,
    ) -> list[tuple[str, Row]]:
        timed_out = identifier in self.timed_out
        self.timed_out.discard(identifier)
        rows: list[tuple[str, Row]] = []
        if request_rows is not None:
            status = "504" if timed_out else "502"
            for request in running:
                rows += request_rows(request.method, request.endpoint, status, request.seconds)
        if not any(value > 0 and parse_key(key)[0] == _EXITS[0] for key, value, _ in counter_rows):
            # the worker did not count its own exit (its zero-initialised series do not count)
            rows.append(("counter", (_exit_key("timeout" if timed_out else "crash"), 1.0, 0.0)))
        return rows

    # ------------------------------------------------------------------ worker

    def post_fork(self, server: Any, worker: Any) -> None:
        """In the new worker: its identity, its sockets, zero exit counts and GC counting."""
        if self.listener is not None:
            self.listener.close_inherited()
            self.listener = None
        self.listen_fds = [s.fileno() for s in worker.sockets]
        if self.problem:
            return
        identifier = worker_identifier(worker.pid, worker.age)
        use_worker_identifier(identifier, self.claim.path)
        try:
            if not self.claim.error:
                inflight.open_for_worker(self.claim.path, identifier, worker.cfg.threads)
        except OSError as exc:  # busy time is then credited when each request ends
            log.error("cannot create the in-flight file of worker %s: %s", identifier, exc)
        for reason in EXIT_REASONS:
            self.exits.labels(reason).inc(0)
        self._gc_base = [s["collections"] for s in gc.get_stats()]
        self._gc_counted = [0] * len(self._gc_base)
        self.sync_gc()
        threading.Thread(target=self._gc_loop, name="aura-gc-sampler", daemon=True).start()

    def post_worker_init(self, worker: Any) -> None:
        """In the worker, with the app loaded: run what the app asked to run ``on_worker_start``."""
        run_worker_start()

    def worker_abort(self, worker: Any) -> None:
        """In a worker the master aborts (timeout): its exit is a timeout."""
        self.aborted = True

    def worker_exit(self, server: Any, worker: Any) -> None:
        """In the exiting worker: count why it ends (the master counts workers killed outright)."""
        if os.getpid() != worker.pid or self.problem:
            return  # Gunicorn also calls this in the master for a worker that vanished
        exc = sys.exc_info()[1]
        code = exc.code if isinstance(exc, SystemExit) else 0
        if self.aborted:
            reason = "timeout"
        elif code not in (0, None):
            reason = "crash"
        elif worker.nr >= worker.max_requests:
            reason = "max_requests"
        else:
            reason = "shutdown"
        self.sync_gc()
        self.exits.labels(reason).inc()

    def sync_gc(self) -> None:
        """Write this worker's garbage collections since fork into its counters."""
        for generation, (stats, base) in enumerate(zip(gc.get_stats(), self._gc_base, strict=False)):
            done = stats["collections"] - base
            if done > self._gc_counted[generation]:
                self.gc_collections.labels(str(generation)).inc(done - self._gc_counted[generation])
                self._gc_counted[generation] = done

    def _gc_loop(self) -> None:
        pid = os.getpid()
        while os.getpid() == pid:  # a process forked from this worker has no such thread
            time.sleep(GC_SAMPLE_SECONDS)
            try:
                self.sync_gc()
            except Exception:  # noqa: BLE001 - a sampler must never die loudly every second
                log.debug("gc sample failed", exc_info=True)
