"""Gunicorn settings for Aura. Every setting comes from the environment; each has its reason.

Prometheus multiprocess mode: every worker writes its metrics to files in the instance's
directory and /metrics aggregates them; the hooks below are aura.metrics.GunicornMetrics'.
"""

import os
import tempfile

from aura.config import ConfigError, check_environment, environment_warnings, exit_on_config_error, redact_url
from aura.workflows import warm_up

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


def on_starting(server):
    """Before any worker forks: variables that do nothing (typos), where metrics go, or that they
    are off or degraded."""
    for warning in environment_warnings():
        server.log.warning("%s", warning)
    if _metrics is None:
        server.log.warning("metrics are off: prometheus-client is not installed; /metrics answers 404")
    else:
        _metrics.on_starting(server)


def when_ready(server):
    """The master's sockets are bound: start the metrics listener (METRICS_PORT), and compose the
    ready line the last of the first workers prints once it has loaded the app."""
    global _ready_line
    if server.cfg.preload_app:  # the app is loaded here: compile the workflows once, for every worker
        warm_up()
    if _metrics is not None:
        _metrics.when_ready(server)
    _ready_line = _compose_ready_line(server)


_ready_line = ""  # composed in the master (when_ready), printed by a worker (post_worker_init)


def _compose_ready_line(server) -> str:
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
    survive fork, so this is where a worker's thread can start); the last of the first workers
    prints the ready line, after Gunicorn's own start-up lines."""
    if not worker.cfg.preload_app:
        warm_up()  # LangGraph and the compiled graphs, before this worker takes a request
    extensions = getattr(worker.wsgi, "extensions", {})
    sampler = extensions.get("aura.pool_sampler")
    if sampler is not None:
        sampler.start()
    if _ready_line and worker.age == worker.cfg.workers:  # ages count spawns: 1..N at start
        revocation = extensions.get("aura.revocation")
        redis = redact_url(_settings.redis_url)
        mode = f"Redis {redis}" if getattr(revocation, "mode", "") == "redis" else f"STANDALONE (no Redis at {redis})"
        worker.log.info("%s", _ready_line.replace("{redis}", mode))


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
