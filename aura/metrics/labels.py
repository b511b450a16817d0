"""Label values a client chooses, bounded per instance: the first N distinct values, then one overflow.

A per-process cap is not enough under Gunicorn: each recycled worker would start a fresh cap,
and the dead workers' series live on in the archive. ``SharedLabelValues`` keeps the admitted
values in the instance's metrics directory (``.aura-labels.<name>``, one JSON string a line,
appended under ``flock``), so every worker, past and present, admits the same at most ``cap``
values. Once the file is full each process holds the complete set and decides without I/O.
Without a directory (one process) or when the file cannot be used, the cap holds per process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading

from .fileformat import LABELS_PREFIX

log = logging.getLogger("aura.metrics")


class SharedLabelValues:
    """Admit at most ``cap`` distinct values of one label across an instance; others become ``overflow``."""

    def __init__(self, name: str, cap: int, directory: str | None, overflow: str = "other"):
        if not name.replace("_", "").isalnum():
            raise ValueError(f"invalid label name {name!r}")
        self.cap = cap
        self.overflow = overflow
        self.path = os.path.join(directory, LABELS_PREFIX + name) if directory else None
        self._admitted: set[str] = set()
        self._full = False
        self._lock = threading.Lock()
        self._failure_logged = False

    def label(self, value: str) -> str:
        """The label to record for ``value``: itself if admitted, else the overflow value."""
        if value in self._admitted:
            return value
        if self._full:
            return self.overflow
        with self._lock:
            if self.path is not None:
                try:
                    return self._admit_shared(value)
                except (OSError, ValueError) as exc:  # unusable or damaged file
                    if not self._failure_logged:
                        self._failure_logged = True
                        log.warning("label values of %s are capped per process: %s", self.path, exc)
            if len(self._admitted) < self.cap:
                self._admitted.add(value)
                return value
            self._full = True
            return self.overflow

    def _admit_shared(self, value: str) -> str:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)  # type: ignore[arg-type]
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "r", encoding="utf-8") as f:
                f.seek(0)
                admitted = {json.loads(line) for line in f if line.endswith("\n")}
            if value not in admitted and len(admitted) < self.cap:
                os.write(fd, (json.dumps(value) + "\n").encode("utf-8"))
                admitted.add(value)
            self._admitted = admitted
            self._full = len(admitted) >= self.cap
            return value if value in admitted else self.overflow
        finally:
            os.close(fd)  # releases the lock
