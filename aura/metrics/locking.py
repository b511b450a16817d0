"""The directory lock that scrapes share and merges take alone.

Scrapes take ``flock(LOCK_SH)``, merges ``flock(LOCK_EX)`` on ``.aura-metrics.lock``; both
first pass a gate (``.aura-metrics.gate``, same mode, released once the main lock is held), so
a waiting merge is not starved by back-to-back scrapes. Lock files are opened per operation and
never kept open: the master forks workers, and an inherited descriptor would share its lock.

An flock belongs to the open file, not to the process, so a descriptor a fork copies keeps the
lock as long as either copy is open. The master forks workers while its metrics listener's
threads may be rendering a scrape under the shared lock: the worker would keep that lock for its
whole life, every merge would time out, and scrapes would queue behind the waiting merge at the
gate. So the descriptors open here are registered (opened and closed under a lock that a fork
waits for), and a forked child points its copies at /dev/null.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .fileformat import GATE_NAME, LOCK_NAME


class MetricsDirectoryError(RuntimeError):
    """The metrics directory cannot be used (missing, not writable, or not ours to clean)."""


class MetricsLockTimeout(TimeoutError):
    """The directory lock could not be taken in time."""


_held: set[int] = set()  # this process's open descriptors on lock files
_registry = threading.Lock()  # held across open/close + (de)registration, and across a fork


def _before_fork() -> None:
    _registry.acquire()


def _after_fork_in_parent() -> None:
    _registry.release()


def _after_fork_in_child() -> None:
    """Let go of the parent's locks: each copied descriptor now points at /dev/null (the number
    stays taken, so a block the fork happened inside still closes it once, harmlessly)."""
    if _held:
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        for fd in _held:
            os.dup2(null, fd, inheritable=False)
        os.close(null)
        _held.clear()
    _registry.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _open_lock_file(path: str) -> int:
    with _registry:
        try:
            # Read-only is enough for flock, and lets workers running as another user use a lock
            # file the master created (the directory set-up makes it 0644).
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise MetricsDirectoryError(
                f"cannot open metrics lock file {path!r}: {e.strerror}; "
                "the metrics directory must be prepared at start-up"
            ) from e
        _held.add(fd)
        return fd


def _close_lock_file(fd: int) -> None:
    with _registry:
        _held.discard(fd)
        os.close(fd)


def _acquire(fd: int, op: int, deadline: float, what: str) -> None:
    # Poll with LOCK_NB: a blocking flock cannot time out, and a stuck peer must not hang the
    # Gunicorn master's child_exit forever.
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MetricsLockTimeout(f"timed out waiting for the metrics lock in {what!r}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


@contextmanager
def directory_lock(directory: str, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Hold the directory lock, shared (scrape) or exclusive (merge, clean-up), for the block."""
    lock_fd = _take_lock(directory, exclusive, timeout)
    try:
        yield
    finally:
        _close_lock_file(lock_fd)


def _take_lock(directory: str, exclusive: bool, timeout: float) -> int:
    """The open, locked lock file of ``directory``, taken through the gate.

    A plain function, not in ``directory_lock``'s body: mutmut does not mutate decorated functions.
    """
    deadline = time.monotonic() + timeout
    op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    gate_fd = _open_lock_file(os.path.join(directory, GATE_NAME))
    try:
        _acquire(gate_fd, op, deadline, directory)
        lock_fd = _open_lock_file(os.path.join(directory, LOCK_NAME))
        try:
            _acquire(lock_fd, op, deadline, directory)
        except BaseException:
            _close_lock_file(lock_fd)
            raise
    finally:
        # The gate only orders arrivals (a waiting writer blocks new readers); drop it now.
        _close_lock_file(gate_fd)
    return lock_fd
