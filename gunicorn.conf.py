"""Gunicorn settings for Aura. Every setting comes from the environment; each has its reason.

Prometheus multiprocess mode: every worker writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR and /metrics aggregates them. prometheus-client chooses that storage
when it is first imported, so this file settles the variable before anything imports it - the
app is imported only after this file has run (in the workers, or in the master with preload).
"""

import logging
import os
import tempfile

from aura.config import ConfigError, check_environment, exit_on_config_error

# Every setting (the app's and these) is validated before Gunicorn starts anything: a bad value
# stops it with one line naming the variable. (Gunicorn itself reads WEB_CONCURRENCY while it is
# imported, before this file runs: a non-integer there fails inside Gunicorn - see README.)
try:
    _settings, _g = check_environment()
except ConfigError as _exc:
    exit_on_config_error(_exc)


# Each Gunicorn instance gets its own metrics directory: two instances must never share one,
# or each would count the other's workers. The default is per instance (keyed by the bind), on
# tmpfs where there is one: every metric write touches an mmap page, which on a disk-backed
# file the kernel also writes back to disk, for nothing.
_bind = _g.bind
_tmp_base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(_tmp_base, f"aura-metrics-{_bind.replace(':', '-').replace('/', '-')}"),
)
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

# Metric files are named by a per-worker-lifetime id, not the bare pid, so a recycled pid can
# never reopen (or be merged into) a dead worker's files. Installed here, before the app can be
# imported, so that metric objects created in the master (GUNICORN_PRELOAD) follow it too.
from aura.metrics.multiproc import install_value_class  # noqa: E402

install_value_class()
# With preload the app (and prometheus-client's files) load before on_starting: the directory
# must exist now. on_starting then clears what an earlier run, or the master itself, left.
os.makedirs(_metrics_dir, mode=0o700, exist_ok=True)

# Loopback by default: exposing the service is a deliberate act (k8s sets 0.0.0.0:8000).
bind = _bind
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
if _settings.log_format == "json":
    logger_class = "aura.infra.logs.GunicornLogger"
else:  # Gunicorn's default access line, plus the request id the app put in the response header
    access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
# Keep the control socket out of $HOME (read-only in containers) and per instance.
control_socket = _g.control_socket or os.path.join(_metrics_dir + ".ctl.sock")
# Worker heartbeat files on tmpfs where available: a slow disk must not make workers look dead.
worker_tmp_dir = _g.worker_tmp_dir

_log = logging.getLogger("gunicorn.error")


def on_starting(server):
    """Before any worker forks: create the metrics directory and clear files of an earlier run.

    An unusable directory (read-only, not ours) is logged and the server starts anyway:
    requests matter more than metrics, and the workers degrade on their own (one log line,
    /metrics answers 503) - see docs/security.md.
    """
    from aura.metrics.multiproc import MetricsDirectoryError, prepare_directory

    try:
        prepare_directory(_metrics_dir)
    except MetricsDirectoryError as exc:
        server.log.error("metrics are degraded: %s", exc)
        return
    server.log.info("prometheus multiprocess directory: %s", _metrics_dir)


def post_fork(server, worker):
    """In the new worker: name its metric files by an id unique to this worker's lifetime."""
    from aura.metrics.multiproc import use_worker_identifier, worker_identifier

    use_worker_identifier(worker_identifier(worker.pid, worker.age))
    if server.cfg.preload_app:
        # Metric values made in the master live in its (deleted) files; re-create this
        # worker's zero series in its own files so dashboards show 0, not "no data".
        from aura.metrics import initialize_known_series

        initialize_known_series()


def child_exit(server, worker):
    """In the master, after a worker died: fold every dead worker's metric files into the archive.

    All dead ones, not just this one: Gunicorn reaps some workers without calling child_exit,
    and a merge that timed out on the lock leaves files for the next one to pick up.
    """
    from aura.metrics.multiproc import merge_all_dead, worker_identifier

    live = [worker_identifier(pid, w.age) for pid, w in list(server.WORKERS.items())]
    try:
        stats = merge_all_dead(_metrics_dir, live)
        server.log.debug("metrics merge after worker %s: %s", worker.pid, stats)
    except Exception:  # the master must survive any metrics failure
        server.log.exception("could not merge metrics of worker %s", worker.pid)
