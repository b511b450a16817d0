"""Every use of prometheus_client's private internals, and the check that they are the tested ones.

The value class writes into ``MmapedDict``'s mapping at the position it keeps for a key
(``_m``, ``_positions``), and reserves file space before the mapping grows (``_used``,
``_capacity``, ``_f``, ``_init_value``, the module's ``_INITIAL_MMAP_SIZE``). The collector
reuses ``MultiProcessCollector._accumulate_metrics`` and sets ``Metric._multiprocess_mode``,
so its output is the stock collector's by construction. The request recorder reads a counter's
``_value`` and a histogram's ``_sum``, ``_buckets`` and ``_upper_bounds``; the master's rows
for a dead worker's requests read a metric's ``_name``, ``_labelnames``, ``_documentation``
and ``_type``.

``problem()`` says why the installed prometheus_client cannot be trusted with these (a version
outside the supported range, or a private name missing); callers then use the stock value
class and collector (``install_value_class`` and ``register_collector`` do). ``AuraValue`` and
``AuraMultiProcessCollector``, the only users of ``ReservingMmapedDict``, ``slot``,
``accumulate`` and ``new_metric``, exist only then; the functions reached without that choice
(``stored_values``, ``upper_bounds``, ``sample_rows``) check ``problem()`` themselves and touch
nothing private when it says no.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_left
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from types import CodeType
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, mmap_dict
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from .fileformat import HEADER_SIZE, VALUE_TMP_PREFIX, allocate, created_in_place, entry_size, extend

# The releases whose internals this module uses as they are, oldest and newest: both are tested
# (tests/metrics/test_compat_versions.py, a scratch venv each); the ones between have the same names.
SUPPORTED_VERSIONS = ("0.18.0", "0.26.0")

# Where each private name is: (owner, label, names the owner has), and (owner, method, label,
# names the method's code reads or sets - attributes of instances, which a class does not have).
_ATTRIBUTES: tuple[tuple[object, str, tuple[str, ...]], ...] = (
    (mmap_dict, "mmap_dict", ("_INITIAL_MMAP_SIZE",)),
    (mmap_dict.MmapedDict, "MmapedDict", ("_init_value", "read_value")),
    (MultiProcessCollector, "MultiProcessCollector", ("_accumulate_metrics",)),
    (Counter, "Counter", ("_type",)),
    (Histogram, "Histogram", ("_type",)),
)
_CODE_NAMES: tuple[tuple[object, str, str, tuple[str, ...]], ...] = (
    (mmap_dict.MmapedDict, "__init__", "MmapedDict()", ("_m", "_positions", "_used", "_capacity", "_f")),
    (MultiProcessCollector, "_accumulate_metrics", "MultiProcessCollector", ("_multiprocess_mode",)),
    (Counter, "_metric_init", "Counter", ("_value",)),
    (Gauge, "_metric_init", "Gauge", ("_value",)),
    (Histogram, "_metric_init", "Histogram", ("_sum", "_buckets")),
    (Histogram, "_prepare_buckets", "Histogram", ("_upper_bounds",)),
    (MetricWrapperBase, "__init__", "metrics", ("_name", "_labelnames", "_documentation")),
)
# Every private name of prometheus_client this module uses (no other module may: a test checks).
PRIVATE_NAMES = frozenset(
    {name for _, _, names in _ATTRIBUTES for name in names if name.startswith("_")}
    | {name for *_, names in _CODE_NAMES for name in names}
)


def installed_version() -> str:
    """The installed prometheus-client's version."""
    return metadata.version("prometheus-client")


def _release(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a final release; None for anything else (rc, dev, local)."""
    return tuple(int(part) for part in version.split(".")) if re.fullmatch(r"\d+\.\d+\.\d+", version) else None


def _code_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)  # comprehensions and nested functions
    return names


def missing_names() -> list[str]:
    """The private names this module uses that the installed prometheus_client does not have."""
    missing = [f"{label}.{name}" for owner, label, names in _ATTRIBUTES for name in names if not hasattr(owner, name)]
    for owner, method, label, names in _CODE_NAMES:
        code = getattr(getattr(owner, method, None), "__code__", None)
        found = _code_names(code) if code is not None else set()
        missing += [f"{label}.{name}" for name in names if name not in found]
    return missing


@cache
def problem(version: str | None = None) -> str | None:
    """Why the private internals cannot be used, or None when they can (the installed version by default)."""
    version = version or installed_version()
    release = _release(version)
    oldest, newest = (_release(v) for v in SUPPORTED_VERSIONS)
    if release is None or oldest is None or newest is None or not oldest <= release <= newest:
        return (
            f"prometheus-client {version} is not a version Aura's metrics core supports "
            f"({' to '.join(SUPPORTED_VERSIONS)}, tested at both ends)"
        )
    missing = missing_names()
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


def stored_values(child: Any) -> tuple[Any, ...]:
    """A counter or gauge child's value object, or a histogram child's sum and buckets (all it stores).

    Empty when the internals are not used (``problem()``).
    """
    if problem():
        return ()
    if hasattr(child, "_buckets"):
        return (child._sum, *child._buckets)
    return (child._value,)


def upper_bounds(histogram: Any) -> tuple[float, ...]:
    """A histogram's bucket bounds (ending with +Inf); empty when the internals are not used."""
    return () if problem() else tuple(histogram._upper_bounds)


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
            allocate(self._f.fileno(), capacity)
        super()._init_value(key)  # type: ignore[no-untyped-call]  # MmapedDict is unannotated
        self.mapping = self._m


def _reserve(filename: str, size: int) -> None:
    """Create ``filename`` at its full size in one step: a scrape never sees it empty.

    The blocks are reserved on a temporary name and the file renamed into place; on a
    filesystem that cannot reserve, the temporary is extended (sparse) instead.
    """
    if os.path.exists(filename):
        return  # this process's own file, opened before
    with created_in_place(filename, VALUE_TMP_PREFIX) as fd:
        extend(fd, size)


def sample_rows(metric: Any, labelvalues: tuple[str, ...], value: float) -> list[tuple[str, tuple[str, float, float]]]:
    """``(type, (key, amount, 0))`` rows adding one event to a labelled counter or histogram's files.

    What ``metric.labels(*labelvalues).inc()`` or ``.observe(value)`` would add, for a process
    that no longer exists to do it (the master records the requests a dead worker took with it).
    Empty when the internals are not used (``problem()``: the stock classes merge nothing).
    """
    if problem():
        return []
    name, names, doc = metric._name, list(metric._labelnames), metric._documentation
    values = list(labelvalues)
    if metric._type == "counter":
        return [("counter", (mmap_key(name, name + "_total", names, values, doc), 1.0, 0.0))]
    bounds = metric._upper_bounds  # ends with +Inf
    bound = floatToGoString(bounds[bisect_left(bounds, value)])
    return [
        ("histogram", (mmap_key(name, name + "_sum", names, values, doc), value, 0.0)),
        ("histogram", (mmap_key(name, name + "_bucket", [*names, "le"], [*values, bound], doc), 1.0, 0.0)),
    ]
