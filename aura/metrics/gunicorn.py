"""Gunicorn hooks: the instance's directory, each worker's identity, dead workers merged.

``GunicornMetrics.start()`` runs in the master while gunicorn.conf.py is read, before the app
can record anything: it claims the directory (``directory.claim_directory``), points
``PROMETHEUS_MULTIPROC_DIR`` at it for the workers and installs the value class. Its
``on_starting``, ``post_fork`` and ``child_exit`` methods are the hooks of the same names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from .archive import merge_all_dead
from .directory import Claim, claim_directory
from .fileformat import worker_identifier
from .values import install_value_class, use_worker_identifier

ROOT_VARIABLE = "AURA_METRICS_ROOT"  # the requested root, kept for a USR2 re-exec's new master


@dataclass(frozen=True)
class GunicornMetrics:
    """One Gunicorn instance's multiprocess metrics."""

    claim: Claim
    problem: str | None  # why prometheus_client's stock value class and collector are used, if they are

    @classmethod
    def start(cls, default_root: str) -> GunicornMetrics:
        """Claim this instance's directory under the requested root and install the value class.

        The root is ``PROMETHEUS_MULTIPROC_DIR`` as the operator set it, else ``default_root``.
        A re-exec'd master (USR2) inherits the old master's choice in that variable, so the
        request is kept in AURA_METRICS_ROOT and wins.
        """
        root = os.environ.get(ROOT_VARIABLE) or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or default_root
        claim = claim_directory(root)
        os.environ[ROOT_VARIABLE] = claim.root
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = claim.path
        return cls(claim, install_value_class())

    def on_starting(self, server: Any) -> None:
        """Say where metrics go, or why they are degraded (the server starts either way)."""
        if self.claim.error:
            # Requests matter more than metrics: workers count in memory, /metrics answers 503.
            server.log.error("metrics are degraded: %s", self.claim.error)
        else:
            server.log.info("prometheus multiprocess directory: %s", self.claim.path)
        if self.problem:
            server.log.warning("%s; using its stock value class and collector (dead workers are not "
                               "merged, so scrapes slow down as workers recycle)", self.problem)

    def post_fork(self, server: Any, worker: Any) -> None:
        """In the new worker: name its metric files by an id unique to this worker's lifetime."""
        if not self.problem:
            use_worker_identifier(worker_identifier(worker.pid, worker.age))

    def child_exit(self, server: Any, worker: Any) -> None:
        """In the master, after a worker died: fold every dead worker's files into the archive.

        All dead ones, not just this one: Gunicorn reaps some workers without calling
        child_exit, and a merge that timed out on the lock leaves files for the next one.
        """
        try:
            if self.problem:
                mark_process_dead(worker.pid, self.claim.path)
                return
            live = [worker_identifier(pid, w.age) for pid, w in list(server.WORKERS.items())]
            stats = merge_all_dead(self.claim.path, live)
            server.log.debug("metrics merge after worker %s: %s", worker.pid, stats)
        except Exception:  # the master must survive any metrics failure
            server.log.exception("could not merge metrics of worker %s", worker.pid)
