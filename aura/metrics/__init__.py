"""Prometheus multiprocess metrics for Gunicorn: exact across workers, bounded as workers recycle.

A self-contained core (it imports nothing else of Aura; Aura's own metrics are in
``aura.instrumentation``), shaped like prometheus_client:

- ``fileformat``: names and byte layout of what lies in a metrics directory
- ``processes``: worker identities and pid liveness
- ``values``: how a value is stored (``AuraValue``, ``request_recorder``, this process's identity)
- ``inflight``: each worker's requests in flight (busy time while they run, requests dead workers took)
- ``exemplars``: each worker's exemplars (the latest request per bucket), merged newest-first
- ``locking``: the directory lock scrapes share and merges take alone
- ``archive``: dead workers folded into one file (``merge_dead_worker``, ``merge_all_dead``)
- ``collector``: the scrape (``AuraMultiProcessCollector``, ``register_collector``)
- ``directory``: one directory per live instance (``claim_directory``, ``prepare_directory``)
- ``labels``: client-chosen label values bounded per instance (``SharedLabelValues``)
- ``gunicorn``: the hooks (``GunicornMetrics``)
- ``exposition``: a scrape's body and headers (``render``)
- ``_compat``: every use of prometheus_client's internals, and the version check

The design is in docs/metrics.md ("The multiprocess core").
"""

from __future__ import annotations

from ._compat import sample_rows
from .archive import MergeStats, mark_worker_dead, merge_all_dead, merge_dead_worker
from .collector import AuraMultiProcessCollector, register_collector
from .directory import Claim, claim_directory, prepare_directory
from .exposition import render
from .fileformat import DamagedFileError
from .gunicorn import GunicornMetrics
from .labels import SharedLabelValues
from .locking import MetricsDirectoryError, MetricsLockTimeout
from .processes import worker_identifier
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
    "sample_rows",
    "use_worker_identifier",
    "worker_identifier",
]
