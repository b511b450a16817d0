"""Gunicorn settings for Aura. Every setting comes from the environment; each has its reason.

Prometheus multiprocess mode: every worker writes its metrics to files in the instance's
directory and /metrics aggregates them; the hooks below are aura.metrics.GunicornMetrics'.
"""

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
    # busy; 0 turns it off. It binds the host of the first bind.
    _metrics = GunicornMetrics.start(
        default_root=os.path.join(_tmp_base, f"aura-metrics-{os.getuid()}"),
        metrics_port=_g.metrics_port,
        auth_token=_settings.metrics_auth_token,
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
if _settings.log_format == "json":
    logger_class = "aura.infra.logs.GunicornLogger"
else:  # Gunicorn's default access line, plus the request id the app put in the response header
    access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
# Keep the control socket out of $HOME (read-only in containers) and per instance (master pid).
control_socket = _g.control_socket or (
    _metrics.claim.control_socket if _metrics else os.path.join(_tmp_base, f"aura-ctl-{os.getpid()}.sock")
)
# Worker heartbeat files on tmpfs where available: a slow disk must not make workers look dead.
worker_tmp_dir = _g.worker_tmp_dir


def on_starting(server):
    """Before any worker forks: say where metrics go, or that they are off or degraded."""
    if _metrics is None:
        server.log.warning("metrics are off: prometheus-client is not installed; /metrics answers 404")
    else:
        _metrics.on_starting(server)


def when_ready(server):
    """The master's sockets are bound: start the metrics listener (METRICS_PORT)."""
    if _metrics is not None:
        _metrics.when_ready(server)


def post_fork(server, worker):
    """In the new worker: name its metric files by an id unique to this worker's lifetime."""
    if _metrics is None:
        return
    _metrics.post_fork(server, worker)
    if server.cfg.preload_app:
        # Metric values made in the master live in its memory; re-create this worker's zero
        # series in its own files so dashboards show 0, not "no data".
        from aura.instrumentation import recorder

        recorder.initialize_known_series()


def post_worker_init(worker):
    """In the worker, with the app loaded: start its pool-gauge sampling thread (threads do not
    survive fork, so this is where a worker's thread can start)."""
    sampler = getattr(worker.wsgi, "extensions", {}).get("aura.pool_sampler")
    if sampler is not None:
        sampler.start()


def worker_abort(worker):
    """In a worker the master aborts for a timeout: its exit counts as `timeout`."""
    if _metrics is not None:
        _metrics.worker_abort(worker)


def worker_exit(server, worker):
    """In the exiting worker: count why it ends."""
    if _metrics is not None:
        _metrics.worker_exit(server, worker)


def child_exit(server, worker):
    """In the master, after a worker died: fold dead workers' metric files into the archive."""
    if _metrics is not None:
        _metrics.child_exit(server, worker)
