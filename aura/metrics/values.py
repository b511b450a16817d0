"""How a value is stored: a float in this process's mmap file, in prometheus_client's format.

``AuraValue`` replaces prometheus_client's ``MultiProcessValue`` (``install_value_class``):
same files and names, so the stock collector reads them too, and these differences:

* Files belong to Gunicorn workers only. A process writes files once it has an identity
  (``use_worker_identifier``, called in ``post_fork``) or descends from one that has; the
  master, ``flask`` commands and shells keep their values in memory and write nothing.
* Files are named per worker lifetime (``"<pid>-<age>"``), so a recycled pid never reopens a
  dead worker's file; a process forked from a worker is named by its own pid.
* A write compares one counter (bumped after fork and on an identity change) and copies 16
  bytes into the mapping; ``request_recorder`` does a request's three writes under one lock.
* ``request_recorder`` also keeps the request's exemplars (its trace id, duration and end time)
  for its histogram bucket, and for its counter when asked, in the worker's exemplar file
  (``exemplars.py``); best effort, like every write here.
* Storage failures never reach the code that records: values count in memory, the files are
  tried again every ``RETRY_SECONDS``, and the counts kept meanwhile are written once they open.
* The child of a fork gets a fresh lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import values as stock_values
from prometheus_client.mmap_dict import mmap_key

from . import _compat, exemplars
from .exemplars import ExemplarFile
from .fileformat import VALUE, check_identifier, value_file_name
from .locking import MetricsDirectoryError

log = logging.getLogger("aura.metrics")

_pack = VALUE.pack
RETRY_SECONDS = 5.0  # after a storage failure, how often a write tries the files again


class _Process:
    """This process's metric files, and what names them."""

    lock = threading.Lock()
    generation = 0  # bumped after fork and when the identity changes
    synced = -1  # the generation the open files were last checked at
    identity: tuple[str, int] | None = None  # (identifier, pid it was set in)
    identifier: str | None = None  # what the open files are named by; None: no files
    directory = ""  # where they are (the instance's metrics directory)
    files: dict[str, Any] = {}
    values: list[AuraValue] = []
    exemplars: ExemplarFile | None = None  # opened on the first exemplar, per identity
    exemplars_retry_at = 0.0  # after a failure: monotonic time before which no exemplar is kept
    exemplars_failed_logged = False
    degraded_logged = False
    retry_at = 0.0  # monotonic time of the next attempt to open the files that failed


def _forked() -> None:
    _Process.lock = threading.Lock()
    _Process.generation += 1
    _Process.degraded_logged = False  # each process says once that its own metrics are degraded
    _Process.exemplars_failed_logged = False


os.register_at_fork(after_in_child=_forked)


def install_value_class() -> str | None:
    """Make metrics created from now on store their values in files, in this and forked processes.

    With ``AuraValue``; or, when the installed prometheus_client is not one this code was tested
    against, with its stock ``MultiProcessValue`` - the returned reason says so (None otherwise).
    A metric object keeps the value class that existed when it was made.
    """
    problem = _compat.problem()
    stock_values.ValueClass = stock_values.MultiProcessValue() if problem else AuraValue
    return problem


def use_worker_identifier(identifier: str, directory: str) -> None:
    """Make this process a worker writing files named after ``identifier`` into ``directory`` (right after fork)."""
    check_identifier(identifier)
    if not directory:
        raise MetricsDirectoryError(
            "no metrics directory; set PROMETHEUS_MULTIPROC_DIR to the instance's metrics directory"
        )
    install_value_class()
    set_identifier(identifier, directory)


def set_identifier(identifier: str, directory: str) -> None:
    """Name this process's files after ``identifier``, in ``directory``, from the next write on."""
    with _Process.lock:
        _Process.identity = (identifier, os.getpid())
        _Process.directory = directory
        _Process.generation += 1


def current_identifier() -> str | None:
    """The identifier set in this process, its pid in a process forked from one, else None."""
    if _Process.identity is None:
        return None
    identifier, pid = _Process.identity
    return identifier if pid == os.getpid() else str(os.getpid())


def _sync() -> None:
    """After a fork or an identity change: reopen every value's file if the name changed."""
    identifier = current_identifier()
    _Process.synced = _Process.generation
    if identifier != _Process.identifier:
        for file in _Process.files.values():
            try:
                file.close()
            except Exception as exc:  # noqa: BLE001 - never into the code that records a value
                _storage_failed(exc)
        _Process.files.clear()
        _close_exemplars()
        _Process.identifier = identifier
        for value in _Process.values:
            value._open()
    else:
        for value in _Process.values:
            value._generation = _Process.generation


def _close_exemplars() -> None:
    file, _Process.exemplars, _Process.exemplars_retry_at = _Process.exemplars, None, 0.0
    if file is not None:
        try:
            file.close()
        except Exception as exc:  # noqa: BLE001 - never into the code that records a value
            _exemplars_failed(exc)


def _exemplars_failed(exc: BaseException) -> None:
    """Keep no exemplars for RETRY_SECONDS; say so once (values are not concerned)."""
    _Process.exemplars_retry_at = time.monotonic() + RETRY_SECONDS
    if not _Process.exemplars_failed_logged:
        _Process.exemplars_failed_logged = True
        log.error(
            "exemplars are degraded: cannot keep this process's exemplars in %s (%s); requests and "
            "metric values are not affected; trying again every %.0f s",
            _Process.directory,
            exc,
            RETRY_SECONDS,
        )
    else:
        log.debug("exemplar dropped: %s", exc)


class _ExemplarSlots:
    """A recorder's exemplar keys (histogram buckets, then the counter's) and their records' positions."""

    __slots__ = ("file", "keys", "positions")

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.file: ExemplarFile | None = None  # the file the positions are in
        self.positions: list[int] = []

    def write(self, index: int, trace_id: bytes, value: float, now: float) -> None:
        """Keep one exemplar in this worker's file (under the value lock); failures pause exemplars."""
        if _Process.degraded_logged:
            return  # the values themselves cannot reach the files: no exemplar to show them with
        if _Process.exemplars_retry_at:
            if time.monotonic() < _Process.exemplars_retry_at:
                return
            _Process.exemplars_retry_at = 0.0
        try:
            file = _Process.exemplars
            if file is None:  # the recorder calls this in a worker only (an identifier is set)
                path = os.path.join(_Process.directory, exemplars.file_name(str(_Process.identifier)))
                file = _Process.exemplars = ExemplarFile(path)
            if self.file is not file:
                self.file, self.positions = file, [-1] * len(self.keys)
            position = self.positions[index]
            if position < 0:
                position = self.positions[index] = file.position(self.keys[index])
            file.mapping[position : position + exemplars.RECORD.size] = exemplars.encode_record(trace_id, value, now)
        except Exception as exc:  # noqa: BLE001 - no room, no file: exemplars wait, values go on
            _exemplars_failed(exc)
            return
        if _Process.exemplars_failed_logged:
            _Process.exemplars_failed_logged = False
            log.warning("exemplars recovered: this process keeps its exemplars in %s again", _Process.directory)


def _value_key(value: AuraValue) -> str:
    _, metric_name, name, labelnames, labelvalues, help_text, _ = value._params
    return mmap_key(metric_name, name, labelnames, labelvalues, help_text)


def _storage_failed(exc: BaseException) -> None:
    if not _Process.degraded_logged:
        _Process.degraded_logged = True
        log.error(
            "metrics are degraded: cannot write this process's metric files in %s (%s); requests "
            "are served, but this process's metrics are incomplete",
            _Process.directory,
            exc,
        )
    else:
        log.debug("metric value dropped: %s", exc)


class AuraValue:
    """A float backed by this process's mmap file (the interface prometheus_client's metrics use)."""

    _multiprocess = True

    def __init__(
        self,
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        multiprocess_mode: str = "",
        **_kwargs: Any,
    ):
        self._params = typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode
        self._value = self._timestamp = 0.0
        self._file: Any = None
        self._position = 0
        with _Process.lock:
            if _Process.synced != _Process.generation:
                _sync()
            self._open()
            _Process.values.append(self)

    def _open(self, keep: bool = False) -> None:
        """Map this value's slot in its file; without an identity or on failure, count in memory.

        The value becomes what the file holds, or with ``keep`` (a retry after a failure) the
        file gets the value counted in memory: only this process writes its files, and this
        object is the only writer of its key, so the memory is never behind the file.
        """
        self._generation = _Process.generation
        self._file = None
        if _Process.identifier is None:
            return  # not a worker: nothing is written
        typ, metric_name, name, labelnames, labelvalues, help_text, mode = self._params
        try:
            file = _Process.files.get(typ + mode)
            if file is None:
                path = os.path.join(_Process.directory, value_file_name(typ, mode, _Process.identifier))
                file = _Process.files[typ + mode] = _compat.ReservingMmapedDict(path)
            _, position, stored = _compat.slot(file, mmap_key(metric_name, name, labelnames, labelvalues, help_text))
        except Exception as exc:  # noqa: BLE001 - any storage failure
            _storage_failed(exc)
            if not keep:  # a new identity starts from its own (empty) file, not the parent's counts
                self._value = self._timestamp = 0.0
            return
        self._file, self._position = file, position
        if keep:
            self._write()
        else:
            self._value, self._timestamp = stored

    def _write(self) -> None:
        """Store the value in its slot; a value without a file retries the failed files instead."""
        if self._file is None:
            _retry_failed()
            return
        # Slice assignment, as MmapedDict does: pack_into would briefly write zeros a scrape could read.
        try:
            self._file.mapping[self._position : self._position + 16] = _pack(self._value, self._timestamp)
        except Exception as exc:  # noqa: BLE001 - e.g. the mapping was closed under us
            _storage_failed(exc)

    def inc(self, amount: float) -> None:
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            self._value += amount
            self._timestamp = 0.0
            self._write()

    def set(self, value: float, timestamp: float | None = None) -> None:
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            self._value = value
            self._timestamp = timestamp or 0.0
            self._write()

    def get(self) -> float:
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            return self._value

    def set_exemplar(self, exemplar: Any) -> None:
        return None  # prometheus_client has no exemplars in multiprocess mode either

    def get_exemplar(self) -> None:
        return None


def _retry_failed() -> None:
    """Open the files that failed, at most every RETRY_SECONDS; stop at the first that still fails."""
    if _Process.identifier is None:
        return  # not a worker: values live in memory by design
    now = time.monotonic()
    if now < _Process.retry_at:
        return
    _Process.retry_at = now + RETRY_SECONDS
    for value in _Process.values:
        if value._file is None:
            value._open(keep=True)
            if value._file is None:
                return  # still no room: the rest would fail alike
    if _Process.degraded_logged:
        _Process.degraded_logged = False  # a later failure is reported again
        log.warning(
            "metrics recovered: this process's metric files in %s are written again, with what was counted meanwhile",
            _Process.directory,
        )


def request_recorder(
    counter: Any, histogram: Any, busy_seconds: Any = None, busy: Any = None, *, counter_exemplars: bool = False
) -> Callable[[float, str], None]:
    """``record(seconds, trace_id="")`` for one request label set, in one locked step.

    ``record`` does ``counter.inc()``, ``histogram.observe(seconds)``,
    ``busy_seconds.inc(seconds)`` and ``busy.dec()`` (the caller incremented ``busy`` when the
    request started). ``counter`` and ``histogram`` are label children, ``busy_seconds`` and ``busy``
    unlabelled metrics (optional); ``seconds`` is a duration (a difference of ``perf_counter``
    readings, never NaN, which ``observe`` would put in no bucket). Values of another class
    (single-process mode) get the same effect through the public methods.

    With a ``trace_id`` (ASCII, at most ``exemplars.MAX_TRACE_ID`` bytes; longer ones are left
    out) the request becomes the exemplar of its histogram bucket and, with
    ``counter_exemplars``, of the counter (value 1, as prometheus_client's ``inc`` keeps it).
    """
    # Each metric given, with what one request adds to its (first) value: None for the duration.
    given = [
        (m, add) for m, add in ((counter, 1.0), (histogram, None), (busy_seconds, None), (busy, -1.0)) if m is not None
    ]
    stored = [_compat.stored_values(m) for m, _ in given]
    if not all(values and all(isinstance(v, AuraValue) for v in values) for values in stored):
        return _public_recorder(counter, histogram, busy_seconds, busy, counter_exemplars)  # stock or single-process
    count, buckets = stored[0][0], list(stored[1][1:])  # the histogram stores its sum, then its buckets
    bounds = _compat.upper_bounds(histogram)  # ends with +Inf
    writes: tuple[tuple[AuraValue, float | None], ...] = tuple(
        (values[0], add) for values, (_, add) in zip(stored, given, strict=True)
    )

    slots = _ExemplarSlots([_value_key(b) for b in buckets] + ([_value_key(count)] if counter_exemplars else []))
    counted = len(buckets) if counter_exemplars else -1

    def record(seconds: float, trace_id: str = "") -> None:
        index = bisect_left(bounds, seconds)  # the first bound >= seconds, as observe()
        bucket = buckets[index]
        with _Process.lock:
            if count._generation != _Process.generation:
                _sync()  # updates every value's generation: checking one is enough
            for value, amount in (*writes, (bucket, 1.0)):
                value._value += seconds if amount is None else amount
                value._timestamp = 0.0
                file = value._file
                if file is None:
                    value._write()  # counts in memory; retries the files now and then
                    continue
                try:  # _write(), inlined: this is the per-request path
                    file.mapping[value._position : value._position + 16] = _pack(value._value, 0.0)
                except Exception as exc:  # noqa: BLE001 - e.g. the mapping was closed under us
                    _storage_failed(exc)
            if trace_id and len(trace_id) <= exemplars.MAX_TRACE_ID and _Process.identifier is not None:
                encoded, now = trace_id.encode("ascii", "replace"), time.time()
                slots.write(index, encoded, seconds, now)
                if counted >= 0:
                    slots.write(counted, encoded, 1.0, now)

    return record


def _public_recorder(
    counter: Any, histogram: Any, busy_seconds: Any, busy: Any, counter_exemplars: bool
) -> Callable[[float, str], None]:
    """The recorder over prometheus_client's public methods (exemplars where its values keep them)."""
    inc, observe = counter.inc, histogram.observe

    def record(seconds: float, trace_id: str = "") -> None:
        exemplar = {exemplars.LABEL: trace_id} if trace_id and len(trace_id) <= exemplars.MAX_TRACE_ID else None
        inc(1, exemplar if counter_exemplars else None)
        observe(seconds, exemplar)
        if busy_seconds is not None:
            busy_seconds.inc(seconds)
        if busy is not None:
            busy.dec()

    return record


def stored_values(child: Any) -> tuple[Any, ...]:
    """The value objects a metric child stores: a counter's or gauge's one, a histogram's sum and buckets.

    Empty with prometheus_client's stock value class (``install_value_class``), whose values are
    in the files from the moment a child is made.
    """
    return _compat.stored_values(child)
