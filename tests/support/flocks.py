"""flock probes for tests: hold a lock file as another process would, and ask whether it is free."""

from __future__ import annotations

import fcntl
import os


def hold(path: str, op: int = fcntl.LOCK_EX) -> int:
    """Lock ``path`` (created if missing) through a descriptor of its own - so this process
    conflicts with itself as another process would - and return the descriptor; close it to release."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_free(path: str, op: int) -> bool:
    """Whether ``path`` (which must exist) could be locked with ``op`` now; leaves it as it was."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
