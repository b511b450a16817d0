"""A stop signal that reaches a Gunicorn worker while it boots is kept, not lost.

Gunicorn installs a worker's own signal handlers (``Worker.init_signals``) after the fork and
after ``post_fork``. Until then the new process runs with the master's handlers, which queue the
signal in the child's copy of the master's queue, where nothing reads it: a SIGTERM (a rollout,
a scale-down, ``kill``) that lands in that window is lost. The worker boots and serves on, and
the master waits out the whole graceful timeout (30 s by default) before it kills it - a
shutdown right after a worker was recycled took that long in CI.

So the master blocks the stop signals just before it forks a worker (``hold_before_fork``, from
Gunicorn's ``pre_fork``) and unblocks them in itself right after the fork
(``os.register_at_fork``). The worker starts with them blocked - a signal sent meanwhile stays
pending in the kernel - and unblocks them once its own handlers are in place (``release``, from
``post_worker_init``), when a pending SIGTERM ends it as one sent a moment later would.
"""

from __future__ import annotations

import os
import signal

# Gunicorn's worker stop signals: SIGTERM graceful, SIGINT and SIGQUIT quick. SIGABRT (the
# master's timeout) and SIGKILL are left alone: a worker stuck while booting must still die.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})

_unblock_after_fork_registered = False


def hold_before_fork() -> None:
    """In the master, just before it forks a worker: block the stop signals until the fork is done."""
    global _unblock_after_fork_registered
    if not _unblock_after_fork_registered:
        os.register_at_fork(after_in_parent=release)  # also after a failed fork
        _unblock_after_fork_registered = True
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release() -> None:
    """Unblock the stop signals in this thread: a pending one is handled now."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
