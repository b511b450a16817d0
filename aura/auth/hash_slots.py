"""An instance-wide budget of password hashes in flight: at most N at once across all workers.

An Argon2id hash at production cost takes a core for a good fraction of a second and 64 MiB.
Each sync worker hashed whatever came in: 40 addresses registering at once kept every worker
hashing, and /healthz on the app port waited behind them (4.9 s median), long enough for a
readiness probe to fail. With this budget at most PASSWORD_HASH_MAX_CONCURRENT hashes run at
once in the instance, whatever the number of workers; a request that finds no slot free is
refused at once (`HashingBusy`, a 429 with Retry-After), never queued, so the other workers stay
free for every other request.

A slot is a lock file in the instance directory (AURA_INSTANCE_PATH/password-hash-slots/) taken
with a non-blocking `flock`. The lock belongs to the open file, which each hash opens afresh
(fork- and thread-safe), and the kernel drops it when its process dies: a worker killed in the
middle of a hash never keeps a slot.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aura.errors import ErrorCode, TooManyRequests


class HashingBusy(TooManyRequests):
    """Every password-hashing slot of the instance is taken: try again in a moment."""

    def __init__(self, slots: int):
        super().__init__(
            ErrorCode.TOO_MANY_CONCURRENT_REQUESTS,
            f"The server is hashing {slots} passwords at once, its most; retry in a moment.",
            limit=f"{slots} at once",
            per="instance",
            retry_after=1,
        )
        self.slots = slots


class HashSlots:
    """N lock files in one directory; `slot()` holds one of them, or raises HashingBusy."""

    def __init__(self, directory: Path, slots: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = [directory / f"slot-{n}.lock" for n in range(slots)]

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a free slot while the body runs; HashingBusy at once when none is free."""
        fd = self._take()
        try:
            yield
        finally:
            os.close(fd)  # closing the file releases its lock

    def _take(self) -> int:
        """The descriptor of a free slot, locked; HashingBusy when none is free. (`slot`'s
        search, in a plain method: mutmut 3 does not mutate decorated ones.)"""
        start = os.getpid() % len(self.paths)  # workers try different slots first
        for path in self.paths[start:] + self.paths[:start]:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        raise HashingBusy(len(self.paths))
