"""Highly available datastores and several instances, for the HA tests and the soak benchmark:
a Redis primary with a replica watched by three Sentinels, and haproxy in front of several
Gunicorn instances - real processes on free loopback ports under a temp dir, stopped by pid.
(A PostgreSQL primary with a standby: aura.testing.postgres.PostgresPair.)
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis

from aura.testing.servers import Gunicorn, RedisServer, app_env, free_port

if TYPE_CHECKING:
    import requests

    # One client request: step(session, thread, n) sends it and returns (its name, the response).
    Step = Callable[[requests.Session, int, int], tuple[str, requests.Response]]

SERVICE = "aura"  # the Sentinel service name the tests use
DOWN_AFTER_MS = 1000  # Sentinel: a primary silent this long is down (the tests' failover speed)
BREAKER_SECONDS = 2.0  # REDIS_CIRCUIT_OPEN_SECONDS of the HA tests and the soak


def production_env(tmp_path: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """An instance's environment: production (fails closed on Redis), cheap hashing, rate limits
    on but generous (the tests that measure one set it lower)."""
    env = app_env(
        tmp_path,
        database_url,
        AURA_ENV="production",
        REDIS_URL=redis_url,
        REDIS_AUTH_DB="0",
        REDIS_RATE_LIMIT_DB="1",
        REDIS_CIRCUIT_OPEN_SECONDS=str(BREAKER_SECONDS),
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_DEFAULT="100000 per minute",
        RATE_LIMIT_LOGIN="100000 per minute",
        RATE_LIMIT_LOGIN_ACCOUNT="100000 per hour",
        RATE_LIMIT_REGISTER="100000 per minute",
        RATE_LIMIT_WORKFLOWS="100000 per minute",
        RATE_LIMIT_REGISTER_ALL="100000 per minute",
        RATE_LIMIT_LOGIN_DEVICE="100000 per hour",
        PASSWORD_HASH_MAX_CONCURRENT="16",  # more than the workers: never refused for hashing
        WORKFLOW_MAX_CONCURRENT_PER_USER="8",
    )
    env.update(extra)
    return env


class SentinelCluster:
    """A Redis primary, one replica and three Sentinels (quorum 2), all with one password."""

    def __init__(self, root: Path, password: str = "ha-test-password", replica_args: tuple[str, ...] = ()):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.password = password
        for name in ("primary", "replica"):  # a full sync writes an RDB file there
            (root / name).mkdir(exist_ok=True)
        self.primary = RedisServer("--dir", str(root / "primary"), password=password)
        self.replica = RedisServer(
            "--dir",
            str(root / "replica"),
            "--replicaof",
            "127.0.0.1",
            str(self.primary.port),
            *replica_args,
            password=password,
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """REDIS_URL for Aura: the Sentinel form."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://:{self.password}@{hosts}/{SERVICE}"

    def start(self, timeout: float = 30) -> SentinelCluster:
        self.primary.start()
        self.replica.start()
        binary = shutil.which("redis-sentinel")
        assert binary, "redis-sentinel is missing: scripts/ensure-services.sh --ha installs it"
        for port in self.sentinel_ports:
            config = self.root / f"sentinel-{port}.conf"  # Sentinel rewrites its own file
            config.write_text(
                "\n".join(
                    [
                        "bind 127.0.0.1",
                        f"port {port}",
                        f"dir {self.root}",
                        f"logfile {self.root / f'sentinel-{port}.log'}",
                        f"requirepass {self.password}",
                        f"sentinel sentinel-pass {self.password}",
                        f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
                        f"sentinel auth-pass {SERVICE} {self.password}",
                        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                        f"sentinel failover-timeout {SERVICE} 10000",
                        f"sentinel parallel-syncs {SERVICE} 1",
                        "",
                    ]
                )
            )
            self.sentinels.append(
                subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        deadline = time.monotonic() + timeout
        while not self._settled():  # every Sentinel knows the replica and the other two
            assert time.monotonic() < deadline, "the Sentinels never saw each other and the replica"
            time.sleep(0.2)
        return self

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(
            port=self.sentinel_ports[index], password=self.password, socket_timeout=1, decode_responses=True
        )

    def _settled(self) -> bool:
        for index in range(3):
            try:
                state = cast(dict[str, Any], self.sentinel(index).sentinel_master(SERVICE))
            except redis.RedisError:
                return False
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def wait_for_failover(self, old_port: int, timeout: float = 60) -> float:
        """Wait until every Sentinel names a primary other than `old_port` that answers as a
        primary; the monotonic time it was first seen so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = set()
            for index in range(3):
                try:
                    address = cast(tuple[str, int], self.sentinel(index).sentinel_get_master_addr_by_name(SERVICE))
                    ports.add(int(address[1]))
                except (redis.RedisError, TypeError):
                    ports.add(-1)
            if len(ports) == 1 and (port := ports.pop()) not in (old_port, -1):
                try:
                    role = redis.Redis(port=port, password=self.password, socket_timeout=1).role()[0]
                except redis.RedisError:
                    role = b""
                if role == b"master":
                    return time.monotonic()
            time.sleep(0.05)
        raise AssertionError("no failover: " + self.sentinel_log()[-2000:])

    def server_on(self, port: int) -> RedisServer:
        return self.primary if self.primary.port == port else self.replica

    def sentinel_log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("sentinel-*.log")))

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        for server in (self.replica, self.primary):
            if server.proc and server.proc.poll() is None:
                server.proc.send_signal(signal.SIGCONT)  # a test may have paused it
            server.kill()


class HAProxy:
    """haproxy in front of several Aura instances: round robin, health checks on /healthz, each
    answer names the instance (X-Aura-Instance); a connection refused or an empty answer from a
    dead instance is retried on another one for GET requests (never a POST twice)."""

    def __init__(self, root: Path, backends: dict[str, int]):
        binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
        assert binary, "haproxy is missing: scripts/ensure-services.sh --ha installs it"
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "\n".join(
            f"  server {name} 127.0.0.1:{port} check inter 500 fall 2 rise 2" for name, port in backends.items()
        )
        self.config = root / f"haproxy-{self.port}.cfg"
        self.config.write_text(
            f"""global
  maxconn 2000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout check 2s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend aura
  bind 127.0.0.1:{self.port}
  default_backend instances
backend instances
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  http-request disable-l7-retry unless METH_GET
  http-response set-header X-Aura-Instance %s
{servers}
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> HAProxy:
        check = subprocess.run([self.binary, "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(self.root / f"haproxy-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], stdout=self.log, stderr=self.log)
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / f"haproxy-{self.port}.log").read_text()
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("haproxy did not answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.log.close()


def instance(tmp_path: Path, env: dict[str, str], name: str, workers: int = 2, **settings: str) -> Gunicorn:
    """An Aura instance of its own: Gunicorn, metrics directory and metrics listener (not started)."""
    metrics_dir = tmp_path / f"metrics-{name}"
    metrics_dir.mkdir(exist_ok=True)
    own = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_PORT": str(free_port())}
    server = Gunicorn(tmp_path, {**env, **own, **settings}, workers=workers)
    server.name = name  # type: ignore[attr-defined]
    return server


class Outcome:
    """One request as the client saw it: when it began and ended (monotonic), what it was, its
    status (or the exception's name), the instance that answered, and the error code of a 4xx/5xx."""

    __slots__ = ("started", "ended", "name", "result", "instance", "code")

    def __init__(self, started: float, ended: float, name: str, result: int | str, instance: str, code: str) -> None:
        self.started, self.ended, self.name = started, ended, name
        self.result, self.instance, self.code = result, instance, code

    @property
    def ok(self) -> bool:
        return isinstance(self.result, int) and 200 <= self.result < 300


class Traffic:
    """Client threads, each calling `step(session, thread, n)` (which sends one request and
    returns (name, response)) until stopped, `cap` requests or `seconds` - whichever comes
    first. Every answer is kept as an Outcome."""

    def __init__(self, step: Step, threads: int = 4, cap: int = 100_000, seconds: float = 600, pause: float = 0.0):
        import threading

        self.step, self.cap, self.seconds, self.pause = step, cap, seconds, pause
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> Traffic:
        self.began = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish(self, timeout: float = 120) -> None:
        """Wait for every thread to reach its cap or time limit."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def _run(self, thread: int) -> None:
        import requests

        session = requests.Session()
        deadline = time.monotonic() + self.seconds
        for n in range(self.cap):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            started = time.monotonic()
            instance = code = ""
            result: int | str  # the status, or the exception's name
            try:
                name, response = self.step(session, thread, n)
                result = response.status_code
                instance = response.headers.get("X-Aura-Instance", "")
                if result >= 400:
                    try:
                        code = response.json().get("error", "")
                    except ValueError:
                        code = "not-json"
            except requests.RequestException as exc:
                name, result = getattr(exc, "aura_name", "?"), type(exc).__name__
            with self._lock:
                self.outcomes.append(Outcome(started, time.monotonic(), name, result, instance, code))
            if self.pause:
                time.sleep(self.pause)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def by_result(self) -> dict[int | str, int]:
        counts: dict[int | str, int] = {}
        for outcome in self.snapshot():
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        return counts

    def error_window(self) -> tuple[float, float] | None:
        """(first failed request's start, last failed request's end), None when none failed."""
        failed = [o for o in self.snapshot() if not o.ok]
        if not failed:
            return None
        return min(o.started for o in failed), max(o.ended for o in failed)
