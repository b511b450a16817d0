"""aura.auth.hash_slots in this process: N lock files, one held per hash, each taken by this
process as another worker's would be (tests/support/flocks.py), HashingBusy at once when every
one is taken, nothing queued and no descriptor left open."""

from __future__ import annotations

import fcntl
import os
import stat

import pytest

from aura.auth.hash_slots import HashingBusy, HashSlots
from aura.errors import ErrorCode, TooManyRequests
from tests.support.flocks import hold, is_free


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _descriptors_of(path) -> list[int]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found.append(int(name))
        except OSError:
            continue  # the descriptor listdir itself used
    return found


def _held(slots: HashSlots) -> list[bool]:
    return [path.exists() and not is_free(str(path), fcntl.LOCK_EX) for path in slots.paths]


def test_busy_is_a_429_for_the_instance_with_a_retry_after():
    busy = HashingBusy(3)
    assert isinstance(busy, TooManyRequests)
    assert busy.code == ErrorCode.TOO_MANY_CONCURRENT_REQUESTS
    assert busy.message == "The server is hashing 3 passwords at once, its most; retry in a moment."
    assert busy.details == {"limit": "3 at once", "per": "instance"}
    assert busy.retry_after == 1 and busy.slots == 3


def test_the_slots_are_numbered_lock_files_in_a_directory_made_for_them(tmp_path):
    directory = tmp_path / "instance" / "password-hash-slots"
    slots = HashSlots(directory, 3)
    assert directory.is_dir()
    assert slots.paths == [directory / "slot-0.lock", directory / "slot-1.lock", directory / "slot-2.lock"]
    HashSlots(directory, 3)  # an existing directory is fine


def test_a_slot_is_held_while_the_body_runs_and_given_back_after(tmp_path):
    slots = HashSlots(tmp_path, 3)
    first = os.getpid() % 3  # each worker tries a different slot first
    with slots.slot():
        assert _held(slots) == [n == first for n in range(3)]
        path = slots.paths[first]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        (fd,) = _descriptors_of(path)
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # not inherited by a child process
        assert os.O_RDWR == fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    assert _held(slots) == [False, False, False]
    assert _descriptors_of(slots.paths[first]) == []


def test_the_next_slots_are_taken_in_turn_then_busy_at_once(tmp_path):
    slots = HashSlots(tmp_path, 3)
    first = os.getpid() % 3
    order = [(first + n) % 3 for n in range(3)]
    descriptors = _open_descriptors()
    with slots.slot():
        with slots.slot():
            assert _held(slots) == [n in order[:2] for n in range(3)]
            with slots.slot():
                assert _held(slots) == [True, True, True]
                with pytest.raises(HashingBusy) as busy, slots.slot():
                    pytest.fail("a fourth hash ran")
                assert busy.value.slots == 3
                assert _open_descriptors() == descriptors + 3  # the refused attempt closed its files
            assert _held(slots) == [n in order[:2] for n in range(3)]
    assert _open_descriptors() == descriptors


def test_slots_held_by_other_processes_are_skipped(tmp_path):
    slots = HashSlots(tmp_path, 4)
    first = os.getpid() % 4
    others = [hold(str(slots.paths[(first + n) % 4])) for n in (0, 2)]  # two other workers
    try:
        with slots.slot():
            assert _held(slots) == [n in {first, (first + 1) % 4, (first + 2) % 4} for n in range(4)]
            with slots.slot():
                assert _held(slots) == [True] * 4
                with pytest.raises(HashingBusy), slots.slot():
                    pass
        os.close(others.pop(0))
        with slots.slot():
            assert _held(slots) == [n in {first, (first + 2) % 4} for n in range(4)]
    finally:
        for fd in others:
            os.close(fd)


def test_a_body_that_raises_gives_its_slot_back(tmp_path):
    slots = HashSlots(tmp_path, 1)
    with pytest.raises(RuntimeError), slots.slot():
        raise RuntimeError("the hash failed")
    assert _held(slots) == [False]
    with slots.slot():
        assert _held(slots) == [True]


def test_one_slot(tmp_path):
    slots = HashSlots(tmp_path, 1)
    with slots.slot():
        with pytest.raises(HashingBusy) as busy, slots.slot():
            pass
        assert busy.value.slots == 1
        assert "1 passwords at once" in busy.value.message
