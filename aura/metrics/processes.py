"""Processes behind the files: worker identities, whether a pid is still running, and what the
app asks to run in each worker as it starts (``on_worker_start``).

A worker's files are named by its identifier, ``"<pid>-<age>"`` (Gunicorn's worker age), so a
recycled pid never reopens a dead worker's file; a process forked from a worker is named by its
bare pid. The merge (``archive``) and the start-up clean-up (``directory``) ask ``pid_running``
before they treat a process as dead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

_WORKER_ID_RE = re.compile(r"[0-9]+-[0-9]+")


def worker_identifier(pid: int, age: int) -> str:
    """The identifier of one worker lifetime, ``"<pid>-<age>"`` (Gunicorn's worker age)."""
    if isinstance(pid, bool) or isinstance(age, bool) or not isinstance(pid, int) or not isinstance(age, int):
        raise TypeError("pid and age must be int")
    if pid <= 0 or age < 0:
        raise ValueError(f"invalid pid/age: {pid}/{age}")
    return f"{pid}-{age}"


def is_worker_identifier(identifier: str) -> bool:
    """True for a ``"<pid>-<age>"`` identifier (not a bare pid, not another name)."""
    return bool(_WORKER_ID_RE.fullmatch(identifier))


def pid_of(identifier: str) -> int | None:
    """The pid an identifier starts with (``"<pid>-<age>"`` or a bare pid), if any."""
    head = identifier.split("-", 1)[0].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def pid_running(pid: int) -> bool:
    """True if a process with this pid exists (possibly another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- what runs as a worker starts

# None: nothing forks this process into workers, so it serves requests itself (flask run, tests).
_at_worker_start: list[Callable[[], None]] | None = None


def serve_in_workers() -> None:
    """Say, before the app is loaded, that a pre-fork server (Gunicorn) will call
    ``run_worker_start`` in each worker it starts: ``on_worker_start`` then waits for it."""
    global _at_worker_start
    if _at_worker_start is None:
        _at_worker_start = []


def on_worker_start(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every process that serves requests: now, when this process serves them
    itself, or in each worker as it starts (threads, for one, do not survive fork)."""
    if _at_worker_start is None:
        callback()
    else:
        _at_worker_start.append(callback)


def run_worker_start() -> None:
    """In a worker that has loaded the app: run what the app asked for (``on_worker_start``)."""
    for callback in _at_worker_start or ():
        callback()
