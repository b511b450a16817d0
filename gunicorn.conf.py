"""Gunicorn settings for Aura. Every setting comes from the environment; each has its reason.

Prometheus multiprocess mode: every worker writes its metrics to files in the instance's
directory and /metrics aggregates them; the hooks below are aura.metrics.GunicornMetrics'.
"""

import os
import tempfile

_env = os.environ.get


def _int(name, default):
    return int(_env(name, default))


def _bool(name, default):
    return _env(name, default).strip().lower() in ("1", "true", "yes", "on")


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
    _metrics = GunicornMetrics.start(default_root=os.path.join(_tmp_base, f"aura-metrics-{os.getuid()}"),
                                     metrics_port=_int("METRICS_PORT", "0"),
                                     auth_token=_env("METRICS_AUTH_TOKEN", ""))

# Loopback by default: exposing the service is a deliberate act (k8s sets 0.0.0.0:8000).
bind = _env("GUNICORN_BIND", "127.0.0.1:8000")
# Two workers per core is Gunicorn's rule of thumb for I/O-bound Flask apps.
workers = _int("WEB_CONCURRENCY", str(2 * (os.cpu_count() or 1)))
# Threads per worker; 1 keeps each request on its own process, which Argon2 hashing prefers.
threads = _int("GUNICORN_THREADS", "1")
# A request stuck longer than this is killed and its worker replaced.
timeout = _int("GUNICORN_TIMEOUT", "30")
# Time for in-flight requests to finish on shutdown; k8s terminationGracePeriodSeconds exceeds it.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", "30")
# Recycle workers to bound memory growth; the jitter keeps them from restarting all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", "10000")
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", "1000")
# Import the app once in the master: a new worker (recycled or crashed) serves at once instead
# of spending seconds importing LangGraph and friends. The start-up Redis ping happens in the
# master, but redis-py's pools notice the fork and open fresh connections in each worker, and
# SQLAlchemy connects lazily, so no connection is shared across processes.
preload_app = _bool("GUNICORN_PRELOAD", "true")
# "-" logs each request to stdout, where container platforms collect logs.
accesslog = _env("GUNICORN_ACCESS_LOG", "-") or None
# Keep the control socket out of $HOME (read-only in containers) and per instance (master pid).
control_socket = _env("GUNICORN_CONTROL_SOCKET", _metrics.claim.control_socket if _metrics else
                      os.path.join(_tmp_base, f"aura-ctl-{os.getpid()}.sock"))
# Worker heartbeat files on tmpfs where available: a slow disk must not make workers look dead.
worker_tmp_dir = _env("GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.path.isdir("/dev/shm") else None)

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
