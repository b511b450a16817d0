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
from typing import Any, ClassVar

from prometheus_client import Counter
from prometheus_client.mmap_dict import mmap_key
from prometheus_client.multiprocess import mark_process_dead

from ._compat import counter_value
from .archive import Row, merge_all_dead
from .directory import Claim, claim_directory
from .fileformat import worker_identifier
from .instance import InstanceCollector
from .listener import MetricsListener
from .values import install_value_class, use_worker_identifier

log = logging.getLogger("aura.metrics")

ROOT_VARIABLE = "AURA_METRICS_ROOT"  # the requested root, kept for a USR2 re-exec's new master
EXIT_REASONS = ("max_requests", "timeout", "crash", "shutdown")
GC_SAMPLE_SECONDS = 1.0
_EXITS = ("gunicorn_worker_exits", "Workers that ended, by reason.")


def _exit_key(reason: str) -> str:
    name, help_text = _EXITS
    return mmap_key(name, name + "_total", ["reason"], [reason], help_text)


class GunicornMetrics:
    """One Gunicorn instance's multiprocess metrics; ``current`` is this process's instance."""

    current: ClassVar[GunicornMetrics | None] = None

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

    @classmethod
    def start(
        cls, default_root: str, metrics_port: int = 0, auth_token: str = "", metrics_host: str = ""
    ) -> GunicornMetrics:
        """Claim this instance's directory under the requested root and install the value class.

        The root is ``PROMETHEUS_MULTIPROC_DIR`` as the operator set it, else ``default_root``.
        A re-exec'd master (USR2) inherits the old master's choice in that variable, so the
        request is kept in AURA_METRICS_ROOT and wins. ``metrics_port`` (0: none) starts the
        metrics listener on ``metrics_host`` once the server is ready; ``auth_token`` protects its /metrics.
        """
        root = os.environ.get(ROOT_VARIABLE) or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or default_root
        claim = claim_directory(root)
        os.environ[ROOT_VARIABLE] = claim.root
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = claim.path
        cls.current = cls(claim, install_value_class(), metrics_port, auth_token, metrics_host)
        return cls.current

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
        from .exposition import render  # here, not at the top: .exposition imports this module

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

    def child_exit(self, server: Any, worker: Any) -> None:
        """In the master, after a worker died: fold every dead worker's files into the archive.

        All dead ones, not just this one: Gunicorn reaps some workers without calling
        child_exit, and a merge that timed out on the lock leaves files for the next one. A
        worker that could not count its own exit (killed) is counted here: ``timeout`` if the
        master aborted it, else ``crash``.
        """
        try:
            if self.problem:
                mark_process_dead(worker.pid, self.claim.path)
                return
            identifier = worker_identifier(worker.pid, worker.age)
            if worker.aborted:
                self.timed_out.add(identifier)
            live = [worker_identifier(pid, w.age) for pid, w in list(server.WORKERS.items())]
            stats = merge_all_dead(self.claim.path, live, extra_counters=self._unrecorded_exit)
            server.log.debug("metrics merge after worker %s: %s", worker.pid, stats)
        except Exception:  # the master must survive any metrics failure
            server.log.exception("could not merge metrics of worker %s", worker.pid)

    def _unrecorded_exit(self, identifier: str, counter_rows: list[Row]) -> list[Row]:
        if any(value > 0 and key.startswith(f'["{_EXITS[0]}"') for key, value, _ in counter_rows):
            return []  # the worker counted its own exit (its zero-initialised series do not count)
        reason = "timeout" if identifier in self.timed_out else "crash"
        self.timed_out.discard(identifier)
        return [(_exit_key(reason), 1.0, 0.0)]

    # ------------------------------------------------------------------ worker

    def post_fork(self, server: Any, worker: Any) -> None:
        """In the new worker: its identity, its sockets, zero exit counts and GC counting."""
        if self.listener is not None:
            self.listener.close_inherited()
            self.listener = None
        self.listen_fds = [s.fileno() for s in worker.sockets]
        if self.problem:
            return
        use_worker_identifier(worker_identifier(worker.pid, worker.age))
        for reason in EXIT_REASONS:
            self.exits.labels(reason).inc(0)
        self._gc_base = [s["collections"] for s in gc.get_stats()]
        self.sync_gc()
        threading.Thread(target=self._gc_loop, name="aura-gc-sampler", daemon=True).start()

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
            child = self.gc_collections.labels(str(generation))
            done = stats["collections"] - base
            seen = counter_value(child).get()
            if done > seen:
                child.inc(done - seen)

    def _gc_loop(self) -> None:
        pid = os.getpid()
        while os.getpid() == pid:  # a process forked from this worker has no such thread
            time.sleep(GC_SAMPLE_SECONDS)
            try:
                self.sync_gc()
            except Exception:  # noqa: BLE001 - a sampler must never die loudly every second
                log.debug("gc sample failed", exc_info=True)
