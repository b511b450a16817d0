"""The collector: every live worker's files plus the archive, merged as prometheus_client merges them.

Exemplars (``exemplars.py``) ride along: the archive's and the live workers', newest per sample.

A drop-in for ``prometheus_client.multiprocess.MultiProcessCollector`` that also reads the
archive of dead workers, skips damaged files whole (logged once per file, counted), and exposes
a few self-metrics (docs/metrics.md, "Self-metrics").
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from . import _compat, exemplars
from .archive import DURATION_BUCKETS, Archive, ParsedRow, Row, parse_rows
from .exemplars import Stored
from .fileformat import (
    ARCHIVE_NAME,
    DamagedFileError,
    parse_db_name,
    parse_exemplars_name,
    parse_inflight_name,
    read_db_file,
)
from .inflight import scrape_files
from .locking import directory_lock

log = logging.getLogger("aura.metrics")

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
    absorbed: frozenset[str]
    # (metric_name, help, type, gauge mode, samples) in archive order
    protos: tuple[tuple[str, str, str, str, tuple[Sample, ...]], ...]
    archive: Archive


def _forked() -> None:
    # The master's metrics listener may hold these while the master forks a worker.
    global _scrape_damaged_lock, _archive_cache_lock
    _scrape_damaged_lock, _archive_cache_lock = threading.Lock(), threading.Lock()


_EMPTY_VIEW = _ArchiveView(frozenset(), (), Archive())
_archive_cache: dict[str, tuple[tuple[int, int, int], _ArchiveView]] = {}
_archive_cache_lock = threading.Lock()
os.register_at_fork(after_in_child=_forked)


def _samples(typ: str, parsed: list[ParsedRow], ident: str) -> Iterator[tuple[str, str, Sample]]:
    """(metric name, help, sample) per row, labels as tuples and gauges with a ``pid`` label, as stock."""
    gauge = typ == "gauge"
    for metric_name, name, labels_key, help_text, value, timestamp in parsed:
        labels: Any = labels_key + (("pid", ident),) if gauge else labels_key
        yield metric_name, help_text, Sample(name, labels, value, timestamp if gauge else None)


def _build_view(archive: Archive, path: str) -> _ArchiveView:
    protos = []
    for (typ, mode, ident), values in archive.groups.items():
        try:
            parsed = parse_rows(typ, [(k, v, ts) for k, (v, ts) in values.items()])
        except DamagedFileError as e:  # merges validate keys, so only outside damage gets here
            _report_damaged(path, f"group {typ}/{mode}: {e}")
            continue
        by_metric: dict[str, tuple[str, list[Sample]]] = {}
        for metric_name, help_text, sample in _samples(typ, parsed, ident):
            by_metric.setdefault(metric_name, (help_text, []))[1].append(sample)
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


def register_collector(registry: Any, directory: str) -> None:
    """Register the collector for ``directory``: Aura's, or the stock one when internals are untested."""
    if _compat.problem():
        MultiProcessCollector(registry, directory)
    else:
        AuraMultiProcessCollector(registry, directory)


class AuraMultiProcessCollector:
    """Drop-in for MultiProcessCollector that also reads the archive and skips damaged files."""

    def __init__(self, registry: Any, path: str, *, self_metrics: bool = True, lock_timeout: float = 10.0):
        if not path or not os.path.isdir(path):
            raise ValueError(f"the metrics directory {path!r} is not a directory")
        self._path = path
        self._self_metrics = self_metrics
        self._lock_timeout = lock_timeout
        if registry:
            registry.register(self)

    def _snapshot(
        self,
    ) -> tuple[_ArchiveView, list[tuple[str, tuple[str, str, str], list[Row]]], dict[str, Stored], int]:
        files: list[tuple[str, tuple[str, str, str], list[Row]]] = []
        db_files = 0
        inflight_names = []
        with directory_lock(self._path, exclusive=False, timeout=self._lock_timeout):
            now = time.perf_counter()  # before the in-flight files are read (inflight.scrape_files)
            view, archive_exists = _read_archive_view(self._path)
            kept = dict(view.archive.exemplars)
            for name in os.listdir(self._path):
                ident = parse_inflight_name(name)
                if ident is not None and ident not in view.absorbed:
                    inflight_names.append(name)
                ident = parse_exemplars_name(name)
                if ident is not None and ident not in view.absorbed:
                    _read_exemplars(os.path.join(self._path, name), kept)
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
            files += scrape_files(self._path, inflight_names, now, _report_damaged)
        return view, files, kept, db_files + archive_exists

    def collect(self) -> Iterator[Metric]:
        """Yield merged metric families (like MultiProcessCollector) plus self-metrics."""
        view, files, kept, directory_files = self._snapshot()
        metrics: dict[str, Metric] = {}
        for metric_name, help_text, typ, mode, samples in view.protos:
            metric = metrics.get(metric_name)
            if metric is None:
                metric = metrics[metric_name] = _compat.new_metric(metric_name, help_text, typ, mode)
            metric.samples.extend(samples)
        for path, (typ, mode, ident), rows in files:
            try:
                parsed = parse_rows(typ, rows)
            except Exception as e:  # noqa: BLE001 - skip the whole file, never fail the scrape
                _report_damaged(path, str(e) or type(e).__name__)
                continue
            for metric_name, help_text, sample in _samples(typ, parsed, ident):
                metric = metrics.get(metric_name)
                if metric is None:
                    metric = metrics[metric_name] = _compat.new_metric(metric_name, help_text, typ, mode)
                metric.samples.append(sample)
        yield from exemplars.attach(_compat.accumulate(metrics), kept)
        if self._self_metrics:
            yield from _self_families(view.archive, directory_files)


def _read_exemplars(path: str, into: dict[str, Stored]) -> None:
    """Merge one worker's exemplars into ``into`` (newest wins); a bad file is skipped like a value file."""
    try:
        exemplars.newest(into, exemplars.read(path).items())
    except FileNotFoundError:
        pass  # merged into the archive meanwhile (this scrape read the archive before)
    except Exception as e:  # noqa: BLE001 - a bad file must never fail the scrape
        _report_damaged(path, str(e) or type(e).__name__)


def _self_families(archive: Archive, directory_files: int) -> Iterator[Metric]:
    yield CounterMetricFamily("aura_metrics_merges", "Merges of dead workers into the archive.", value=archive.merges)
    yield CounterMetricFamily(
        "aura_metrics_merged_files", "Dead-worker files folded into the archive.", value=archive.merged_files
    )
    acc = 0
    buckets = []
    for bound, n in zip(DURATION_BUCKETS, archive.duration_counts, strict=True):
        acc += n
        buckets.append((floatToGoString(bound), acc))
    yield HistogramMetricFamily(
        "aura_metrics_merge_duration_seconds",
        "Duration of dead-worker merges.",
        buckets=buckets,
        sum_value=archive.duration_sum,
    )
    yield GaugeMetricFamily(
        "aura_metrics_directory_files", "Metric files (*.db and archive) at scrape time.", value=directory_files
    )
    damaged = CounterMetricFamily(
        "aura_metrics_damaged_files_skipped",
        "Damaged metric files skipped (scrape: by this process).",
        labels=["stage"],
    )
    damaged.add_metric(["scrape"], _scrape_damaged_total)
    damaged.add_metric(["merge"], archive.damaged_files)
    yield damaged
