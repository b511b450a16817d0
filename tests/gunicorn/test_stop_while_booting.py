"""A stop signal that reaches a worker while it boots ends it, instead of being lost.

Gunicorn gives a worker its own signal handlers only after ``post_fork``; until then a SIGTERM
was queued for the master's handler in the child's memory and never read, and the master waited
out the graceful timeout before killing the worker (aura/infra/worker_signals.py).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from aura.testing.servers import Gunicorn

pytestmark = pytest.mark.gunicorn

CONF = Path(__file__).resolve().parents[1] / "support" / "programs" / "slow_boot_gunicorn.conf.py"


def _booting_worker(server: Gunicorn, known: set[int], timeout: float = 30) -> int:
    """The pid of a worker not in ``known`` that has logged it is booting (so is in ``post_fork``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in set(server.worker_pids()) - known:
            if f"Booting worker with pid: {pid}" in server.log_path.read_text(errors="replace"):
                return pid
        assert server.proc.poll() is None, server.log()
        time.sleep(0.05)
    raise AssertionError(f"no new worker booted: {server.log()}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_sent_while_a_worker_boots_stops_it(tmp_path, server_env, stop):
    # The graceful timeout is far longer than the wait below: only a worker that handles the
    # signal lets the master exit in time; one that lost it is killed when the timeout ends.
    server = Gunicorn(tmp_path, server_env, workers=1, GUNICORN_GRACEFUL_TIMEOUT="300", AURA_TEST_BOOT_DELAY="5")
    server.argv = ["-c", str(CONF)]
    server.start()
    try:
        first = set(server.worker_pids())
        server.proc.send_signal(signal.SIGTTIN)  # one more worker: it spends 5 s in post_fork
        booting = _booting_worker(server, first)
        server.proc.send_signal(stop)
        try:
            code = server.proc.wait(120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the master still waits for worker {booting}, which lost the {stop.name}: {server.log()}")
        assert code == 0, server.log()
        log = server.log_path.read_text(errors="replace")
        assert f"Worker exiting (pid: {booting})" in log, log  # it ended itself, not by SIGKILL
    finally:
        server.stop()
