"""aura.metrics.directory: prepare_directory creates, marks and cleans only what it owns, or says why not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

import aura.metrics as multiproc
from aura.metrics import directory
from aura.metrics.fileformat import GATE_NAME, LOCK_NAME, MARKER_NAME


def test_prepare_directory_creates_and_marks(tmp_path):
    d = tmp_path / "a" / "b"
    multiproc.prepare_directory(str(d))
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    assert {p.name for p in d.iterdir()} == {MARKER_NAME, LOCK_NAME, GATE_NAME}


def test_prepare_directory_cleans_only_owned_files(metrics_dir, mpkit):
    mpkit.write_http_worker(metrics_dir, "1-1", k=1)
    mpkit.write_db(metrics_dir, "gauge", "77", [("g", "g", {}, 1.0)], mode="livesum")
    multiproc.merge_dead_worker(str(metrics_dir), "1-1")
    mpkit.write_http_worker(metrics_dir, "2-2", k=1)
    owned = ["aura-archive.json.corrupt", ".aura-archive.abc123.tmp", ".aura-probe.x.tmp"]
    foreign = ["notes.txt", "my.db", "counter_1-1.db.bak", ".hidden", "counter__x.db"]
    for name in owned + foreign:
        (metrics_dir / name).write_text("x")
    (metrics_dir / "sub").mkdir()
    (metrics_dir / "sub" / "counter_5-5.db").write_text("x")
    (metrics_dir / "counter_6-6.db").mkdir()  # a directory with a metric-like name: not ours to remove

    multiproc.prepare_directory(str(metrics_dir))
    left = {p.name for p in metrics_dir.iterdir()}
    assert left == {*foreign, "sub", "counter_6-6.db", MARKER_NAME, LOCK_NAME, GATE_NAME}
    assert (metrics_dir / "sub" / "counter_5-5.db").exists()


def test_prepare_directory_adopts_unmarked_directory_of_metric_files(tmp_path, mpkit):
    d = tmp_path / "old"
    d.mkdir()
    mpkit.write_http_worker(d, "123", k=1)
    mpkit.write_db(d, "gauge", "124", [("g", "g", {}, 1.0)], mode="all")
    multiproc.prepare_directory(str(d))
    assert {p.name for p in d.iterdir()} == {MARKER_NAME, LOCK_NAME, GATE_NAME}


def test_prepare_directory_refuses_unmarked_directory_with_foreign_files(tmp_path, mpkit):
    d = tmp_path / "home"
    d.mkdir()
    mpkit.write_http_worker(d, "123", k=1)
    (d / "thesis.tex").write_text("precious")
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(multiproc.MetricsDirectoryError) as err:
        multiproc.prepare_directory(str(d))
    assert str(d) in str(err.value) and "thesis.tex" in str(err.value)
    assert sorted(p.name for p in d.iterdir()) == before  # nothing deleted, no marker


def test_prepare_directory_unwritable_path_gives_clear_error(tmp_path):
    # Works as root too: nothing can be created below a regular file.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "metrics"
    with pytest.raises(multiproc.MetricsDirectoryError) as err:
        multiproc.prepare_directory(str(target))
    assert str(target) in str(err.value) and "PROMETHEUS_MULTIPROC_DIR" in str(err.value)
    with pytest.raises(multiproc.MetricsDirectoryError, match="not a directory"):
        multiproc.prepare_directory(str(blocker))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_prepare_directory_existing_unwritable_directory_gives_clear_error():
    # /proc/self/fd exists and refuses new files even for root.
    with pytest.raises(multiproc.MetricsDirectoryError, match="not writable") as err:
        multiproc.prepare_directory("/proc/self/fd")
    assert "/proc/self/fd" in str(err.value)


_FIRST_INSTANCE = """
import socket, sys
from aura.metrics.directory import claim_directory
claim = claim_directory(sys.argv[1])
control = socket.socket(socket.AF_UNIX)
control.bind(claim.control_socket)
control.listen(1)
print(claim.control_socket, flush=True)
sys.stdin.read()
"""


def test_a_starting_instance_removes_only_dead_instances_control_sockets(tmp_path):
    """A second instance starts beside a live one: the live master's control socket stays (and
    still answers); a socket left by an instance that has ended is removed."""
    root = str(tmp_path / "metrics")
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()  # reaped: its pid names no process now
    with subprocess.Popen(  # on leaving: stdin closed (the first instance ends), then waited for
        [sys.executable, "-c", _FIRST_INSTANCE, root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as first:
        assert first.stdout is not None
        live = first.stdout.readline().strip()
        stale = os.path.join(root, f".aura-ctl-{ended.pid}.sock")
        with socket.socket(socket.AF_UNIX) as left:
            left.bind(stale)

        second = directory.claim_directory(root)
        try:
            assert second.path != root and second.error is None  # the live first instance holds root
            assert not os.path.exists(stale)
            assert os.path.exists(live) and second.control_socket != live
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(live)
        finally:
            directory._claims.pop(second.root, None)
            if second.owner_fd is not None:
                os.close(second.owner_fd)
