"""The value class behind every metric in multiprocess mode: a float in this process's mmap file.

It replaces prometheus_client's ``MultiProcessValue`` (``install_value_class``) and keeps its
file format (prometheus_client's own ``MmapedDict`` writes the files and its collector can
read them), its file names (``<type>[_<gauge mode>]_<identifier>.db``) and its single lock.
What it changes:

* **Files named per worker lifetime.** The identifier is the one given to
  ``use_worker_identifier`` (``"<pid>-<age>"`` under Gunicorn), so a recycled pid never
  reopens a dead worker's file; a process forked from a worker falls back to its own pid.
* **Cheap writes.** prometheus_client asks for the process identifier (``getpid``) and makes
  four nested calls on every write. Here a write compares one counter - bumped after every
  fork and by ``use_worker_identifier`` - and copies 16 bytes into the mapping at a position
  looked up once (bench/http_overhead.py measures a request).
* **Storage failures never reach the code that records a value.** A file that cannot be
  created (directory full, read-only or gone) keeps its value in memory and logs the first
  failure; a write tries such files again at most every ``RETRY_SECONDS`` and, once one opens,
  writes the counts kept meanwhile - nothing counted is lost while the worker lives. File space
  is allocated before it is mapped, so a full tmpfs is an error to handle rather than a SIGBUS
  that kills the worker.
* **One lock for a request's three writes.** ``request_recorder`` counts a request and
  observes its duration (counter +1, histogram sum, one bucket) under one lock, skipping
  ``Counter.inc`` and ``Histogram.observe``'s per-call checks.
* **Fork-safe lock.** The child gets a fresh lock, so a fork while another thread held it
  cannot deadlock the child's first write.

Forks are noticed through ``os.register_at_fork``, that is, when Python's ``os.fork`` (or
``multiprocessing``'s fork start method) makes them; a fork made from C code without Python's
fork hooks would leave the child writing into the parent's file. Nothing in Aura forks that way.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
from bisect import bisect_left

log = logging.getLogger("aura.metrics")

_pack = struct.Struct("dd").pack  # the layout of a value in prometheus_client's MmapedDict
RETRY_SECONDS = 5.0  # after a storage failure, how often a write tries the files again


class _Process:
    """This process's metric files, and what names them."""

    lock = threading.Lock()
    generation = 0  # bumped after fork and when the identity changes
    synced = -1  # the generation the open files were last checked at
    identity: tuple[str | None, int | None] = (None, None)  # (identifier, pid it was set in)
    identifier: str | None = None  # what the open files are named by
    files: dict = {}
    values: list[AuraValue] = []
    degraded_logged = False
    retry_at = 0.0  # monotonic time of the next attempt to open the files that failed


def _forked() -> None:
    _Process.lock = threading.Lock()
    _Process.generation += 1
    _Process.degraded_logged = False  # each process says once that its own metrics are degraded


os.register_at_fork(after_in_child=_forked)


def set_identifier(identifier: str) -> None:
    """Name this process's files after ``identifier`` from the next write on."""
    with _Process.lock:
        _Process.identity = (identifier, os.getpid())
        _Process.generation += 1


def current_identifier() -> str:
    """The identifier set in this process, or its pid (a process forked from a worker)."""
    identifier, pid = _Process.identity
    return identifier if pid == os.getpid() else str(os.getpid())  # type: ignore[return-value]


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
        _Process.identifier = identifier
        for value in _Process.values:
            value._open()
    else:
        for value in _Process.values:
            value._generation = _Process.generation


def _storage_failed(exc: BaseException) -> None:
    if not _Process.degraded_logged:
        _Process.degraded_logged = True
        log.error("metrics are degraded: cannot write this process's metric files in %s (%s); requests "
                  "are served, but this process's metrics are incomplete", os.environ.get(
                      "PROMETHEUS_MULTIPROC_DIR"), exc)
    else:
        log.debug("metric value dropped: %s", exc)


class AuraValue:
    """A float backed by this process's mmap file (the interface prometheus_client's metrics use)."""

    _multiprocess = True

    def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode="",
                 **kwargs):
        self._params = typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode
        self._value = self._timestamp = 0.0
        with _Process.lock:
            if _Process.synced != _Process.generation:
                _sync()
            self._open()
            _Process.values.append(self)

    def _open(self, keep: bool = False) -> None:
        """Map this value's slot in its file; on failure keep counting in memory only.

        The value becomes what the file holds, or with ``keep`` (a retry after a failure) the
        file gets the value counted in memory: only this process writes its files, and this
        object is the only writer of its key, so the memory is never behind the file.
        """
        from prometheus_client.mmap_dict import mmap_key

        typ, metric_name, name, labelnames, labelvalues, help_text, mode = self._params
        prefix = f"gauge_{mode}" if typ == "gauge" else typ
        self._generation = _Process.generation
        try:
            file = _Process.files.get(prefix)
            if file is None:
                path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"{prefix}_{_Process.identifier}.db")
                file = _Process.files[prefix] = _reserving_mmaped_dict()(path)
            key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            stored = file.read_value(key)  # adds the key if new
            self._file, self._position = file, file._positions[key]
        except Exception as exc:  # noqa: BLE001 - any storage failure
            _storage_failed(exc)
            self._file = None
            if not keep:  # a new identity starts from its own (empty) file, not the parent's counts
                self._value = self._timestamp = 0.0
            return
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
            self._file._m[self._position:self._position + 16] = _pack(self._value, self._timestamp)
        except Exception as exc:  # noqa: BLE001 - e.g. the mapping was closed under us
            _storage_failed(exc)

    def inc(self, amount):
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            self._value += amount
            self._timestamp = 0.0
            self._write()

    def set(self, value, timestamp=None):
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            self._value = value
            self._timestamp = timestamp or 0.0
            self._write()

    def get(self):
        with _Process.lock:
            if self._generation != _Process.generation:
                _sync()
            return self._value

    def set_exemplar(self, exemplar):
        return None  # prometheus_client has no exemplars in multiprocess mode either

    def get_exemplar(self):
        return None


def _retry_failed() -> None:
    """Open the files that failed, at most every RETRY_SECONDS; stop at the first that still fails."""
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
        log.warning("metrics recovered: this process's metric files in %s are written again, "
                    "with what was counted meanwhile", os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def request_recorder(counter, histogram):
    """``record(seconds)``: ``counter.inc()`` and ``histogram.observe(seconds)``, in one locked step.

    ``counter`` and ``histogram`` are label children; ``seconds`` is a duration (a difference of
    ``perf_counter`` readings, never NaN, which ``observe`` would put in no bucket). Values of
    another class (single-process mode) get the same effect through the public methods.
    """
    count, total, buckets = counter._value, histogram._sum, histogram._buckets
    bounds = tuple(histogram._upper_bounds)  # ends with +Inf: bisect always finds a bucket
    if not all(isinstance(v, AuraValue) for v in (count, total, *buckets)):
        inc, observe = counter.inc, histogram.observe

        def record_public(seconds: float) -> None:
            inc()
            observe(seconds)

        return record_public

    def record(seconds: float) -> None:
        bucket = buckets[bisect_left(bounds, seconds)]  # the first bound >= seconds, as observe()
        with _Process.lock:
            if count._generation != _Process.generation:
                _sync()  # updates every value's generation: checking one is enough
            for value, amount in ((count, 1.0), (total, seconds), (bucket, 1.0)):
                value._value += amount
                value._timestamp = 0.0
                value._write()

    return record


_reserving_class = None


def _reserving_mmaped_dict():
    """prometheus_client's MmapedDict, allocating file blocks before mapping them.

    A file extended with ftruncate is sparse: on a full filesystem (typically a size-limited
    tmpfs) the first write to a new page of its mapping kills the process with SIGBUS.
    posix_fallocate reserves the blocks first and fails with ENOSPC instead.
    """
    global _reserving_class
    if _reserving_class is not None:
        return _reserving_class
    from prometheus_client import mmap_dict

    class ReservingMmapedDict(mmap_dict.MmapedDict):
        def __init__(self, filename, read_mode=False):
            if not read_mode:
                _reserve(filename, mmap_dict._INITIAL_MMAP_SIZE)
            super().__init__(filename, read_mode)

        def _init_value(self, key):
            encoded = len(key.encode("utf-8"))
            needed = self._used + 4 + encoded + (8 - (encoded + 4) % 8) + 16  # as the parent packs it
            capacity = self._capacity
            while needed > capacity:
                capacity *= 2
            if capacity != self._capacity:
                _allocate(self._f.fileno(), capacity)
            super()._init_value(key)

    _reserving_class = ReservingMmapedDict
    return ReservingMmapedDict


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise  # ENOSPC, EFBIG...: no room; a filesystem that cannot reserve keeps the old way


def _reserve(filename: str, size: int) -> None:
    fd = os.open(filename, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if os.fstat(fd).st_size < size:  # a new file
            try:
                _allocate(fd, size)
            except OSError:
                if os.fstat(fd).st_size == 0:
                    os.unlink(filename)  # leave no empty file for scrapes to report as damaged
                raise
    finally:
        os.close(fd)
