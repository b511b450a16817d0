"""aura.metrics.processes: worker identifiers, whether a pid runs, and what runs as a worker starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aura.metrics import processes
from aura.metrics.processes import is_worker_identifier, pid_of, pid_running, worker_identifier


def test_a_worker_identifier_is_pid_dash_age_and_accepts_the_smallest_values():
    assert worker_identifier(1234, 7) == "1234-7"
    assert worker_identifier(1, 0) == "1-0"  # pid 1 and Gunicorn's first age are valid


@pytest.mark.parametrize(
    ("pid", "age"),
    [(True, 1), (1, True), (False, 0), ("12", 1), (12, "1"), (12.0, 1), (12, 1.0), (None, 1), (1, None)],
)
def test_a_worker_identifier_takes_only_plain_ints(pid, age):
    with pytest.raises(TypeError, match="^pid and age must be int$"):
        worker_identifier(pid, age)


@pytest.mark.parametrize(("pid", "age"), [(0, 1), (-1, 1), (1, -1), (0, -1)])
def test_a_worker_identifier_refuses_pids_below_one_and_negative_ages(pid, age):
    with pytest.raises(ValueError, match=rf"^invalid pid/age: {pid}/{age}$"):
        worker_identifier(pid, age)


def test_is_worker_identifier_accepts_only_pid_dash_age():
    assert is_worker_identifier("1234-7") and is_worker_identifier("1-0")
    for other in ("1234", "1234-", "-7", "12-3-4", "a-1", "1-a", " 1-2", "1-2 ", "12.3-4", "", "1-2\n"):
        assert not is_worker_identifier(other), other


def test_pid_of_reads_the_leading_pid_of_every_identifier_shape():
    assert pid_of("1234-7") == 1234
    assert pid_of("1234") == 1234
    assert pid_of("1234.5") == 1234  # a bare pid with a suffix
    assert pid_of("1234.5-7") == 1234
    assert pid_of("7-1234") == 7  # the pid is the head, not the age
    assert pid_of("12-3-4") == 12 and pid_of("1234.5.6") == 1234  # the head, whatever follows
    for other in ("web-1", "", "-1", "x1234", "1234x-1"):
        assert pid_of(other) is None, other


def test_pid_running_tells_a_live_process_from_a_reaped_one():
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as child:
        assert pid_running(child.pid)
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()
    assert not pid_running(child.pid)  # reaped: the pid names no process
    assert pid_running(os.getpid())


def test_pid_running_counts_another_users_process_as_running(monkeypatch):
    signals = []

    def refused(pid, sig):
        signals.append((pid, sig))
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(processes.os, "kill", refused)
    assert pid_running(1) is True
    assert signals == [(1, 0)]  # signal 0: a check, nothing sent


def test_pid_running_sends_no_signal(monkeypatch):
    signals = []
    monkeypatch.setattr(processes.os, "kill", lambda pid, sig: signals.append((pid, sig)))
    assert pid_running(4321) is True
    assert signals == [(4321, 0)]


def test_without_a_pre_fork_server_a_worker_start_callback_runs_at_once(monkeypatch):
    monkeypatch.setattr(processes, "_at_worker_start", None)
    ran: list[str] = []
    processes.on_worker_start(lambda: ran.append("now"))
    assert ran == ["now"]
    processes.run_worker_start()  # nothing was queued: nothing runs again
    assert ran == ["now"]


def test_under_a_pre_fork_server_callbacks_wait_for_each_worker_in_order(monkeypatch):
    monkeypatch.setattr(processes, "_at_worker_start", None)
    ran: list[str] = []
    processes.serve_in_workers()
    processes.on_worker_start(lambda: ran.append("first"))
    processes.serve_in_workers()  # said again (Gunicorn re-reads its configuration): nothing is lost
    processes.on_worker_start(lambda: ran.append("second"))
    assert ran == []
    processes.run_worker_start()  # one worker
    assert ran == ["first", "second"]
    processes.run_worker_start()  # the next worker runs them too
    assert ran == ["first", "second", "first", "second"]


def test_serving_in_workers_starts_with_nothing_queued(monkeypatch):
    monkeypatch.setattr(processes, "_at_worker_start", None)
    processes.serve_in_workers()
    assert processes._at_worker_start == []
