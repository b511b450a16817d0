"""Multi-process Prometheus metrics for Aura under Gunicorn, with dead workers merged away.

prometheus-client keeps every dead worker's counter/histogram files forever, so with
``max_requests`` recycling each scrape reads more files every day. Here the Gunicorn
master folds each dead worker's files into one archive file, under a lock that scrapes
share, so scrape cost stays bounded by the number of *live* workers plus one archive.

Public API
----------
``worker_identifier(pid, age) -> str``
    Identifier unique per worker lifetime (``"<pid>-<age>"``), used in file names.
``use_worker_identifier(identifier) -> None``
    Call in the worker right after fork (Gunicorn ``post_fork``) so its files are
    ``counter_<identifier>.db`` etc.; a recycled pid then never reopens an old file.
``install_value_class() -> None``
    Call before any metric object is created in a process that later forks workers (the
    master: gunicorn.conf.py, or ``aura/metrics/__init__.py`` before it imports the metric
    definitions). A metric object keeps the value class that existed when it was made, so
    without this, objects made before fork write pid-named files in every worker.
``merge_dead_worker(directory, identifier, *, lock_timeout=10.0) -> MergeStats``
    Fold one dead worker's files into the archive and delete them (master, ``child_exit``);
    for ``"<pid>-<age>"`` also the bare ``<pid>`` files, if that pid is no longer running.
``mark_worker_dead(directory, identifier, *, lock_timeout=10.0) -> MergeStats``
    Same as ``merge_dead_worker`` (named after prometheus_client's ``mark_process_dead``).
``merge_all_dead(directory, live_identifiers=(), *, check_pids=True, lock_timeout=10.0) -> MergeStats``
    Fold every worker not in ``live_identifiers`` (and, with ``check_pids``, whose pid is
    not running) - a sweep for workers whose ``child_exit`` was missed or whose merge timed out.
``AuraMultiProcessCollector(registry, path=None, *, self_metrics=True, lock_timeout=10.0)``
    Drop-in for ``prometheus_client.multiprocess.MultiProcessCollector``.
``prepare_directory(directory, *, uid=None, gid=None) -> None``
    Gunicorn ``on_starting``: create (0700) and mark the directory, delete the previous run's
    files (only names Aura/prometheus_client create). An unmarked directory holding anything
    else raises ``MetricsDirectoryError`` and is left untouched; so does an unwritable one.
``MergeStats``, ``MetricsDirectoryError``, ``MetricsLockTimeout``.

Example gunicorn.conf.py::

    import os
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/dev/shm/aura-metrics")
    from aura.metrics import multiproc as mp
    def on_starting(server):
        mp.prepare_directory(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    def post_fork(server, worker):
        mp.use_worker_identifier(mp.worker_identifier(worker.pid, worker.age))
    def child_exit(server, worker):
        # merge_all_dead also sweeps workers whose child_exit Gunicorn skipped (it calls
        # worker_exit instead when kill() finds the pid gone) or whose merge timed out.
        live = [mp.worker_identifier(w.pid, w.age) for w in server.WORKERS.values()]
        try:
            mp.merge_all_dead(os.environ["PROMETHEUS_MULTIPROC_DIR"], live)
        except Exception:  # the master must survive any metrics failure
            server.log.exception("metrics merge failed")

Metric objects must be created after ``use_worker_identifier`` (or after
``install_value_class``): one created earlier - e.g. by a module imported in the master
before fork - keeps prometheus_client's pid-named files (``merge_dead_worker`` still folds
those once the pid is dead, but a recycled pid could then reopen them).

Files in the directory: prometheus_client's ``<type>_<identifier>.db`` files, the archive
``aura-archive.json`` (format in ``aura.metrics._archive``), lock files ``.aura-metrics.lock``
and ``.aura-metrics.gate``, marker ``.aura-metrics-dir``, temporaries ``.aura-archive.*.tmp``.

Lock protocol: scrapes take ``flock(LOCK_SH)``, merges ``flock(LOCK_EX)`` on
``.aura-metrics.lock``; both first pass a "gate" (``.aura-metrics.gate``, same mode, released
once the main lock is held) so a waiting merge is not starved by back-to-back scrapes.
Lock files are opened per operation and never kept open, because the master forks workers
and an inherited descriptor would share its lock.

Crash safety: the archive lists the identifiers it has absorbed and is replaced atomically
(temp file, fsync, ``os.replace``, directory fsync) *before* the dead files are deleted;
readers ignore files whose identifier is absorbed, and every merge first deletes such
leftovers and stale temp files and prunes the absorbed list to identifiers whose files
still exist. A crash at any point therefore neither loses nor double-counts a value.

Self-metrics (exposed by the collector; no per-file or per-pid labels):
``aura_metrics_merges_total``, ``aura_metrics_merged_files_total`` (every file of a merged
worker, including dropped live-gauge files), ``aura_metrics_merge_duration_seconds``
(histogram; lock wait and the final fsync/rename/unlink are excluded) - all three stored in
the archive, as merges run in the master which writes no metric files;
``aura_metrics_directory_files`` (gauge: ``*.db`` files plus the archive at scrape time);
``aura_metrics_damaged_files_skipped_total{stage="scrape"}`` (damaged files skipped by this
scraping process - per process, so it can appear to reset when a different worker answers)
and ``{stage="merge"}`` (damaged dead files discarded by merges, from the archive).

Damaged files are skipped as a whole (never partially read), logged on the
``aura.metrics`` logger and counted; a merge discards a damaged dead file rather than
folding it, so values never change when a damaged file is merged away.

Caveats: gauge mode ``all`` keeps one series per dead worker, exactly as prometheus_client
does, so those still grow with recycling. Do not share one directory between two masters
(e.g. during a USR2 re-exec): ``prepare_directory`` would delete the other's live files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# No prometheus_client import at module level: importing it fixes values.ValueClass, and this
# module may be imported by gunicorn.conf.py before PROMETHEUS_MULTIPROC_DIR is set.
from ._archive import (
    ARCHIVE_NAME,
    CORRUPT_ARCHIVE_NAME,
    DURATION_BUCKETS,
    GATE_NAME,
    LIVE_GAUGE_MODES,
    LOCK_NAME,
    MARKER_NAME,
    PROBE_PREFIX,
    TMP_PREFIX,
    TMP_SUFFIX,
    Archive,
    DamagedFileError,
    is_owned_name,
    is_temp_name,
    parse_db_name,
    parse_key,
    read_db_file,
)

__all__ = [
    "AuraMultiProcessCollector",
    "MergeStats",
    "MetricsDirectoryError",
    "MetricsLockTimeout",
    "install_value_class",
    "mark_worker_dead",
    "merge_all_dead",
    "merge_dead_worker",
    "prepare_directory",
    "use_worker_identifier",
    "worker_identifier",
]

log = logging.getLogger("aura.metrics")

_IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")
_WORKER_ID_RE = re.compile(r"^[0-9]+-[0-9]+$")
_MARKER_TEXT = (
    "This directory holds Aura's multi-process Prometheus metrics.\n"
    "Aura deletes its metric files here at start-up.\n"
)

# Test-only crash injection: a merge sleeps at the named point so a test can SIGKILL it.
_PAUSE_ENV = "AURA_METRICS_TEST_PAUSE_AT"
_PAUSE_SIGNAL_ENV = "AURA_METRICS_TEST_PAUSE_SIGNAL"


class MetricsDirectoryError(RuntimeError):
    """The metrics directory cannot be used (missing, not writable, or not ours to clean)."""


class MetricsLockTimeout(TimeoutError):
    """The directory lock could not be taken in time."""


@dataclass(frozen=True)
class MergeStats:
    """Outcome of one merge call."""

    merged_identifiers: tuple[str, ...] = ()
    merged_files: int = 0
    damaged_files: int = 0
    leftover_files_removed: int = 0
    temp_files_removed: int = 0
    duration_seconds: float = 0.0
    skipped_reason: str | None = None


# --------------------------------------------------------------------------- identity


def worker_identifier(pid: int, age: int) -> str:
    """Return the per-lifetime worker identifier ``"<pid>-<age>"`` (no underscore)."""
    if isinstance(pid, bool) or isinstance(age, bool) or not isinstance(pid, int) or not isinstance(age, int):
        raise TypeError("pid and age must be int")
    if pid <= 0 or age < 0:
        raise ValueError(f"invalid pid/age: {pid}/{age}")
    return f"{pid}-{age}"


def _check_identifier(identifier: str) -> None:
    # prometheus_client splits file names on "_", and the identifier becomes part of a path.
    if not isinstance(identifier, str) or not _IDENTIFIER_RE.match(identifier):
        raise ValueError(f"invalid worker identifier {identifier!r}: use [A-Za-z0-9.-], no '_'")


def install_value_class() -> None:
    """Make prometheus_client's metrics store values with ``aura.metrics.mmap_values.AuraValue``.

    Files are then named by this process's identifier (``use_worker_identifier``), writes are
    cheap, and storage failures (directory full, read-only or gone) never reach the code that
    records a value - see that module.
    """
    from prometheus_client import values

    from .mmap_values import AuraValue

    values.ValueClass = AuraValue


def use_worker_identifier(identifier: str) -> None:
    """Name this process's metric files after ``identifier`` (call right after fork)."""
    from .mmap_values import set_identifier

    _check_identifier(identifier)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise MetricsDirectoryError(
            "PROMETHEUS_MULTIPROC_DIR is not set; set it (before prometheus_client is imported) "
            "to the directory prepared by prepare_directory()"
        )
    install_value_class()
    set_identifier(identifier)


# --------------------------------------------------------------------------- locking


def _open_lock_file(path: str) -> int:
    try:
        # Read-only is enough for flock, and lets workers running as another user use a lock
        # file the master created (prepare_directory makes it 0644).
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise MetricsDirectoryError(
            f"cannot open metrics lock file {path!r}: {e.strerror}; "
            "run prepare_directory() on the metrics directory at start-up"
        ) from e


def _acquire(fd: int, op: int, deadline: float, what: str) -> None:
    # Poll with LOCK_NB: a blocking flock cannot time out, and a stuck peer must not hang the
    # Gunicorn master's child_exit forever.
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MetricsLockTimeout(f"timed out waiting for the metrics lock in {what!r}")
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


@contextmanager
def _dir_lock(directory: str, *, exclusive: bool, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    gate_fd = _open_lock_file(os.path.join(directory, GATE_NAME))
    try:
        _acquire(gate_fd, op, deadline, directory)
        lock_fd = _open_lock_file(os.path.join(directory, LOCK_NAME))
        try:
            _acquire(lock_fd, op, deadline, directory)
        except BaseException:
            os.close(lock_fd)
            raise
    finally:
        # The gate only orders arrivals (a waiting writer blocks new readers); drop it now.
        os.close(gate_fd)
    try:
        yield
    finally:
        os.close(lock_fd)


# --------------------------------------------------------------------------- merging


def _pause_point(name: str) -> None:
    if os.environ.get(_PAUSE_ENV) != name:
        return
    signal_path = os.environ.get(_PAUSE_SIGNAL_ENV)
    if signal_path:
        with open(signal_path, "w") as f:
            f.write(name)
    time.sleep(60)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_archive(directory: str, data: bytes, prev_mtime_ns: int | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # Workers may run as another user; the directory itself is 0700.
            os.fchmod(f.fileno(), 0o644)
            _set_increasing_mtime(f.fileno(), prev_mtime_ns)
            os.fsync(f.fileno())
        _pause_point("before-replace")
        os.replace(tmp, os.path.join(directory, ARCHIVE_NAME))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _set_increasing_mtime(fd: int, prev_mtime_ns: int | None) -> None:
    # Scrapers cache the parsed archive by (st_ino, st_mtime_ns, st_size). Inodes get reused
    # and coarse clocks give equal mtimes to quick successive merges, so force every new
    # archive's mtime above its predecessor's (stepping up for coarse filesystems).
    if prev_mtime_ns is None:
        return
    now = time.time_ns()
    for step in (1, 1_000, 1_000_000, 1_000_000_000, 2_000_000_000):
        target = max(now, prev_mtime_ns + step)
        os.utime(fd, ns=(target, target))
        if os.fstat(fd).st_mtime_ns > prev_mtime_ns:
            return


def _load_archive_for_merge(directory: str) -> tuple[Archive, int | None]:
    path = os.path.join(directory, ARCHIVE_NAME)
    try:
        with open(path, "rb") as f:
            data = f.read()
            mtime_ns = os.fstat(f.fileno()).st_mtime_ns
    except FileNotFoundError:
        return Archive(), None
    try:
        return Archive.from_bytes(data), mtime_ns
    except DamagedFileError as e:
        # Only possible through outside damage (writes are atomic). Keep the evidence and start
        # over: archived totals are lost (Prometheus sees a counter reset) but merging continues.
        log.error("metrics archive %s is damaged (%s); moved to %s and starting a new archive",
                  path, e, CORRUPT_ARCHIVE_NAME)
        os.replace(path, os.path.join(directory, CORRUPT_ARCHIVE_NAME))
        return Archive(), mtime_ns


def _scan_worker_files(directory: str) -> tuple[dict[str, list[tuple[str, str, str]]], list[str]]:
    by_identifier: dict[str, list[tuple[str, str, str]]] = {}
    temps = []
    for name in os.listdir(directory):
        parsed = parse_db_name(name)
        if parsed is not None:
            typ, mode, ident = parsed
            by_identifier.setdefault(ident, []).append((name, typ, mode))
        elif is_temp_name(name) and name.startswith(TMP_PREFIX):
            temps.append(name)
    return by_identifier, temps


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as e:
        log.warning("cannot delete metrics file %s: %s", path, e)
        return False


_metric_name_ok: dict[tuple[str, str], bool] = {}


def _check_metric_name(metric_name: str, typ: str) -> None:
    # Metric() validates names; a garbage name must fail while reading a file (so the file is
    # skipped as damaged), not later while building the output.
    ok = _metric_name_ok.get((metric_name, typ))
    if ok is None:
        from prometheus_client.metrics_core import Metric

        try:
            Metric(metric_name, "", typ)
            ok = True
        except ValueError:
            ok = False
        if len(_metric_name_ok) > 10_000:
            _metric_name_ok.clear()
        _metric_name_ok[(metric_name, typ)] = ok
    if not ok:
        raise DamagedFileError(f"invalid metric name {metric_name!r}")


# Parsed mmap keys; keys repeat across workers and scrapes, so a process-wide cache makes
# parsing nearly free. Bounded by clearing (label sets are bounded in a sane service).
_key_cache: dict[str, tuple[str, str, tuple[tuple[str, str], ...], str]] = {}
_KEY_CACHE_MAX = 200_000


def _parse_rows(typ: str, rows: list[tuple[str, float, float]]) -> list[tuple]:
    """Validate and parse one file's rows; raises DamagedFileError so the file is skipped whole."""
    cache = _key_cache
    out = []
    for key, value, timestamp in rows:
        parsed = cache.get(key)
        if parsed is None:
            parsed = parse_key(key)
            _check_metric_name(parsed[0], typ)
            if len(cache) >= _KEY_CACHE_MAX:
                cache.clear()
            cache[key] = parsed
        out.append((*parsed, value, timestamp))
    return out


def _merge(directory: str, choose, lock_timeout: float) -> MergeStats:
    started = time.perf_counter()
    try:
        lock = _dir_lock(directory, exclusive=True, timeout=lock_timeout)
        lock.__enter__()
    except MetricsLockTimeout as e:
        # The files stay and are still read by scrapes; a later merge_all_dead() folds them.
        log.warning("metrics merge skipped: %s", e)
        return MergeStats(skipped_reason="lock timeout", duration_seconds=time.perf_counter() - started)
    try:
        work_started = time.perf_counter()
        archive, prev_mtime_ns = _load_archive_for_merge(directory)
        by_identifier, temps = _scan_worker_files(directory)

        # Temp files can only come from a merge that crashed (we hold the exclusive lock).
        temps_removed = sum(_unlink(os.path.join(directory, t)) for t in temps)

        # Leftovers of absorbed workers (a merge crashed after its replace): delete them, and keep
        # in the absorbed list only identifiers some of whose files could not be deleted.
        leftovers_removed = 0
        still_present = set()
        for ident in archive.absorbed:
            for name, _, _ in by_identifier.get(ident, ()):
                if _unlink(os.path.join(directory, name)):
                    leftovers_removed += 1
                else:
                    still_present.add(ident)
        pruned = archive.absorbed != still_present

        candidates = {i: f for i, f in by_identifier.items() if i not in archive.absorbed}
        targets = sorted(choose(candidates))
        merged_files = damaged = 0
        for ident in targets:
            for name, typ, mode in candidates[ident]:
                merged_files += 1
                if typ == "gauge" and mode in LIVE_GAUGE_MODES:
                    continue  # dropped unread: live gauges of a dead worker mean nothing
                path = os.path.join(directory, name)
                try:
                    rows = read_db_file(path)
                    _parse_rows(typ, rows)  # same validation as scrapes, so both skip the same files
                except Exception as e:  # noqa: BLE001 - any unreadable file is discarded, never fatal
                    damaged += 1
                    log.warning("discarding damaged metrics file %s of dead worker %s: %s", path, ident, e)
                    continue
                archive.fold(typ, mode, ident, rows)

        if not targets and not pruned:
            return MergeStats(leftover_files_removed=leftovers_removed, temp_files_removed=temps_removed,
                              duration_seconds=time.perf_counter() - started)

        archive.absorbed = still_present | set(targets)
        if targets:
            archive.merges += 1
            archive.merged_files += merged_files
            archive.damaged_files += damaged
            archive.observe_duration(time.perf_counter() - work_started)
        _write_archive(directory, archive.to_bytes(), prev_mtime_ns)
        _pause_point("after-replace")

        for n, ident in enumerate(targets):
            for name, _, _ in candidates[ident]:
                _unlink(os.path.join(directory, name))
            if n == 0:
                _pause_point("during-delete")
        return MergeStats(
            merged_identifiers=tuple(targets),
            merged_files=merged_files,
            damaged_files=damaged,
            leftover_files_removed=leftovers_removed,
            temp_files_removed=temps_removed,
            duration_seconds=time.perf_counter() - started,
        )
    finally:
        lock.__exit__(None, None, None)


def merge_dead_worker(directory: str, identifier: str, *, lock_timeout: float = 10.0) -> MergeStats:
    """Fold the dead worker ``identifier``'s files into the archive and delete them."""
    _check_identifier(identifier)
    pid = _pid_of(identifier) if _WORKER_ID_RE.match(identifier) else None

    def choose(candidates):
        chosen = [identifier] if identifier in candidates else []
        # Metric objects created before use_worker_identifier() (e.g. imported in the master
        # before fork) keep prometheus_client's pid-named files; fold the dead pid's too.
        if pid is not None and str(pid) in candidates and not _pid_running(pid):
            chosen.append(str(pid))
        return chosen

    return _merge(directory, choose, lock_timeout)


def mark_worker_dead(directory: str, identifier: str, *, lock_timeout: float = 10.0) -> MergeStats:
    """Alias of merge_dead_worker, named after prometheus_client's mark_process_dead."""
    return merge_dead_worker(directory, identifier, lock_timeout=lock_timeout)


def _pid_of(identifier: str) -> int | None:
    head = identifier.split("-", 1)[0].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def merge_all_dead(
    directory: str,
    live_identifiers: Iterable[str] = (),
    *,
    check_pids: bool = True,
    lock_timeout: float = 10.0,
) -> MergeStats:
    """Fold every worker not in ``live_identifiers`` (and, if ``check_pids``, not running)."""
    live = set(live_identifiers)

    def choose(candidates):
        chosen = []
        for ident in candidates:
            if ident in live:
                continue
            if check_pids:
                # Conservative: files of a process we cannot prove dead (unknown naming, pid
                # running - possibly reused) stay and are read normally; a later sweep gets them.
                pid = _pid_of(ident)
                if pid is None or _pid_running(pid):
                    continue
            chosen.append(ident)
        return chosen

    return _merge(directory, choose, lock_timeout)


# --------------------------------------------------------------------------- collector

_scrape_damaged_total = 0
_scrape_damaged_lock = threading.Lock()
_logged_damage: set[tuple[str, str]] = set()


def _report_damaged(path: str, reason: str) -> None:
    global _scrape_damaged_total
    with _scrape_damaged_lock:
        _scrape_damaged_total += 1
        first = (path, reason) not in _logged_damage
        if first and len(_logged_damage) < 1000:
            _logged_damage.add((path, reason))
    # Warn once per file and reason per process; every scrape would otherwise repeat it.
    log.log(logging.WARNING if first else logging.DEBUG, "skipping damaged metrics file %s: %s", path, reason)


@dataclass(frozen=True)
class _ArchiveView:
    absorbed: frozenset
    # (metric_name, help, type, gauge mode, samples) in archive order
    protos: tuple
    archive: Archive


_EMPTY_VIEW = _ArchiveView(frozenset(), (), Archive())
_archive_cache: dict[str, tuple[tuple[int, int, int], _ArchiveView]] = {}
_archive_cache_lock = threading.Lock()


def _build_view(archive: Archive, path: str) -> _ArchiveView:
    from prometheus_client.samples import Sample

    protos = []
    for (typ, mode, ident), values in archive.groups.items():
        rows = [(k, v, ts) for k, (v, ts) in values.items()]
        try:
            parsed = _parse_rows(typ, rows)
        except DamagedFileError as e:  # merges validate keys, so only outside damage gets here
            _report_damaged(path, f"group {typ}/{mode}: {e}")
            continue
        by_metric: dict[str, tuple[str, list]] = {}
        for metric_name, name, labels_key, help_text, value, timestamp in parsed:
            entry = by_metric.setdefault(metric_name, (help_text, []))
            if typ == "gauge":
                entry[1].append(Sample(name, labels_key + (("pid", ident),), value, timestamp))
            else:
                entry[1].append(Sample(name, labels_key, value))
        for metric_name, (help_text, samples) in by_metric.items():
            protos.append((metric_name, help_text, typ, mode, tuple(samples)))
    return _ArchiveView(frozenset(archive.absorbed), tuple(protos), archive)


def _read_archive_view(directory: str) -> tuple[_ArchiveView, bool]:
    """Return the parsed archive (cached by inode, mtime and size) and whether it exists."""
    path = os.path.join(directory, ARCHIVE_NAME)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return _EMPTY_VIEW, False
    with f:
        st = os.fstat(f.fileno())
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with _archive_cache_lock:
            hit = _archive_cache.get(path)
        if hit is not None and hit[0] == key:
            return hit[1], True
        data = f.read()
    try:
        view = _build_view(Archive.from_bytes(data), path)
    except DamagedFileError as e:
        _report_damaged(path, str(e))
        return _EMPTY_VIEW, True
    with _archive_cache_lock:
        if len(_archive_cache) >= 16 and path not in _archive_cache:
            _archive_cache.pop(next(iter(_archive_cache)))
        _archive_cache[path] = (key, view)
    return view, True


class AuraMultiProcessCollector:
    """Drop-in for MultiProcessCollector that also reads the archive and skips damaged files."""

    def __init__(self, registry, path: str | None = None, *, self_metrics: bool = True,
                 lock_timeout: float = 10.0):
        if path is None:
            path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not path or not os.path.isdir(path):
            raise ValueError("env PROMETHEUS_MULTIPROC_DIR is not set or not a directory")
        self._path = path
        self._self_metrics = self_metrics
        self._lock_timeout = lock_timeout
        if registry:
            registry.register(self)

    def _snapshot(self):
        files = []
        db_files = 0
        with _dir_lock(self._path, exclusive=False, timeout=self._lock_timeout):
            view, archive_exists = _read_archive_view(self._path)
            for name in os.listdir(self._path):
                # Same selection as the stock glob("*.db"), which skips dot-files.
                if not name.endswith(".db") or name.startswith("."):
                    continue
                db_files += 1
                path = os.path.join(self._path, name)
                parsed = parse_db_name(name)
                if parsed is None:
                    _report_damaged(path, "not a prometheus_client file name")
                    continue
                if parsed[2] in view.absorbed:
                    continue  # leftover of a merge that crashed; its values are in the archive
                try:
                    rows = read_db_file(path)
                except FileNotFoundError:
                    continue  # e.g. a live gauge removed by mark_process_dead meanwhile
                except Exception as e:  # noqa: BLE001 - a bad file must never fail the scrape
                    _report_damaged(path, str(e) or type(e).__name__)
                    continue
                files.append((path, parsed, rows))
        return view, files, db_files + archive_exists

    def collect(self):
        """Yield merged metric families (like MultiProcessCollector) plus self-metrics."""
        from prometheus_client.metrics_core import Metric
        from prometheus_client.multiprocess import MultiProcessCollector
        from prometheus_client.samples import Sample

        view, files, directory_files = self._snapshot()
        metrics: dict[str, Metric] = {}
        for metric_name, help_text, typ, mode, samples in view.protos:
            metric = metrics.get(metric_name)
            if metric is None:
                metric = metrics[metric_name] = Metric(metric_name, help_text, typ)
            if typ == "gauge":
                metric._multiprocess_mode = mode
            metric.samples.extend(samples)
        for path, (typ, mode, ident), rows in files:
            try:
                parsed = _parse_rows(typ, rows)
            except Exception as e:  # noqa: BLE001 - skip the whole file, never fail the scrape
                _report_damaged(path, str(e) or type(e).__name__)
                continue
            pid_label = ("pid", ident)
            for metric_name, name, labels_key, help_text, value, timestamp in parsed:
                metric = metrics.get(metric_name)
                if metric is None:
                    metric = metrics[metric_name] = Metric(metric_name, help_text, typ)
                if typ == "gauge":
                    metric._multiprocess_mode = mode
                    metric.samples.append(Sample(name, labels_key + (pid_label,), value, timestamp))
                else:
                    metric.samples.append(Sample(name, labels_key, value))
        # _accumulate_metrics is a private staticmethod; prometheus-client is pinned (0.26.0),
        # and reusing it is what keeps the output identical to MultiProcessCollector's.
        yield from MultiProcessCollector._accumulate_metrics(metrics, True)
        if self._self_metrics:
            yield from self._self_families(view.archive, directory_files)

    @staticmethod
    def _self_families(archive: Archive, directory_files: int):
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        from prometheus_client.utils import floatToGoString

        yield CounterMetricFamily("aura_metrics_merges", "Merges of dead workers into the archive.",
                                  value=archive.merges)
        yield CounterMetricFamily("aura_metrics_merged_files", "Dead-worker files folded into the archive.",
                                  value=archive.merged_files)
        acc = 0
        buckets = []
        for bound, n in zip(DURATION_BUCKETS, archive.duration_counts, strict=True):
            acc += n
            buckets.append((floatToGoString(bound), acc))
        yield HistogramMetricFamily("aura_metrics_merge_duration_seconds", "Duration of dead-worker merges.",
                                    buckets=buckets, sum_value=archive.duration_sum)
        yield GaugeMetricFamily("aura_metrics_directory_files",
                                "Metric files (*.db and archive) at scrape time.", value=directory_files)
        damaged = CounterMetricFamily("aura_metrics_damaged_files_skipped",
                                      "Damaged metric files skipped (scrape: by this process).",
                                      labels=["stage"])
        damaged.add_metric(["scrape"], _scrape_damaged_total)
        damaged.add_metric(["merge"], archive.damaged_files)
        yield damaged


# --------------------------------------------------------------------------- start-up


def prepare_directory(directory: str, *, uid: int | None = None, gid: int | None = None) -> None:
    """Create and mark the metrics directory, deleting only Aura-owned files of a previous run."""
    # An unmarked, non-empty directory is adopted only if every entry is a regular file with a
    # name this package or prometheus_client creates; otherwise MetricsDirectoryError, and
    # nothing is deleted. uid/gid (Gunicorn's server.cfg.uid/gid) chown the directory and lock
    # files for workers running as another user than the master.
    directory = os.path.abspath(directory)
    hint = ("Set PROMETHEUS_MULTIPROC_DIR to a writable directory dedicated to Aura's metrics "
            "(e.g. /dev/shm/aura-metrics).")
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError as e:
        if not os.path.isdir(directory):
            raise MetricsDirectoryError(
                f"metrics directory {directory!r} exists but is not a directory. {hint}") from e
    except OSError as e:
        raise MetricsDirectoryError(
            f"cannot create metrics directory {directory!r}: {e.strerror}. {hint}") from e

    # Probe by writing: os.access() is meaningless for root and ignores read-only mounts.
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, suffix=TMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MetricsDirectoryError(
            f"metrics directory {directory!r} is not writable: {e.strerror}. "
            f"Fix its permissions or ownership, or {hint[0].lower()}{hint[1:]}"
        ) from e

    names = os.listdir(directory)
    if MARKER_NAME not in names and names:
        foreign = sorted(n for n in names if not (is_owned_name(n) and _is_plain_file(directory, n)))
        if foreign:
            shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise MetricsDirectoryError(
                f"refusing to clean metrics directory {directory!r}: it has no {MARKER_NAME} marker and "
                f"contains files Aura does not own ({shown}). Remove them or {hint[0].lower()}{hint[1:]}"
            )
        log.warning("adopting unmarked metrics directory %s holding only metric files", directory)

    removed = 0
    with _dir_lock(directory, exclusive=True, timeout=10.0):
        for name in os.listdir(directory):
            if name in (LOCK_NAME, GATE_NAME, MARKER_NAME) or not is_owned_name(name):
                continue  # lock files must keep their inode; foreign files are never touched
            if _is_plain_file(directory, name) and _unlink(os.path.join(directory, name)):
                removed += 1
        marker = os.path.join(directory, MARKER_NAME)
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(_MARKER_TEXT)
    for name in (LOCK_NAME, GATE_NAME, MARKER_NAME):
        path = os.path.join(directory, name)
        os.chmod(path, 0o644)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    if uid is not None or gid is not None:
        os.chown(directory, -1 if uid is None else uid, -1 if gid is None else gid)
    if removed:
        log.info("removed %d metric files of a previous run from %s", removed, directory)


def _is_plain_file(directory: str, name: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(os.path.join(directory, name)).st_mode)
    except FileNotFoundError:
        return False
