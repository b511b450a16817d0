"""aura.metrics.locking: the directory lock scrapes share and merges take alone, with a deadline."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time

import pytest

from aura.metrics.fileformat import GATE_NAME, LOCK_NAME
from aura.metrics.locking import MetricsDirectoryError, MetricsLockTimeout, directory_lock
from tests.support import flocks


def _held_elsewhere(directory, name: str, op: int) -> int:
    """An flock on one of the directory's lock files, held as another process's would be."""
    return flocks.hold(os.path.join(directory, name), op)


def _lock_is_free(directory, op: int) -> bool:
    return flocks.is_free(os.path.join(directory, LOCK_NAME), op)


def _lock_descriptors(directory) -> dict[str, int]:
    """This process's open descriptors on the directory's lock files: file name -> fd."""
    found = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if os.path.dirname(target) == str(directory):
            found[os.path.basename(target)] = int(entry)
    return found


def test_the_lock_files_are_created_world_readable_and_closed_after(tmp_path):
    old = os.umask(0o022)
    try:
        with directory_lock(str(tmp_path), exclusive=True, timeout=1):
            pass
    finally:
        os.umask(old)
    for name in (LOCK_NAME, GATE_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert _lock_descriptors(tmp_path) == {}  # opened per operation, never kept


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd")
def test_the_lock_is_held_read_only_and_not_inherited_across_exec(tmp_path):
    with directory_lock(str(tmp_path), exclusive=False, timeout=1):
        held = _lock_descriptors(tmp_path)
        assert set(held) == {LOCK_NAME}  # the gate is dropped once the lock is held
        fd = held[LOCK_NAME]
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY


def test_a_missing_directory_is_a_clear_error(tmp_path):
    missing = tmp_path / "gone"
    with pytest.raises(MetricsDirectoryError) as err:
        with directory_lock(str(missing), exclusive=False, timeout=1):
            pass
    text = str(err.value)
    assert repr(str(missing / GATE_NAME)) in text
    assert "No such file or directory" in text and "must be prepared at start-up" in text


def test_shared_holders_coexist_and_an_exclusive_one_excludes_both_kinds(tmp_path):
    d = str(tmp_path)
    with directory_lock(d, exclusive=False, timeout=1):
        with directory_lock(d, exclusive=False, timeout=1):  # two scrapes at once
            assert not _lock_is_free(d, fcntl.LOCK_EX)
            assert _lock_is_free(d, fcntl.LOCK_SH)
    assert _lock_is_free(d, fcntl.LOCK_EX)
    with directory_lock(d, exclusive=True, timeout=1):
        assert not _lock_is_free(d, fcntl.LOCK_SH)
    assert _lock_is_free(d, fcntl.LOCK_EX)


@pytest.fixture
def asked(monkeypatch) -> list[float]:
    """The sleeps the lock's poll asks for, in order (each is still slept)."""
    from aura.metrics import locking

    requested: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        requested.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(locking.time, "sleep", sleep)
    return requested


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_held_lock_times_out_after_the_timeout(tmp_path, asked, exclusive):
    d = str(tmp_path)
    holder = _held_elsewhere(d, LOCK_NAME, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        with pytest.raises(MetricsLockTimeout) as err:
            with directory_lock(d, exclusive=exclusive, timeout=0.3):
                pytest.fail("the lock was taken while held")
        waited = time.monotonic() - started
    finally:
        os.close(holder)
    assert waited >= 0.3  # not before its deadline
    assert sum(asked) <= 0.3 + 1e-9  # and no sleep past it: the last one is cut to what remains
    assert str(err.value) == f"timed out waiting for the metrics lock in {d!r}"
    assert isinstance(err.value, TimeoutError)
    assert _lock_descriptors(tmp_path) == {}  # nothing left open by the failed attempt


def test_a_held_gate_times_out_too(tmp_path):
    d = str(tmp_path)
    holder = _held_elsewhere(d, GATE_NAME, fcntl.LOCK_EX)  # a merge waiting for the lock holds the gate
    try:
        with pytest.raises(MetricsLockTimeout) as err:
            with directory_lock(d, exclusive=False, timeout=0.2):
                pass
    finally:
        os.close(holder)
    assert str(err.value) == f"timed out waiting for the metrics lock in {d!r}"
    assert _lock_descriptors(tmp_path) == {}


def test_a_shared_holder_does_not_block_a_scrape_but_blocks_a_merge(tmp_path):
    d = str(tmp_path)
    holder = _held_elsewhere(d, LOCK_NAME, fcntl.LOCK_SH)
    try:
        with directory_lock(d, exclusive=False, timeout=0.2):
            pass
        with pytest.raises(MetricsLockTimeout):
            with directory_lock(d, exclusive=True, timeout=0.2):
                pass
    finally:
        os.close(holder)


@pytest.mark.parametrize("held_for", [0.05, 0.6])
def test_a_waiter_polls_at_most_every_20_ms_until_the_release(tmp_path, asked, held_for):
    """It polls, backing off from 0.5 ms to at most 20 ms between tries: it neither gives up before
    its deadline nor sleeps long past a release. The sleeps it asks for are recorded (and slept),
    so the bound is on the code's schedule, not on how fast this machine wakes a thread."""
    d = str(tmp_path)
    holder = _held_elsewhere(d, LOCK_NAME, fcntl.LOCK_EX)
    releaser = threading.Timer(held_for, os.close, (holder,))
    releaser.start()
    try:
        with directory_lock(d, exclusive=True, timeout=30):
            assert not _lock_is_free(d, fcntl.LOCK_SH)  # taken, after the release
    finally:
        releaser.join()
    assert asked, "the lock was free at once: the holder did not hold it"
    assert asked[0] == pytest.approx(0.0005)
    assert all(b == pytest.approx(min(a * 2, 0.02)) for a, b in zip(asked, asked[1:], strict=False)), asked
    assert max(asked) <= 0.02


def _fork_holding_until(release_fd: int, keep_fd: int) -> int:
    """A child that stays alive until the parent closes ``keep_fd``: a worker the master forked.

    Returns once the child runs (its fork hooks are done by then)."""
    started, tell = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(keep_fd)
            os.write(tell, b"!")
            os.read(release_fd, 1)
        finally:
            os._exit(0)
    os.close(tell)
    try:
        assert os.read(started, 1) == b"!"
    finally:
        os.close(started)
    return pid


@pytest.mark.parametrize("holder", ["this thread", "another thread"])
@pytest.mark.filterwarnings("ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning")
def test_a_process_forked_while_the_lock_is_held_does_not_keep_it(tmp_path, holder):
    """The Gunicorn master forks workers while its metrics listener renders a scrape under the
    shared lock: the worker inherits that descriptor, and an flock belongs to the open file, so
    the lock outlived the scrape for the worker's whole life - every merge then timed out, and
    the scrapes queued behind it at the gate."""
    d = str(tmp_path)
    release, keep = os.pipe()
    children: list[int] = []
    try:
        if holder == "this thread":
            with directory_lock(d, exclusive=False, timeout=1):
                children.append(_fork_holding_until(release, keep))
        else:
            held, forked = threading.Event(), threading.Event()

            def scrape() -> None:
                with directory_lock(d, exclusive=False, timeout=1):
                    held.set()
                    forked.wait(10)

            thread = threading.Thread(target=scrape)
            thread.start()
            assert held.wait(10)
            children.append(_fork_holding_until(release, keep))
            forked.set()
            thread.join(10)
        assert _lock_is_free(d, fcntl.LOCK_EX)  # the child is alive and holds nothing
        with directory_lock(d, exclusive=True, timeout=1):  # a merge goes ahead
            pass
    finally:
        os.close(keep)
        os.close(release)
        for pid in children:
            os.waitpid(pid, 0)
