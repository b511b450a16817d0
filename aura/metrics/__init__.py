"""Prometheus multiprocess metrics for Gunicorn: exact across workers, bounded as workers recycle.

A self-contained core (it imports nothing else of Aura; Aura's own metrics are in
``aura.instrumentation``), shaped like prometheus_client:

- ``fileformat``: names and byte layout of what lies in a metrics directory
- ``values``: how a value is stored (``AuraValue``, ``request_recorder``, worker identity)
- ``locking``: the directory lock scrapes share and merges take alone
- ``archive``: dead workers folded into one file (``merge_dead_worker``, ``merge_all_dead``)
- ``collector``: the scrape (``AuraMultiProcessCollector``)
- ``directory``: one directory per live instance (``claim_directory``, ``prepare_directory``)
- ``labels``: client-chosen label values bounded per instance (``SharedLabelValues``)
- ``gunicorn``: the hooks (``GunicornMetrics``)
- ``exposition``: a scrape's body and headers (``render``)
- ``_compat``: every use of prometheus_client's internals, and the version check

The design is in docs/metrics.md ("The multiprocess core").
"""

from __future__ import annotations

from typing import Any

from prometheus_client.multiprocess import MultiProcessCollector

from . import _compat
from .archive import MergeStats, mark_worker_dead, merge_all_dead, merge_dead_worker
from .collector import AuraMultiProcessCollector
from .directory import Claim, claim_directory, prepare_directory
from .exposition import render
from .fileformat import DamagedFileError, worker_identifier
from .gunicorn import GunicornMetrics
from .labels import SharedLabelValues
from .locking import MetricsDirectoryError, MetricsLockTimeout
from .values import AuraValue, install_value_class, request_recorder, use_worker_identifier

__all__ = [
    "AuraMultiProcessCollector",
    "AuraValue",
    "Claim",
    "DamagedFileError",
    "GunicornMetrics",
    "MergeStats",
    "MetricsDirectoryError",
    "MetricsLockTimeout",
    "SharedLabelValues",
    "claim_directory",
    "install_value_class",
    "mark_worker_dead",
    "merge_all_dead",
    "merge_dead_worker",
    "prepare_directory",
    "register_collector",
    "render",
    "request_recorder",
    "use_worker_identifier",
    "worker_identifier",
]


def register_collector(registry: Any, directory: str) -> None:
    """Register the collector for ``directory``: Aura's, or the stock one when internals are untested."""
    if _compat.problem():
        MultiProcessCollector(registry, directory)
    else:
        AuraMultiProcessCollector(registry, directory)
