"""Gunicorn settings for Aura. Every setting comes from the environment; each has its reason.

Prometheus multiprocess mode: every worker writes its metrics to files in the instance's
directory and /metrics aggregates them; the hooks below are aura.metrics.GunicornMetrics'.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from typing import TYPE_CHECKING, cast

from aura.config import ConfigError, check_environment, environment_warnings, exit_on_config_error, redact_url
from aura.infra import worker_signals
from aura.workflows import warm_up

if TYPE_CHECKING:
    from flask import Flask
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

# Every setting (the app's and these) is validated before Gunicorn starts anything: a bad value
# stops it with one line naming the variable. (Gunicorn itself reads WEB_CONCURRENCY while it is
# imported, before this file runs: a non-integer there fails inside Gunicorn - see README.)
try:
    _settings, _g = check_environment()
except ConfigError as _exc:
    exit_on_config_error(_exc)


# Each Gunicorn instance gets a metrics directory of its own: PROMETHEUS_MULTIPROC_DIR if set and
# no live instance holds it, else a sub-directory for this master (aura/metrics/directory.py).
# The default is on tmpfs where there is one: every metric write touches an mmap page, which on
# a disk-backed file the kernel also writes back to disk, for nothing. Settled here, before the
# app (and with it anything that records) is imported - in the workers, or here with preload.
_tmp_base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
try:
    from aura.metrics import GunicornMetrics
except ModuleNotFoundError as _exc:  # prometheus-client is not installed: serve without metrics
    if not (_exc.name or "").startswith("prometheus_client"):
        raise
    _metrics = None
else:
    # METRICS_PORT: a listener in the master serving /metrics (and /healthz) while every worker is
    # busy; 0 turns it off. It binds METRICS_HOST (default: the bind's host; 127.0.0.1 for unix:).
    _metrics = GunicornMetrics.start(
        default_root=os.path.join(_tmp_base, f"aura-metrics-{os.getuid()}"),
        metrics_port=_g.metrics_port,
        auth_token=_settings.metrics_auth_token,
        metrics_host=_g.metrics_host,
        requested_root=_settings.prometheus_multiproc_dir,
    )

# Loopback by default: exposing the service is a deliberate act (k8s sets 0.0.0.0:8000).
bind = _g.bind
# Two workers per core is Gunicorn's rule of thumb for I/O-bound Flask apps.
workers = _g.workers
# Threads per worker; 1 keeps each request on its own process, which Argon2 hashing prefers.
threads = _g.threads
# A request stuck longer than this is killed and its worker replaced.
timeout = _g.timeout
# Time for in-flight requests to finish on shutdown; k8s terminationGracePeriodSeconds exceeds it.
graceful_timeout = _g.graceful_timeout
# Recycle workers to bound memory growth; the jitter keeps them from restarting all at once.
max_requests = _g.max_requests
max_requests_jitter = _g.max_requests_jitter
# Import the app once in the master: a new worker (recycled or crashed) serves at once instead
# of spending seconds importing LangGraph and friends. The start-up Redis ping happens in the
# master, but redis-py's pools notice the fork and open fresh connections in each worker, and
# SQLAlchemy connects lazily, so no connection is shared across processes.
preload_app = _g.preload
# "-" logs each request to stdout, where container platforms collect logs.
accesslog = _g.access_log
# LOG_FORMAT=json: Gunicorn's error and access lines as JSON objects too, with request id and route.
# Either way the access line names the path without its query string, which may carry secrets.
if _settings.log_format == "json":
    logger_class = "aura.infra.logs.GunicornLogger"
else:  # Gunicorn's default access line, plus the request id the app put in the response header
    logger_class = "aura.infra.logs.TextAccessLogger"
    access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
# Keep the control socket out of $HOME (read-only in containers) and per instance (master pid).
control_socket = _g.control_socket or (
    _metrics.claim.control_socket if _metrics else os.path.join(_tmp_base, f"aura-ctl-{os.getpid()}.sock")
)
# Worker heartbeat files on tmpfs where available: a slow disk must not make workers look dead.
worker_tmp_dir = _g.worker_tmp_dir


def on_starting(server: Arbiter) -> None:
    """Before any worker forks: variables that do nothing (typos), where metrics go, or that they
    are off or degraded."""
    for warning in environment_warnings():
        server.log.warning("%s", warning)  # type: ignore[union-attr]  # set by Arbiter.__init__ (the stub: Optional)
    if _metrics is None:
        server.log.warning(  # type: ignore[union-attr]  # likewise
            "metrics are off: prometheus-client is not installed; /metrics answers 404"
        )
    else:
        _metrics.on_starting(server)


def when_ready(server: Arbiter) -> None:
    """The master's sockets are bound: start the metrics listener (METRICS_PORT) with its /readyz,
    and compose the ready line the last of the first workers prints once it has loaded the app."""
    global _ready_line
    if server.cfg.preload_app:  # the app is loaded here: compile the workflows once, for every worker
        warm_up()
    if _metrics is not None:
        _metrics.when_ready(server)
        if _metrics.listener is not None:
            _metrics.listener.readiness = lambda: _readiness(server)
    _ready_line = _compose_ready_line(server)
    if server.cfg.preload_app:
        # The preloaded app's objects live as long as the process: move them out of the garbage
        # collector's reach before the workers fork (Python's gc.freeze recipe for pre-fork servers).
        # A worker's collections - and its interpreter's final one at exit - then no longer walk,
        # and so copy, every inherited page: stopping 4 workers took ~3 s of CPU, now ~0.5 s.
        gc.freeze()


_ready_line = ""  # composed in the master (when_ready), printed by a worker (post_worker_init)


def _readiness(server: Arbiter) -> tuple[bool, dict[str, object]]:
    """The listener's /readyz (the Kubernetes readiness probe): can this instance serve? Yes while
    one worker is alive, has loaded the app and keeps its heartbeat, as Gunicorn judges workers
    (the heartbeat file holds a monotonic time once the worker runs; a wall-clock time - far ahead
    of it - while it is still loading). Busy workers count: a busy pod still serves. No
    dependency is asked: every pod shares them (docs/deployment.md, "Readiness and liveness")."""
    workers = list(server.WORKERS.values())
    serving = 0
    for worker in workers:
        try:
            beat = worker.tmp.last_update()
        except (OSError, ValueError):  # reaped while we looked: its heartbeat file is closed
            continue
        age = time.monotonic() - beat  # read after the beat: a worker beats between requests
        if not worker.aborted and -1.0 <= age <= server.timeout:
            serving += 1
    return serving > 0, {"workers": len(workers), "serving": serving}


def _compose_ready_line(server: Arbiter) -> str:
    """URL, workers, database, {redis} (Redis or standalone: known once a worker has the app),
    metrics directory, listener URL, docs URL."""
    url = str(server.LISTENERS[0]).replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]")
    if _metrics is None:
        metrics = "metrics off (prometheus-client is not installed)"
    else:
        metrics = f"metrics in {_metrics.claim.path}" + (" (DEGRADED: see above)" if _metrics.claim.error else "")
    listener = _metrics.listener if _metrics is not None else None
    if listener is not None:
        host, port = listener.address
        listener_part = f"listener http://{f'[{host}]' if ':' in host else host}:{port}/metrics".replace(
            "0.0.0.0", "127.0.0.1"
        )
    else:
        listener_part = "listener not started (see above)" if _g.metrics_port else "no listener (METRICS_PORT=0)"
    if not _settings.api_docs_enabled:
        docs = "no docs page (API_DOCS_ENABLED=false)"
    else:
        docs = f"docs {url}/api/v1/docs" if url.startswith("http") else f"docs at /api/v1/docs on {url}"
    database = _settings.database_url.split(":", 1)[0].split("+", 1)[0]
    parts = [
        f"{server.cfg.workers} workers",
        f"database {database} ({redact_url(_settings.database_url)})",
        "{redis}",
        metrics,
        listener_part,
        docs,
    ]
    return f"Aura ready at {url}: " + ", ".join(parts)


def pre_fork(server: Arbiter, worker: Worker) -> None:
    """In the master, about to fork a worker: hold the stop signals until the worker can handle
    them, so that a SIGTERM sent while it boots is not lost (aura/infra/worker_signals.py)."""
    worker_signals.hold_before_fork()


def post_fork(server: Arbiter, worker: Worker) -> None:
    """In the new worker: name its metric files by an id unique to this worker's lifetime."""
    if _metrics is not None:
        _metrics.post_fork(server, worker)


def post_worker_init(worker: Worker) -> None:
    """In the worker, with the app loaded: warm the workflows (without preload), run what the app
    asked to run in each worker as it starts (its zero series, the pool-gauge thread); the last of
    the first workers prints the ready line, after Gunicorn's own start-up lines."""
    worker_signals.release()  # Gunicorn's handlers are in place: a stop signal sent meanwhile acts now
    if not worker.cfg.preload_app:
        warm_up()  # LangGraph and the compiled graphs, before this worker takes a request
    if _metrics is not None:
        _metrics.post_worker_init(worker)
    if _ready_line and worker.age == worker.cfg.workers:  # ages count spawns: 1..N at start
        from aura.app import uses_redis  # loaded with the app by now; not before the metrics are set up

        redis = redact_url(_settings.redis_url)
        # worker.wsgi is wsgi:app, the Flask app (the gunicorn stubs type it as any WSGI callable)
        mode = f"Redis {redis}" if uses_redis(cast("Flask", worker.wsgi)) else f"STANDALONE (no Redis at {redis})"
        worker.log.info("%s", _ready_line.replace("{redis}", mode))


def worker_abort(worker: Worker) -> None:
    """In a worker the master aborts for a timeout: its exit counts as `timeout`."""
    if _metrics is not None:
        _metrics.worker_abort(worker)


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """In the exiting worker: count why it ends."""
    if _metrics is not None:
        _metrics.worker_exit(server, worker)


def child_exit(server: Arbiter, worker: Worker) -> None:
    """In the master, after a worker died: fold dead workers' metric files into the archive, with
    the requests they died in (recorded as the app records requests)."""
    if _metrics is not None:
        from aura.instrumentation import recorder  # here: workers already forked import it anyway

        _metrics.child_exit(server, worker, recorder.lost_request_rows)
