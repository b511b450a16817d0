"""Dead workers' values folded into one archive file, so scrapes read live workers plus one file.

prometheus_client keeps every dead worker's files forever; with ``max_requests`` recycling
each scrape would read more files every day. The Gunicorn master (``child_exit``) folds a dead
worker's files into ``aura-archive.json`` under the exclusive directory lock and deletes them.
Crash safety: the archive lists the identifiers it has absorbed and is replaced atomically
*before* the dead files are deleted; readers ignore files of absorbed identifiers. The format
and the protocol are in docs/metrics.md ("Archive").
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from . import exemplars
from .exemplars import Stored
from .fileformat import (
    ARCHIVE_NAME,
    CORRUPT_ARCHIVE_NAME,
    GAUGE_MODES,
    LIVE_GAUGE_MODES,
    PLAIN_TYPES,
    TMP_PREFIX,
    DamagedFileError,
    check_identifier,
    created_in_place,
    is_temp_name,
    parse_db_name,
    parse_exemplars_name,
    parse_inflight_name,
    parse_key,
    read_db_file,
    unlink,
)
from .inflight import BUSY_KEY, Running, busy_at_death, stamp_ended
from .locking import MetricsLockTimeout, directory_lock
from .processes import is_worker_identifier, pid_of, pid_running

log = logging.getLogger("aura.metrics")

ARCHIVE_FORMAT = "aura-metrics-archive"
ARCHIVE_VERSION = 1
# Merge-duration histogram bounds (seconds); a merge normally takes milliseconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)

Row = tuple[str, float, float]
ParsedRow = tuple[str, str, tuple[tuple[str, str], ...], str, float, float]


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


def _le_string(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


@dataclass
class Archive:
    """In-memory form of the archive: folded dead-worker values plus merge bookkeeping."""

    absorbed: set[str] = field(default_factory=set)
    # (type, mode, id) -> key -> [value, timestamp]; id only for gauge mode "all"
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = field(default_factory=dict)
    merges: int = 0
    merged_files: int = 0
    damaged_files: int = 0
    duration_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    # value-file key -> the newest exemplar of dead workers (aura/metrics/exemplars.py)
    exemplars: dict[str, Stored] = field(default_factory=dict)

    def fold(self, typ: str, mode: str, identifier: str, rows: list[Row]) -> None:
        """Fold one dead worker file's rows in, by the same rules as the stock collector."""
        if typ == "gauge":
            if mode in LIVE_GAUGE_MODES:
                return  # the worker is dead; stock mark_process_dead drops these too
            group_key = (typ, mode, identifier if mode == "all" else "")
        else:
            group_key = (typ, "", "")
        group = self.groups.setdefault(group_key, {})
        for key, value, timestamp in rows:
            cur = group.get(key)
            if cur is None:
                group[key] = [value, timestamp if typ == "gauge" else 0.0]
            elif typ != "gauge" or mode == "sum":
                cur[0] += value
            elif mode == "min":
                if value < cur[0]:
                    cur[0] = value
            elif mode == "max":
                if value > cur[0]:
                    cur[0] = value
            elif mode == "mostrecent":
                if cur[1] < timestamp:
                    cur[0], cur[1] = value, timestamp
            else:  # "all": one entry per dead identifier, last write wins like the stock reader
                cur[0], cur[1] = value, timestamp

    def observe_duration(self, seconds: float) -> None:
        """Record one merge duration in the fixed-bucket histogram."""
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.duration_counts[i] += 1
                break
        self.duration_sum += seconds

    def to_bytes(self) -> bytes:
        """Serialise to the version-1 JSON format (docs/metrics.md)."""
        doc = {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "absorbed": sorted(self.absorbed),
            "stats": {
                "merges": self.merges,
                "merged_files": self.merged_files,
                "damaged_files": self.damaged_files,
                "merge_duration": {
                    "buckets": [
                        [_le_string(b), n] for b, n in zip(DURATION_BUCKETS, self.duration_counts, strict=True)
                    ],
                    "sum": self.duration_sum,
                },
            },
            "groups": [
                {"type": t, "mode": m, "id": i, "values": [[k, v[0], v[1]] for k, v in values.items()]}
                for (t, m, i), values in sorted(self.groups.items())
                if values
            ],
        }
        if self.exemplars:  # absent until a worker kept one: archives without stay as they were
            doc["exemplars"] = [[k, *stored] for k, stored in sorted(self.exemplars.items())]
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Archive:
        """Parse an archive, raising DamagedFileError on anything unexpected."""
        try:
            doc = json.loads(data)
            if doc.get("format") != ARCHIVE_FORMAT or doc.get("version") != ARCHIVE_VERSION:
                raise DamagedFileError(f"not a version-{ARCHIVE_VERSION} archive")
            archive = cls(absorbed={str(i) for i in doc["absorbed"]})
            stats = doc["stats"]
            archive.merges = int(stats["merges"])
            archive.merged_files = int(stats["merged_files"])
            archive.damaged_files = int(stats["damaged_files"])
            archive.duration_sum = float(stats["merge_duration"]["sum"])
            for le, n in stats["merge_duration"]["buckets"]:
                # Tolerate changed bounds: count into the first current bound >= the stored one.
                bound = float(le)
                idx = next(i for i, b in enumerate(DURATION_BUCKETS) if bound <= b)
                archive.duration_counts[idx] += int(n)
            for g in doc["groups"]:
                typ, mode, ident = str(g["type"]), str(g["mode"]), str(g["id"])
                if typ not in PLAIN_TYPES and not (typ == "gauge" and mode in GAUGE_MODES):
                    raise DamagedFileError(f"unknown group type {typ!r}/{mode!r}")
                archive.groups[(typ, mode, ident)] = {str(k): [float(v), float(ts)] for k, v, ts in g["values"]}
            for k, trace_id, value, timestamp in doc.get("exemplars", ()):
                archive.exemplars[str(k)] = Stored(str(trace_id), float(value), float(timestamp))
            return archive
        except DamagedFileError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, StopIteration) as e:
            raise DamagedFileError(f"malformed archive: {e!r}") from e


# --------------------------------------------------------------------------- row validation

_metric_name_ok: dict[tuple[str, str], bool] = {}
# Parsed keys; keys repeat across workers and scrapes, so a process-wide cache makes parsing
# nearly free. Bounded by clearing (label sets are bounded in a sane service).
_key_cache: dict[str, tuple[str, str, tuple[tuple[str, str], ...], str]] = {}
_KEY_CACHE_MAX = 200_000


def _check_metric_name(metric_name: str, typ: str) -> None:
    # Metric() validates names; a garbage name must fail while reading a file (so the file is
    # skipped as damaged), not later while building the output.
    ok = _metric_name_ok.get((metric_name, typ))
    if ok is None:
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


def parse_rows(typ: str, rows: list[Row]) -> list[ParsedRow]:
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


# --------------------------------------------------------------------------- merging


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _write_archive(directory: str, data: bytes, prev_mtime_ns: int | None) -> None:
    with created_in_place(os.path.join(directory, ARCHIVE_NAME), TMP_PREFIX) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _set_increasing_mtime(fd, prev_mtime_ns)
        os.fsync(fd)
    _fsync_dir(directory)


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
        log.error(
            "metrics archive %s is damaged (%s); moved to %s and starting a new archive", path, e, CORRUPT_ARCHIVE_NAME
        )
        os.replace(path, os.path.join(directory, CORRUPT_ARCHIVE_NAME))
        return Archive(), mtime_ns


def _scan_worker_files(directory: str) -> tuple[dict[str, list[tuple[str, str, str]]], list[str]]:
    by_identifier: dict[str, list[tuple[str, str, str]]] = {}
    temps = []
    for name in os.listdir(directory):
        parsed = parse_db_name(name)
        inflight_ident = parse_inflight_name(name)
        exemplars_ident = parse_exemplars_name(name)
        if inflight_ident is not None:
            by_identifier.setdefault(inflight_ident, []).append((name, INFLIGHT, ""))
        elif exemplars_ident is not None:
            by_identifier.setdefault(exemplars_ident, []).append((name, EXEMPLARS, ""))
        elif parsed is not None:
            typ, mode, ident = parsed
            by_identifier.setdefault(ident, []).append((name, typ, mode))
        elif is_temp_name(name) and name.startswith(TMP_PREFIX):
            temps.append(name)
    return by_identifier, temps


INFLIGHT = "inflight"  # the type _scan_worker_files gives a worker's in-flight file
EXEMPLARS = "exemplars"  # ... and its exemplar file
# extra_rows(identifier, its counter rows, requests it died in) -> (type, row) pairs to fold in
ExtraRows = Callable[[str, list[Row], list[Running]], list[tuple[str, Row]]]


def _remove_leftovers(
    directory: str, absorbed: set[str], by_identifier: dict[str, list[tuple[str, str, str]]]
) -> tuple[int, set[str]]:
    """Delete files of absorbed workers (a merge crashed after its replace).

    Returns how many were deleted and the identifiers some of whose files could not be, which
    must stay in the absorbed list.
    """
    removed = 0
    still_present = set()
    for ident in absorbed:
        for name, _, _ in by_identifier.get(ident, ()):
            if unlink(os.path.join(directory, name)):
                removed += 1
            else:
                still_present.add(ident)
    return removed, still_present


def _fold_worker(
    archive: Archive, directory: str, ident: str, files: list[tuple[str, str, str]], extra_rows: ExtraRows | None
) -> int:
    """Fold one dead worker's files into ``archive``; returns how many were damaged (discarded)."""
    damaged = 0
    counter_rows: list[Row] = []
    running: list[Running] = []
    for name, typ, mode in files:
        if typ == "gauge" and mode in LIVE_GAUGE_MODES:
            continue  # dropped unread: live gauges of a dead worker mean nothing
        path = os.path.join(directory, name)
        try:
            if typ == INFLIGHT:
                # Its requests end when the master first found it dead: a merge retried later
                # (lock timeout) counts the same busy seconds and durations.
                state = stamp_ended(path)
                archive.fold("counter", "", ident, [(BUSY_KEY, busy_at_death(ident, state), 0.0)])
                running = state.running()
                continue
            if typ == EXEMPLARS:  # kept, newest per sample: a recycled worker's requests stay findable
                exemplars.newest(archive.exemplars, exemplars.read(path).items())
                continue
            rows = read_db_file(path)
            parse_rows(typ, rows)  # same validation as scrapes, so both skip the same files
        except Exception as e:  # noqa: BLE001 - any unreadable file is discarded, never fatal
            damaged += 1
            log.warning("discarding damaged metrics file %s of dead worker %s: %s", path, ident, e)
            continue
        archive.fold(typ, mode, ident, rows)
        if typ == "counter":
            counter_rows = rows
    if extra_rows is not None:
        by_type: dict[str, list[Row]] = {}
        for typ, row in extra_rows(ident, counter_rows, running):
            by_type.setdefault(typ, []).append(row)
        for typ, rows in by_type.items():
            archive.fold(typ, "", ident, rows)
    return damaged


def _merge(
    directory: str,
    choose: Callable[[Collection[str]], Iterable[str]],
    lock_timeout: float,
    extra_rows: ExtraRows | None = None,
) -> MergeStats:
    started = time.perf_counter()
    try:
        lock = directory_lock(directory, exclusive=True, timeout=lock_timeout)
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
        temps_removed = sum(unlink(os.path.join(directory, t)) for t in temps)

        leftovers_removed, still_present = _remove_leftovers(directory, archive.absorbed, by_identifier)
        pruned = archive.absorbed != still_present

        candidates = {i: f for i, f in by_identifier.items() if i not in archive.absorbed}
        targets = sorted(choose(candidates))
        merged_files = sum(len(candidates[ident]) for ident in targets)
        damaged = sum(_fold_worker(archive, directory, ident, candidates[ident], extra_rows) for ident in targets)

        if not targets and not pruned:
            return MergeStats(
                leftover_files_removed=leftovers_removed,
                temp_files_removed=temps_removed,
                duration_seconds=time.perf_counter() - started,
            )

        archive.absorbed = still_present | set(targets)
        if targets:
            archive.merges += 1
            archive.merged_files += merged_files
            archive.damaged_files += damaged
            archive.observe_duration(time.perf_counter() - work_started)
        _write_archive(directory, archive.to_bytes(), prev_mtime_ns)

        for ident in targets:
            for name, _, _ in candidates[ident]:
                unlink(os.path.join(directory, name))
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
    """Fold the dead worker ``identifier``'s files into the archive and delete them.

    For ``"<pid>-<age>"`` also the bare ``<pid>`` files, once that pid is not running: metric
    objects created before the worker got its identifier may have written those.
    """
    check_identifier(identifier)
    pid = pid_of(identifier) if is_worker_identifier(identifier) else None

    def choose(candidates: Collection[str]) -> list[str]:
        chosen = [identifier] if identifier in candidates else []
        if pid is not None and str(pid) in candidates and not pid_running(pid):
            chosen.append(str(pid))
        return chosen

    return _merge(directory, choose, lock_timeout)


def mark_worker_dead(directory: str, identifier: str, *, lock_timeout: float = 10.0) -> MergeStats:
    """Alias of merge_dead_worker, named after prometheus_client's mark_process_dead."""
    return merge_dead_worker(directory, identifier, lock_timeout=lock_timeout)


def merge_all_dead(
    directory: str,
    live_identifiers: Iterable[str] = (),
    *,
    check_pids: bool = True,
    lock_timeout: float = 10.0,
    extra_rows: ExtraRows | None = None,
) -> MergeStats:
    """Fold every worker not in ``live_identifiers`` (and, if ``check_pids``, not running).

    ``extra_rows(identifier, its counter rows, the requests it died in)`` may return
    ``(type, row)`` pairs to fold in with a dead worker's (what the master knows of its death:
    why it ended, the requests it took with it), in the same atomic archive write - so a merge
    that is skipped (lock timeout) and retried counts them once.
    """
    live = set(live_identifiers)

    def choose(candidates: Collection[str]) -> list[str]:
        chosen = []
        for ident in candidates:
            if ident in live:
                continue
            if check_pids:
                # Conservative: files of a process we cannot prove dead (unknown naming, pid
                # running - possibly reused) stay and are read normally; a later sweep gets them.
                pid = pid_of(ident)
                if pid is None or pid_running(pid):
                    continue
            chosen.append(ident)
        return chosen

    return _merge(directory, choose, lock_timeout, extra_rows)
