"""Aura's processes for tests and benchmarks: Gunicorn, a private redis-server and the pod's nginx
sidecar on free loopback ports, stopped by pid; the environment and migration they start from.

Not imported by the service (see ``aura.testing``): the one launcher ``tests/`` and ``bench/`` share.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]  # (host, port) for AF_INET; typeshed: Any
        return port


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, name: str, timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not become ready: " + log_path.read_text(errors="replace")[-3000:])


class _SourceAddressAdapter(HTTPAdapter):
    """Connect from a given local address (the server sees it as the client address)."""

    def __init__(self, address: str):
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    """An HTTP session that connects from a loopback `address` (127.x.y.z stand in for distinct
    clients), one connection per request, so any request may land on any worker."""
    session = requests.Session()
    session.mount("http://", _SourceAddressAdapter(address))
    session.headers["Connection"] = "close"
    return session


def app_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for an Aura process under test (real Redis, test logical databases)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AURA_", "GUNICORN_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        AURA_ENV="testing",
        AURA_INSTANCE_PATH=str(tmp_path / "instance"),
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        REDIS_AUTH_DB="12",
        REDIS_RATE_LIMIT_DB="13",
        JWT_SECRET_KEY="gunicorn-test-secret-key-0123456789abcdef",
        PASSWORD_HASH_TIME_COST="1",
        PASSWORD_HASH_MEMORY_COST="8",
        # Concurrent test clients may hash at once; the tests of the budget set their own.
        PASSWORD_HASH_MAX_CONCURRENT="64",
        RATE_LIMIT_ENABLED="false",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    """Bring the database to the current schema, as a deployment would."""
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


class Gunicorn:
    """One Gunicorn master with its workers, configured by gunicorn.conf.py and env vars."""

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, str],
        workers: int = 4,
        cli: bool = False,
        app: str = "wsgi:app",
        **settings: str,
    ):
        """``cli``: start as people type it (``gunicorn -w N -b ADDR wsgi:app``, the configuration
        file found by Gunicorn itself), with no GUNICORN_* variables; else ``-c gunicorn.conf.py``."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"gunicorn-{self.port}.log"
        self.env = dict(env)
        self.app = app
        if cli:
            self.argv = ["-w", str(workers), "-b", f"127.0.0.1:{self.port}"]
        else:
            self.argv = ["-c", "gunicorn.conf.py"]
            self.env.update(
                GUNICORN_BIND=f"127.0.0.1:{self.port}",
                WEB_CONCURRENCY=str(workers),
                GUNICORN_CONTROL_SOCKET=str(tmp_path / f"gunicorn-{self.port}.ctl"),
            )
        self.env.update(GUNICORN_ACCESS_LOG="")
        self.env.update(settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60, ready_path: str = "/healthz", ready_url: str | None = None) -> Gunicorn:
        """Start and wait until ``ready_path`` answers 200 (or ``ready_url``, e.g. for a unix bind)."""
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [str(BIN / "gunicorn"), *self.argv, self.app],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log()}")
            try:
                if requests.get(ready_url or f"{self.url}{ready_path}", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer in {timeout}s: {self.log()}")

    def worker_pids(self) -> list[int]:
        """Pids of the master's current workers."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def wait_for_workers(self, count: int, timeout: float = 30) -> list[int]:
        """Wait until the master has `count` workers again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) == count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"expected {count} workers, have {self.worker_pids()}")

    def log(self) -> str:
        """What the server printed so far (tail)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        """Graceful stop by pid; SIGKILL the whole group if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A private redis-server on a free port, for outage tests; stopped by pid. `args` are more
    redis-server options (persistence, replicaof, ...); `password`: its requirepass and masterauth."""

    def __init__(self, *args: str, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}"
        self.args = list(args) + (["--requirepass", password, "--masterauth", password] if password else [])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> RedisServer:
        """Start (or restart on the same port) and wait until it answers PING."""
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
            + self.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """Stop it abruptly, as an outage would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


NGINX_CONFIG = ROOT / "k8s" / "nginx" / "nginx.conf"
_NOBODY = 65534  # nobody/nogroup: nginx runs unprivileged, as in the pod


def nginx_binary() -> str:
    """Debian's nginx (nginx-light), which scripts/ensure-services.sh installs."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        raise RuntimeError("nginx is missing: apt-get install -y nginx-light (scripts/ensure-services.sh does this)")
    return found


class Nginx:
    """The shipped sidecar configuration (k8s/nginx/nginx.conf) on a free loopback port in front of
    ``upstream``, with only its listen port, upstream and /tmp paths rewritten; a non-root process
    with its own prefix directory, stopped by pid."""

    def __init__(self, upstream: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Its own prefix under the system's temp directory, which an unprivileged user can reach
        # (pytest's tmp_path is root's alone); removed by stop().
        self.dir = Path(tempfile.mkdtemp(prefix=f"aura-nginx-{self.port}-"))
        text = NGINX_CONFIG.read_text()
        for fixed in ("listen 8080;", "server 127.0.0.1:8000;", "/tmp/nginx/"):
            if fixed not in text:
                raise RuntimeError(f"{NGINX_CONFIG} no longer has {fixed!r}: update aura.testing.servers.Nginx")
        text = (
            text.replace("listen 8080;", f"listen 127.0.0.1:{self.port};")
            .replace("server 127.0.0.1:8000;", f"server {upstream};")
            .replace("/tmp/nginx/", f"{self.dir}/")
        )
        self.config = self.dir / "nginx.conf"
        self.config.write_text(text)
        self.log_path = self.dir / "nginx.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # As root (CI), run as nobody, like the pod's non-root nginx.
        self.user = _NOBODY if os.getuid() == 0 else None
        if self.user is not None:
            os.chown(self.dir, self.user, self.user)
            self.dir.chmod(0o755)

    def argv(self, *extra: str) -> list[str]:
        return [nginx_binary(), "-e", "stderr", "-p", str(self.dir), "-c", str(self.config), *extra]

    def start(self, timeout: float = 20) -> Nginx:
        """Check the configuration (nginx -t), start, and wait until /healthz answers through it."""
        check = subprocess.run(self.argv("-t"), capture_output=True, text=True, timeout=30, user=self.user)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr}")
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.argv("-g", "daemon off;"), stdout=log, stderr=subprocess.STDOUT, user=self.user
            )
        wait_ready(self.proc, self.url + "/healthz", self.log_path, "nginx", timeout)
        return self

    def log(self) -> str:
        """What nginx printed so far (tail)."""
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Fast shutdown of the master and its workers, by pid; then remove its prefix."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
