"""Private PostgreSQL clusters for tests and benchmarks: one server, or a primary with a streaming
standby that a test can promote - each in a temp dir, owned by the `postgres` user, on a free
loopback port, started and stopped by pid. The machine's shared cluster is never touched.

Missing server binaries or `postgres` user raise unittest.SkipTest (pytest reports a skip); the
HA suite turns that into a failure, since scripts/ensure-services.sh --ha installs both.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aura.testing.servers import free_port

# Replication as the HA tests and docs/deployment.md use it: a commit is acknowledged once the
# standby has it (synchronous_commit=on waits for the standby's flush), so promoting the standby
# loses no acknowledged write.
SYNCHRONOUS = {"synchronous_standby_names": "*", "synchronous_commit": "on"}


def postgres_bin(name: str) -> str:
    """The newest installed PostgreSQL's `name` program."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise unittest.SkipTest(f"PostgreSQL server binaries ({name}) are not installed")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of its own: initdb'd, or (`standby_of`) a streaming standby of another
    made with pg_basebackup. `settings` are extra `-c` parameters."""

    def __init__(
        self, settings: dict[str, str] | None = None, standby_of: PrivatePostgres | None = None, name: str = "aura"
    ):
        try:
            self.user = pwd.getpwnam("postgres")
        except KeyError:
            raise unittest.SkipTest("no `postgres` user to run a private PostgreSQL as (root cannot)") from None
        self.root = Path(tempfile.mkdtemp(prefix="aura-pg-"))  # /tmp: reachable by that user
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        os.chown(self.sockets, self.user.pw_uid, self.user.pw_gid)
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"
        if standby_of is None:
            command = [postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"]
            command += ["--no-sync", "-E", "UTF8"]
        else:  # -R: standby.signal and primary_conninfo; -c fast: an immediate checkpoint
            command = [postgres_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres"]
            command += ["-D", str(self.data), "-R", "-c", "fast", "-X", "stream", "--no-sync"]
        subprocess.run(command, check=True, capture_output=True, timeout=120, **self._as_postgres())

    def _as_postgres(self) -> dict[str, Any]:
        return dict(
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
            cwd=self.root,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )

    def start(self, timeout: float = 60) -> PrivatePostgres:
        """Start (or restart, same port and data) and wait until it accepts connections."""
        settings = {"listen_addresses": "127.0.0.1", "fsync": "off", "max_connections": "40", **self.settings}
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets)]
                + options,
                stdout=log,
                stderr=subprocess.STDOUT,
                **self._as_postgres(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            ready = subprocess.run(
                [postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, timeout=10
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("private postgres did not start: " + self.log.read_text()[-2000:])

    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement (autocommit) and return its rows."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True, connect_timeout=5
        ) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str = "aura") -> None:
        self.execute(f'CREATE DATABASE "{name}"')

    def promote(self) -> None:
        """Make this standby the primary (pg_promote waits until it is)."""
        assert self.execute("SELECT pg_promote(true, 60)") == [(True,)]

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster): sessions are cut, as in an outage."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running(server: PrivatePostgres, database: str = "aura") -> Iterator[PrivatePostgres]:
    """Start `server` with an empty `database`; remove it (data and all) afterwards."""
    try:
        server.start()
        server.create_database(database)
        yield server
    finally:
        server.remove()


class PostgresPair:
    """A primary and a synchronous streaming standby; DATABASE_URL names both (libpq multi-host,
    target_session_attrs=read-write), so clients follow whichever one is the primary."""

    def __init__(self, synchronous: bool = True, name: str = "aura"):
        self.primary = PrivatePostgres(name=name)
        self.standby: PrivatePostgres | None = None
        self.synchronous, self.name = synchronous, name

    def start(self) -> PostgresPair:
        self.primary.start()
        self.primary.create_database(self.name)
        # The standby's application_name is its cluster_name. It is copied before the primary
        # turns synchronous (ALTER SYSTEM, in postgresql.auto.conf), so that once promoted, alone,
        # it still commits (with no standby to wait for, a synchronous primary would hang).
        self.standby = PrivatePostgres({"cluster_name": "standby", "hot_standby": "on"}, standby_of=self.primary)
        self.standby.start()
        deadline = time.monotonic() + 30
        while not self.primary.execute("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"):
            assert time.monotonic() < deadline, "the standby never streamed"
            time.sleep(0.1)
        if self.synchronous:
            for setting, value in SYNCHRONOUS.items():
                self.primary.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
            self.primary.execute("SELECT pg_reload_conf()")
            while self.primary.execute("SELECT sync_state FROM pg_stat_replication") != [("sync",)]:
                assert time.monotonic() < deadline, "the standby never became synchronous"
                time.sleep(0.1)
        return self

    @property
    def url(self) -> str:
        assert self.standby is not None
        hosts = "127.0.0.1,127.0.0.1"
        ports = f"{self.primary.port},{self.standby.port}"
        return f"postgresql+psycopg://postgres@/{self.name}?host={hosts}&port={ports}&target_session_attrs=read-write"

    def remove(self) -> None:
        for server in (self.standby, self.primary):
            if server is not None:
                server.remove()
