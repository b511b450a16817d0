"""Every use of prometheus_client's private internals, and the check that they are the tested ones.

The value class writes into ``MmapedDict``'s mapping at the position it keeps for a key
(``_m``, ``_positions``), and reserves file space before the mapping grows (``_used``,
``_capacity``, ``_f``, ``_init_value``, the module's ``_INITIAL_MMAP_SIZE``). The collector
reuses ``MultiProcessCollector._accumulate_metrics`` and sets ``Metric._multiprocess_mode``,
so its output is the stock collector's by construction. The request recorder reads a counter's
``_value`` and a histogram's ``_sum``, ``_buckets`` and ``_upper_bounds``.

``problem()`` says why the installed prometheus_client cannot be trusted with these (a version
this code was not tested against, or a missing attribute); callers then use the stock value
class and collector (``install_value_class`` and the Gunicorn hooks do).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from typing import Any

from prometheus_client import mmap_dict
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .fileformat import HEADER_SIZE, VALUE_TMP_PREFIX, created_in_place, entry_size

# Versions whose internals the tests (tests/metrics) were run against.
TESTED_VERSIONS = frozenset(("0.26.0",))
_MMAPED_DICT_ATTRIBUTES = ("_m", "_positions", "_used", "_capacity", "_f")


def installed_version() -> str:
    """The installed prometheus-client's version."""
    return metadata.version("prometheus-client")


@cache
def problem(version: str | None = None) -> str | None:
    """Why the private internals cannot be used, or None when they can (the installed version by default)."""
    version = version or installed_version()
    if version not in TESTED_VERSIONS:
        return (
            f"prometheus-client {version} is not a version Aura's metrics core was tested against "
            f"({', '.join(sorted(TESTED_VERSIONS))})"
        )
    missing = [name for name in ("_init_value", "read_value") if not hasattr(mmap_dict.MmapedDict, name)]
    if not hasattr(mmap_dict, "_INITIAL_MMAP_SIZE"):
        missing.append("mmap_dict._INITIAL_MMAP_SIZE")
    if not callable(getattr(MultiProcessCollector, "_accumulate_metrics", None)):
        missing.append("MultiProcessCollector._accumulate_metrics")
    if missing:
        return f"prometheus-client {version} lacks {', '.join(missing)}"
    return None


def accumulate(metrics: dict[str, Metric]) -> Iterable[Metric]:
    """Merge per-file samples into families exactly as MultiProcessCollector does."""
    return MultiProcessCollector._accumulate_metrics(metrics, True)  # type: ignore[no-any-return]


def new_metric(name: str, help_text: str, typ: str, mode: str) -> Metric:
    """A Metric to collect file samples into, carrying its gauge mode as the stock reader sets it."""
    metric = Metric(name, help_text, typ)
    if typ == "gauge":
        metric._multiprocess_mode = mode  # type: ignore[attr-defined]
    return metric


def slot(file: Any, key: str) -> tuple[Any, int, tuple[float, float]]:
    """(mapping, position, stored (value, timestamp)) of ``key`` in an open MmapedDict, adding it if new."""
    stored = file.read_value(key)
    return file._m, file._positions[key], stored


def child_values(child: Any) -> tuple[Any, ...]:
    """A counter or gauge child's value, or a histogram child's sum and buckets (all that it stores)."""
    if hasattr(child, "_buckets"):
        return (child._sum, *child._buckets)
    return (child._value,)


def histogram_parts(histogram: Any) -> tuple[Any, list[Any], tuple[float, ...]]:
    """A histogram child's sum value, bucket values and upper bounds (ending with +Inf)."""
    return histogram._sum, histogram._buckets, tuple(histogram._upper_bounds)


def counter_value(counter: Any) -> Any:
    """The value object of a counter or gauge (child or unlabelled metric)."""
    return counter._value


class ReservingMmapedDict(mmap_dict.MmapedDict):
    """MmapedDict that allocates file blocks before mapping them.

    A file extended with ftruncate is sparse: on a full filesystem (typically a size-limited
    tmpfs) the first write to a new page of its mapping kills the process with SIGBUS.
    posix_fallocate reserves the blocks first and fails with ENOSPC instead.
    """

    mapping: Any  # the current mmap (public: the value class writes into it; it changes as the file grows)

    def __init__(self, filename: str, read_mode: bool = False):
        if not read_mode:
            _reserve(filename, mmap_dict._INITIAL_MMAP_SIZE)
        super().__init__(filename, read_mode)  # type: ignore[no-untyped-call]  # MmapedDict is unannotated
        self.mapping = self._m

    def _init_value(self, key: str) -> None:
        needed = max(self._used, HEADER_SIZE) + entry_size(key)
        capacity = self._capacity
        while needed > capacity:
            capacity *= 2
        if capacity != self._capacity:
            _allocate(self._f.fileno(), capacity)
        super()._init_value(key)  # type: ignore[no-untyped-call]  # MmapedDict is unannotated
        self.mapping = self._m


def _allocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise  # ENOSPC, EFBIG...: no room; a filesystem that cannot reserve keeps the old way


def _reserve(filename: str, size: int) -> None:
    """Create ``filename`` at its full size in one step: a scrape never sees it empty.

    The blocks are reserved on a temporary name and the file renamed into place; on a
    filesystem that cannot reserve, the temporary is extended (sparse) instead.
    """
    if os.path.exists(filename):
        return  # this process's own file, opened before
    with created_in_place(filename, VALUE_TMP_PREFIX) as fd:
        _allocate(fd, size)
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
