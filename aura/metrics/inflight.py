"""Requests in flight, per worker: busy time that accrues while a request runs, and what a dead worker was doing.

Each worker maps one small file, ``.aura-inflight.<identifier>``, with one slot per request it
can run at once (its threads). A slot holds:

- ``busy``: the slot's busy seconds, one double. Idle: the busy time of its finished requests
  (>= 0). Running: that minus the request's start time (``time.perf_counter()``, which on Linux
  is ``CLOCK_MONOTONIC``, the same clock in every process) - always < 0, since a slot's busy time
  is shorter than the time since boot. A reader adds ``now`` to a negative value: the slot's
  busy seconds up to ``now``. Starting and ending a request each write this one aligned double,
  so a reader never sees half a transition.
  The number of negative slots is the worker's ``gunicorn_workers_busy``.
- ``start``, ``method`` and ``endpoint`` of the running request (the endpoint once routed), so
  that the master can record a request its worker died in.

The header holds ``ended``: the monotonic time the worker was found dead (0 while alive),
stamped once by the master; a dead worker's in-flight requests end there, whenever its files
are merged. ``overflow`` keeps the busy time of requests that found every slot taken.

The worker writes with ``struct.pack_into`` on the mapping (no system call per request); the
scrape (``scrape_files``) and the merge (``read``) read the file. The layout is in docs/metrics.md.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.mmap_dict import mmap_key

from .fileformat import INFLIGHT_PREFIX, DamagedFileError

BUSY_NAME = "gunicorn_worker_busy_seconds"
BUSY_HELP = "Time spent handling requests, summed over workers (requests in flight included)."
BUSY_KEY = mmap_key(BUSY_NAME, BUSY_NAME + "_total", [], [], BUSY_HELP)
WORKERS_BUSY_NAME = "gunicorn_workers_busy"
WORKERS_BUSY_HELP = "Workers (threads) handling a request now."
WORKERS_BUSY_KEY = mmap_key(WORKERS_BUSY_NAME, WORKERS_BUSY_NAME, [], [], WORKERS_BUSY_HELP)

MAGIC = b"AURAINF1"
HEADER = struct.Struct("=8sIIdd")  # magic, slots, reserved, ended, overflow
SLOT = struct.Struct("=dd8s112s")  # busy, start, method, endpoint (UTF-8, NUL-padded)
_BUSY = struct.Struct("=d")
_ENDPOINT = struct.Struct("=112s")
_ENDPOINT_AT = 24  # offset of ``endpoint`` in a slot (after busy, start, method)
_ENDED_AT = 16  # offset of ``ended`` in the header
_OVERFLOW_AT = 24
MIN_SLOTS = 4
MAX_SLOTS = 1024


def file_name(identifier: str) -> str:
    """The in-flight file of one worker lifetime."""
    return INFLIGHT_PREFIX + identifier


def file_size(slots: int) -> int:
    return HEADER.size + SLOT.size * slots


@dataclass(frozen=True)
class Running:
    """A request a dead worker was running."""

    method: str
    endpoint: str
    seconds: float


@dataclass(frozen=True)
class State:
    """What one in-flight file says."""

    slots: tuple[tuple[float, float, str, str], ...]  # (busy, start, method, endpoint)
    ended: float
    overflow: float

    def busy(self, now: float) -> float:
        """Busy seconds of the worker up to ``now`` (or to its death, once stamped)."""
        end = self.ended or now
        return self.overflow + sum(b + end if b < 0 else b for b, _, _, _ in self.slots)

    def running_now(self) -> int:
        """Requests running in a live worker (none once it is found dead)."""
        return 0 if self.ended else sum(1 for b, _, _, _ in self.slots if b < 0)

    def running(self) -> list[Running]:
        """The requests in flight when the worker ended (``ended`` must be stamped)."""
        return [Running(m, e, max(self.ended - s, 0.0)) for b, s, m, e in self.slots if b < 0]


def parse(data: bytes) -> State:
    """Parse a whole in-flight file, raising DamagedFileError."""
    if len(data) < HEADER.size:
        raise DamagedFileError(f"{len(data)} bytes, shorter than the in-flight header")
    magic, slots, _, ended, overflow = HEADER.unpack_from(data, 0)
    if magic != MAGIC or not 0 < slots <= MAX_SLOTS or len(data) != file_size(slots):
        raise DamagedFileError("not an in-flight file")
    rows = []
    for i in range(slots):
        busy, start, method, endpoint = SLOT.unpack_from(data, HEADER.size + i * SLOT.size)
        try:
            rows.append((busy, start, method.rstrip(b"\0").decode(), endpoint.rstrip(b"\0").decode()))
        except UnicodeDecodeError as e:
            raise DamagedFileError("in-flight labels are not UTF-8") from e
    return State(tuple(rows), ended, overflow)


def read(path: str) -> State:
    with open(path, "rb") as f:
        return parse(f.read(file_size(MAX_SLOTS) + 1))


def stamp_ended(path: str, now: float | None = None) -> State:
    """Mark the worker of ``path`` dead at ``now`` (monotonic) unless already marked; its state then.

    Only the master calls this, for dead workers: the first stamp wins, so a merge retried later
    ends the dead worker's requests at the same time.
    """
    state = read(path)
    if state.ended:
        return state
    ended = time.perf_counter() if now is None else now
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, _BUSY.pack(ended), _ENDED_AT)
    finally:
        os.close(fd)
    return State(state.slots, ended, state.overflow)


# --------------------------------------------------------------------------- the scrape

_reported: dict[str, float] = {}
_reported_lock = threading.Lock()


def _forked() -> None:
    global _reported_lock
    _reported_lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)


def scrape_files(
    directory: str, names: list[str], now: float, on_damaged: Callable[[str, str], None]
) -> list[tuple[str, tuple[str, str, str], list[tuple[str, float, float]]]]:
    """What each in-flight file adds to a scrape, as (path, (type, mode, identifier), rows) of value files.

    Busy seconds up to ``now`` (a counter) and requests running (a ``livesum`` gauge). ``now``
    is read before the files. A reader can meet a request that ended after it read the clock
    but before it read the slot; by how much that overstates (the time between the worker
    reading the clock and writing the slot, nanoseconds to a descheduling) is held back here:
    each worker's busy seconds are reported as the highest this process has reported, so the
    counter never goes down.
    """
    out = []
    seen = set()
    for name in names:
        ident = name[len(INFLIGHT_PREFIX) :]
        path = os.path.join(directory, name)
        try:
            state = read(path)
        except FileNotFoundError:
            continue
        except Exception as e:  # noqa: BLE001 - a bad file must never fail the scrape
            on_damaged(path, str(e) or type(e).__name__)
            continue
        with _reported_lock:
            busy = max(state.busy(now), _reported.get(ident, 0.0))
            _reported[ident] = busy
        seen.add(ident)
        out.append((path, ("counter", "", ident), [(BUSY_KEY, busy, 0.0)]))
        out.append((path, ("gauge", "livesum", ident), [(WORKERS_BUSY_KEY, float(state.running_now()), 0.0)]))
    with _reported_lock:
        for ident in [i for i in _reported if i not in seen]:
            del _reported[ident]  # merged: its busy time is in the archive now
    return out


def busy_at_death(identifier: str, state: State) -> float:
    """A dead worker's busy seconds to fold into the archive: up to ``ended``, or what this
    process (the master, whose listener scrapes) already reported if that is more."""
    with _reported_lock:
        return max(state.busy(state.ended), _reported.get(identifier, 0.0))


# --------------------------------------------------------------------------- the worker


class InflightFile:
    """This worker's in-flight slots. ``begin``/``route``/``end`` are the per-request path."""

    def __init__(self, directory: str, identifier: str, slots: int):
        slots = max(MIN_SLOTS, min(slots, MAX_SLOTS))
        self.path = os.path.join(directory, file_name(identifier))
        self.slots = slots
        self.pid = os.getpid()
        data = bytearray(file_size(slots))
        HEADER.pack_into(data, 0, MAGIC, slots, 0, 0.0, 0.0)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:  # written, not ftruncated: a sparse file on a full tmpfs raises SIGBUS
                view = view[os.write(fd, view) :]
            self._map = mmap.mmap(fd, len(data))
        finally:
            os.close(fd)
        self._free = list(range(slots - 1, -1, -1))  # list.pop/append are atomic under the GIL
        self._busy = [0.0] * slots  # each slot's finished busy time
        self._overflow = 0.0
        self._overflow_lock = threading.Lock()

    def begin(self, start: float, method: bytes) -> int:
        """Take a slot for a request that started at ``start``; -1 when every slot is taken."""
        try:
            slot = self._free.pop()
        except IndexError:
            return -1
        SLOT.pack_into(self._map, HEADER.size + slot * SLOT.size, self._busy[slot] - start, start, method, b"")
        return slot

    def route(self, slot: int, endpoint: bytes) -> None:
        """Name the running request's endpoint (its matched rule)."""
        if slot >= 0:
            _ENDPOINT.pack_into(self._map, HEADER.size + slot * SLOT.size + _ENDPOINT_AT, endpoint)

    def end(self, slot: int, seconds: float) -> None:
        """The request of ``slot`` ended after ``seconds``: credit them and free the slot."""
        if slot < 0:
            with self._overflow_lock:
                self._overflow += seconds
                _BUSY.pack_into(self._map, _OVERFLOW_AT, self._overflow)
            return
        busy = self._busy[slot] + seconds
        self._busy[slot] = busy
        _BUSY.pack_into(self._map, HEADER.size + slot * SLOT.size, busy)
        self._free.append(slot)


current: InflightFile | None = None


def open_for_worker(directory: str, identifier: str, slots: int) -> InflightFile | None:
    """Open this worker's in-flight file (``current``); None, logged by the caller, if it cannot be."""
    global current
    current = InflightFile(directory, identifier, slots)
    return current
