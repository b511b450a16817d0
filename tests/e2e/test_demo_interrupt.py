"""`make demo` ends cleanly on Ctrl-C: load stopped at once, everything it started stopped, exit 0.

The demo runs as a user would run it (scripts/demo.sh, its own session like a terminal's
foreground job) on free ports with its own Redis; Ctrl-C is SIGINT to the whole process group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aura.testing.servers import ROOT, free_port

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow(18)]


def _session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            members.append(int(stat.parent.name))
    return members


def _alive(pids: list[int]) -> dict[int, str]:
    """The command lines of those of `pids` still running (what a hung stop waits for)."""
    alive = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            alive[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    return alive


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, path.read_text(errors="replace")):
            return
        assert proc.poll() is None, path.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not seen: {path.read_text(errors='replace')[-3000:]}")


@pytest.mark.skipif(
    not (shutil.which("prometheus") and shutil.which("redis-server") and shutil.which("prometheus-alertmanager")),
    reason="the demo needs prometheus, prometheus-alertmanager and redis-server (make demo installs them)",
)
def test_ctrl_c_stops_the_demo_cleanly(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AURA_", "GUNICORN_", "DEMO_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DEMO_DIR=str(tmp_path / "demo"),
        DEMO_PORT=str(free_port()),
        DEMO_METRICS_PORT=str(free_port()),
        DEMO_PROMETHEUS_PORT=str(free_port()),
        DEMO_REDIS_PORT=str(free_port()),
        DEMO_ALERTMANAGER_PORT=str(free_port()),
        DEMO_ALERT_SINK_PORT=str(free_port()),
        DEMO_SECONDS="120",
        DEMO_REQUESTS="100000",
        LOG_LEVEL="WARNING",
    )
    output = tmp_path / "demo.out"
    started: list[int] = []
    with open(output, "wb") as out:
        # A terminal starts its foreground job with SIGINT at its default action. A test run started
        # in the background (`&`, nohup) passes SIGINT on ignored, and a shell cannot trap a signal
        # that was ignored when it started: the demo's Ctrl-C trap would silently not be set.
        proc = subprocess.Popen(
            ["env", "--default-signal=INT", "bash", "scripts/demo.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(output, r"\] [1-9]\d{2,}/100000 requests", proc, timeout=180)  # load is flowing
        started += [int(p) for p in (tmp_path / "demo" / "pids").read_text().split()]
        # its own Redis, Gunicorn, the alert sink, Alertmanager, Prometheus, the load generator
        assert len(started) == 6
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal's foreground group
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the demo did not end within 90 s of Ctrl-C; still running: {_alive(started)}; "
                f"its output ends:\n{output.read_text(errors='replace')[-3000:]}"
            ) from None
        assert code == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            for pid in started:  # services run in sessions of their own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
    text = output.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert "interrupted: load stopped" in text
    # The bar stopped with the load: nothing of it follows the summary table.
    assert "[" not in text.split("action ", 1)[1].split("interrupted", 1)[0], text[-2000:]
    # Not the 500s of requests cut by a worker that the interrupt killed mid-request.
    assert "500" not in text.split("action ", 1)[1], text[-2000:]
    sessions = [proc.pid, *started]  # the services run in sessions of their own (setsid)
    deadline = time.monotonic() + 20
    while any(_session_members(s) for s in sessions) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [m for s in sessions for m in _session_members(s)] == [], "processes of the demo left running"
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
