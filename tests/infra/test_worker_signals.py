"""aura.infra.worker_signals in this process: the stop signals blocked before a fork and
released after, a signal sent meanwhile kept pending and handled at the release.

`os.register_at_fork` cannot be undone, so the tests record what would be registered instead of
registering it (the Gunicorn test, tests/gunicorn/test_stop_while_booting.py, forks for real).
Each test restores this thread's signal mask and handler."""

from __future__ import annotations

import signal
import threading

import pytest

from aura.infra import worker_signals
from aura.infra.worker_signals import STOP_SIGNALS, hold_before_fork, release


@pytest.fixture
def registered(monkeypatch):
    """What hold_before_fork registers with os.register_at_fork; the mask restored after."""
    calls: list[dict] = []
    monkeypatch.setattr(worker_signals, "_unblock_after_fork_registered", False)
    monkeypatch.setattr(worker_signals.os, "register_at_fork", lambda **hooks: calls.append(hooks))
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # whatever the runner blocked
    yield calls
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _blocked() -> set[signal.Signals]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_the_stop_signals_are_term_int_and_quit():
    assert STOP_SIGNALS == {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}


def test_hold_blocks_the_stop_signals_and_release_unblocks_them(registered):
    assert not _blocked() & STOP_SIGNALS
    hold_before_fork()
    assert _blocked() >= STOP_SIGNALS
    assert signal.SIGABRT not in _blocked() and signal.SIGUSR1 not in _blocked()  # only those
    release()
    assert not _blocked() & STOP_SIGNALS


def test_the_release_after_a_fork_is_registered_once(registered):
    hold_before_fork()
    release()
    hold_before_fork()
    release()
    assert registered == [{"after_in_parent": release}]  # the parent unblocks; the child waits
    assert worker_signals._unblock_after_fork_registered is True


def test_a_stop_signal_sent_while_held_is_handled_at_the_release(registered):
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        hold_before_fork()
        # To this thread, as Gunicorn's master signals the worker (other threads may not block it).
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        assert received == []
        assert signal.SIGTERM in signal.sigpending()  # kept, not lost
        release()
        for _ in range(1000):  # the handler runs at the interpreter's next check
            if received:
                break
        assert received == [signal.SIGTERM]
        assert signal.SIGTERM not in signal.sigpending()
    finally:
        signal.signal(signal.SIGTERM, previous)
