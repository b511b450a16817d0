"""aura.metrics.directory: prepare_directory creates, marks and cleans only what it owns, or says why not."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import aura.metrics as multiproc
from aura.metrics import directory
from aura.metrics.fileformat import GATE_NAME, LOCK_NAME, MARKER_NAME, OWNER_NAME
from tests.support import flocks


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


# ------------------------------------------------------------------ claiming a directory, in process


@pytest.fixture
def claims():
    """Claims made by the test, forgotten and their owner locks released afterwards."""
    made: list[directory.Claim] = []

    def claim(root) -> directory.Claim:
        c = directory.claim_directory(str(root))
        made.append(c)
        return c

    yield claim
    for c in made:
        directory._claims.pop(c.root, None)
        if c.owner_fd is not None:
            try:
                os.close(c.owner_fd)
            except OSError:
                pass


def _hold(path) -> int:
    """Hold a directory as a live instance does: an exclusive flock on its owner file."""
    return flocks.hold(os.path.join(path, OWNER_NAME))


def _free(path) -> bool:
    return flocks.is_free(os.path.join(path, OWNER_NAME), fcntl.LOCK_SH)


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_free_root_is_claimed_and_held_by_its_owner_file(tmp_path, claims):
    root = tmp_path / "metrics"
    claim = claims(root)
    assert (claim.root, claim.path, claim.pid, claim.error) == (str(root), str(root), os.getpid(), None)
    assert claim.owner_fd is not None
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    owner = root / OWNER_NAME
    assert owner.read_text() == f"{os.getpid()}\n" and stat.S_IMODE(owner.stat().st_mode) == 0o644
    assert not _free(root)  # held exclusively while the claim lives
    assert fcntl.fcntl(claim.owner_fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # not handed to exec'd programs
    assert {p.name for p in root.iterdir()} == {OWNER_NAME, MARKER_NAME, LOCK_NAME, GATE_NAME}
    assert claim.control_socket == os.path.join(str(root), f".aura-ctl-{os.getpid()}.sock")


def test_a_relative_root_is_claimed_by_its_absolute_path(tmp_path, claims, monkeypatch):
    monkeypatch.chdir(tmp_path)
    claim = claims("rel")
    assert claim.root == claim.path == str(tmp_path / "rel") and claim.error is None


def test_the_owner_file_names_the_current_owner_only(tmp_path, claims):
    root = tmp_path / "metrics"
    root.mkdir()
    (root / OWNER_NAME).write_text("123456789012\n")  # a previous, longer pid
    claims(root)
    assert (root / OWNER_NAME).read_text() == f"{os.getpid()}\n"


def test_a_second_claim_in_the_same_process_returns_the_first(tmp_path, claims):
    root = tmp_path / "metrics"
    first = claims(root)
    assert claims(root) is first
    assert claims(str(root) + "/") is first  # the same directory however it is spelled


def test_a_claim_inherited_from_another_process_is_not_reused(tmp_path, claims):
    root = tmp_path / "metrics"
    inherited = directory.Claim(str(root), str(root), os.getpid() + 1)  # e.g. the master's, after fork
    directory._claims[str(root)] = inherited
    claim = claims(root)
    assert claim is not inherited and claim.pid == os.getpid() and claim.owner_fd is not None
    assert directory._claims[str(root)] is claim


def test_a_root_held_by_a_live_instance_gives_a_directory_of_its_own(tmp_path, claims):
    root = tmp_path / "metrics"
    root.mkdir()
    (root / "counter_1-1.db").write_text("x")  # the live instance's metrics
    holder = _hold(root)
    try:
        claim = claims(root)
    finally:
        os.close(holder)
    mine = root / f"instance-{os.getpid()}"
    assert (claim.root, claim.path, claim.error) == (str(root), str(mine), None)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    assert not _free(mine) and (mine / MARKER_NAME).exists()
    assert (root / "counter_1-1.db").exists()  # the live instance's files are not ours to clean
    assert claim.control_socket == os.path.join(str(root), f".aura-ctl-{os.getpid()}.sock")  # in root: short


def test_when_both_are_held_the_claim_is_degraded_and_leaks_nothing(tmp_path, claims):
    root = tmp_path / "metrics"
    root.mkdir()
    mine = root / f"instance-{os.getpid()}"
    mine.mkdir()
    holders = [_hold(root), _hold(mine)]
    try:
        before = _open_descriptors()
        claim = claims(root)
        assert _open_descriptors() == before
    finally:
        for fd in holders:
            os.close(fd)
    assert claim.owner_fd is None and claim.path == str(mine)
    assert claim.root == str(root) and claim.pid == os.getpid()
    assert claim.error == f"metrics directory {str(mine)!r} is held by another live instance"
    assert directory._claims[str(root)] is claim  # asked again, the same answer


def test_a_root_that_is_a_file_degrades_the_claim(tmp_path, claims):
    root = tmp_path / "metrics"
    root.write_text("x")
    claim = claims(root)
    assert (claim.root, claim.path, claim.pid, claim.owner_fd) == (str(root), str(root), os.getpid(), None)
    assert claim.error == (
        f"metrics directory {str(root)!r} exists but is not a directory. "
        "Set PROMETHEUS_MULTIPROC_DIR to a writable directory dedicated to Aura's metrics (e.g. /dev/shm/aura-metrics)."
    )


def test_a_root_that_cannot_be_created_degrades_the_claim(tmp_path, claims):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    claim = claims(blocker / "metrics")
    assert claim.owner_fd is None
    assert claim.error == (
        f"cannot create metrics directory {str(blocker / 'metrics')!r}: Not a directory. "
        "Set PROMETHEUS_MULTIPROC_DIR to a writable directory dedicated to Aura's metrics (e.g. /dev/shm/aura-metrics)."
    )


def test_a_root_that_cannot_be_prepared_is_released(tmp_path, claims):
    root = tmp_path / "home"
    root.mkdir()
    (root / "thesis.tex").write_text("precious")
    before = _open_descriptors()
    claim = claims(root)
    assert _open_descriptors() == before  # the owner file closed again
    assert claim.owner_fd is None and "thesis.tex" in (claim.error or "")
    assert _free(root)  # another instance may take it once it is fixed
    assert (root / "thesis.tex").read_text() == "precious"


# ------------------------------------------------------------------ what start-up removes beside it


def test_a_starting_instance_keeps_live_instances_sockets_and_directories(tmp_path, claims):
    """Issue 25: a starting instance must not delete a live instance's control socket. The
    sockets are named by their master's pid; only those of pids that no longer run go."""
    root = tmp_path / "metrics"
    root.mkdir()
    (root / MARKER_NAME).write_text("")  # a root instances have used before
    dead = _dead_pid()
    with subprocess.Popen(["sleep", "30"]) as other:  # another live master, e.g. a second instance
        try:
            live_sockets = [f".aura-ctl-{os.getpid()}.sock", f".aura-ctl-{other.pid}.sock"]
            kept = [
                *live_sockets,
                ".aura-ctl-abc.sock",
                f".aura-ctl-{dead}.sock.bak",
                f"x.aura-ctl-{dead}.sock",
                f".aura-ctl-{dead}",
                f".aura-ctl-{dead}.sock\n",
            ]
            for name in kept + [f".aura-ctl-{dead}.sock"]:
                (root / name).write_text("")
            live_dirs = [f"instance-{other.pid}", f"instance-{dead}x", "instance-", "instances-1", f"instance-{dead}\n"]
            for name in live_dirs:
                (root / name).mkdir()
                (root / name / "counter_1-1.db").write_text("x")
            claim = claims(root)
            assert claim.path == str(root) and claim.error is None
            left = {p.name for p in root.iterdir()}
        finally:
            other.kill()
    assert set(kept) <= left and f".aura-ctl-{dead}.sock" not in left
    assert set(live_dirs) <= left
    for name in live_dirs:
        assert (root / name / "counter_1-1.db").exists(), name


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_starting_instance_removes_the_directories_of_ended_instances(tmp_path, claims, caplog):
    root = tmp_path / "metrics"
    root.mkdir()
    (root / MARKER_NAME).write_text("")
    dead = [_dead_pid() for _ in range(3)]
    ended = root / f"instance-{dead[0]}"
    ended.mkdir()
    for name in ("counter_1-1.db", MARKER_NAME, LOCK_NAME, GATE_NAME, OWNER_NAME, ".aura-labels.route"):
        (ended / name).write_text("x")
    cluttered = root / f"instance-{dead[1]}"  # an ended instance's, with something else in it
    cluttered.mkdir()
    (cluttered / "counter_1-1.db").write_text("x")
    (cluttered / "notes.txt").write_text("mine")
    (cluttered / "counter_2-2.db").mkdir()  # a directory with a metric's name
    (cluttered / "histogram_3-3.db").symlink_to(root / "outside.db")
    (root / "outside.db").write_text("x")
    held = root / f"instance-{dead[2]}"  # its master is gone, but a worker still holds it
    held.mkdir()
    (held / "counter_1-1.db").write_text("x")
    holder = _hold(held)
    try:
        with caplog.at_level(logging.INFO, logger="aura.metrics"):
            claim = claims(root)
    finally:
        os.close(holder)
    assert claim.error is None
    assert not ended.exists()
    assert {p.name for p in cluttered.iterdir()} == {"notes.txt", "counter_2-2.db", "histogram_3-3.db"}
    assert (root / "outside.db").exists()
    assert (held / "counter_1-1.db").exists()
    messages = [r.getMessage() for r in caplog.records]
    assert f"removed the metrics directory of an ended instance: {ended}" in messages
    assert any(
        m.startswith(f"cannot remove the metrics directory of an ended instance {cluttered}: ") for m in messages
    )


def test_the_instance_directory_a_starting_instance_takes_is_kept_even_if_its_pid_was_reused(tmp_path, claims):
    root = tmp_path / "metrics"
    root.mkdir()
    mine = root / f"instance-{os.getpid()}"
    holder = _hold(root)
    try:
        claim = claims(root)
    finally:
        os.close(holder)
    assert claim.path == str(mine) and mine.is_dir() and (mine / MARKER_NAME).exists()


def test_an_instance_directory_without_an_owner_file_is_not_held():
    """Its master may still be creating it: only the pid test keeps it (a dead pid's goes)."""
    assert directory._is_held("/nonexistent/instance-1") is False


def test_is_held_tells_a_held_owner_file_from_a_free_one(tmp_path):
    (tmp_path / OWNER_NAME).write_text("")
    before = _open_descriptors()
    assert directory._is_held(str(tmp_path)) is False
    fd = _hold(tmp_path)
    try:
        assert directory._is_held(str(tmp_path)) is True
        shared = os.open(tmp_path / OWNER_NAME, os.O_RDONLY)
    finally:
        os.close(fd)
    try:
        fcntl.flock(shared, fcntl.LOCK_SH)  # a shared holder holds it too
        assert directory._is_held(str(tmp_path)) is False  # ... but a shared test lock passes
    finally:
        os.close(shared)
    assert _open_descriptors() == before


# ------------------------------------------------------------------ preparing a directory


def test_prepare_keeps_the_lock_and_owner_files_inodes(tmp_path, claims):
    root = tmp_path / "metrics"
    claim = claims(root)
    inodes = {name: (root / name).stat().st_ino for name in (LOCK_NAME, GATE_NAME, OWNER_NAME, MARKER_NAME)}
    (root / "counter_1-1.db").write_text("x")
    multiproc.prepare_directory(str(root))
    assert {name: (root / name).stat().st_ino for name in inodes} == inodes
    assert not (root / "counter_1-1.db").exists()
    assert not _free(root) and claim.owner_fd is not None  # the claim still holds it


def test_prepare_writes_the_marker_once(tmp_path):
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d))
    assert (d / MARKER_NAME).read_text() == (
        "This directory holds Aura's multi-process Prometheus metrics.\n"
        "Aura deletes its metric files here at start-up.\n"
    )
    (d / MARKER_NAME).write_text("kept as it is")
    multiproc.prepare_directory(str(d))
    assert (d / MARKER_NAME).read_text() == "kept as it is"


def test_prepare_a_relative_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    multiproc.prepare_directory("rel")
    assert (tmp_path / "rel" / MARKER_NAME).exists()


def test_prepare_leaves_symlinks_with_owned_names(tmp_path):
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d))
    (tmp_path / "target.db").write_text("x")
    (d / "counter_1-1.db").symlink_to(tmp_path / "target.db")
    multiproc.prepare_directory(str(d))
    assert (d / "counter_1-1.db").is_symlink() and (tmp_path / "target.db").exists()


def test_prepare_counts_what_it_removed(tmp_path, caplog):
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d))
    with caplog.at_level(logging.INFO, logger="aura.metrics"):
        multiproc.prepare_directory(str(d))  # nothing to remove: nothing said
        assert not [r for r in caplog.records if "removed" in r.getMessage()]
        for name in ("counter_1-1.db", "gauge_all_2-2.db", ".aura-labels.route", "notes.txt"):
            (d / name).write_text("x")
        multiproc.prepare_directory(str(d))
    assert [r.getMessage() for r in caplog.records] == [f"removed 3 metric files of a previous run from {d}"]


def test_prepare_waits_for_the_scrapes_in_progress(tmp_path):
    """It cleans under the exclusive directory lock: a scrape holding it shared is waited for."""
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d))
    (d / "counter_1-1.db").write_text("x")
    scrape = os.open(d / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(scrape, fcntl.LOCK_SH)
    removed_while_held = []

    def release():
        time.sleep(0.3)
        removed_while_held.append(not (d / "counter_1-1.db").exists())
        os.close(scrape)

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        multiproc.prepare_directory(str(d))
    finally:
        releaser.join()
    assert removed_while_held == [False]
    assert not (d / "counter_1-1.db").exists()


def test_an_unmarked_directory_holding_only_an_owner_file_is_adopted_quietly(tmp_path, caplog):
    d = tmp_path / "m"
    d.mkdir()
    (d / OWNER_NAME).write_text("1\n")
    with caplog.at_level(logging.WARNING, logger="aura.metrics"):
        multiproc.prepare_directory(str(d))
    assert caplog.records == []
    assert (d / MARKER_NAME).exists()


def test_an_unmarked_directory_of_metric_files_is_adopted_with_a_warning(tmp_path, caplog):
    d = tmp_path / "m"
    d.mkdir()
    (d / "counter_1-1.db").write_text("x")
    with caplog.at_level(logging.WARNING, logger="aura.metrics"):
        multiproc.prepare_directory(str(d))
    assert [r.getMessage() for r in caplog.records] == [
        f"adopting unmarked metrics directory {d} holding only metric files"
    ]


def test_a_marked_directory_is_cleaned_whatever_else_it_holds(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / MARKER_NAME).write_text("")
    (d / "notes.txt").write_text("x")
    (d / "counter_1-1.db").write_text("x")
    multiproc.prepare_directory(str(d))
    assert {p.name for p in d.iterdir()} == {MARKER_NAME, LOCK_NAME, GATE_NAME, "notes.txt"}


def test_the_refusal_names_the_first_five_foreign_entries_in_order(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for name in ("e", "d", "c", "b", "a", "counter_1-1.db"):
        (d / name).write_text("x")
    (d / "counter_2-2.db").mkdir()  # an owned name, but not a plain file: foreign
    with pytest.raises(multiproc.MetricsDirectoryError) as err:  # six foreign entries
        multiproc.prepare_directory(str(d))
    assert str(err.value) == (
        f"refusing to clean metrics directory {str(d)!r}: it has no {MARKER_NAME} marker and contains files "
        "Aura does not own ('a', 'b', 'c', 'counter_2-2.db', 'd' ...). Remove them or set PROMETHEUS_MULTIPROC_DIR "
        "to a writable directory dedicated to Aura's metrics (e.g. /dev/shm/aura-metrics)."
    )
    (d / "a").unlink()  # five: all named
    with pytest.raises(multiproc.MetricsDirectoryError, match=r"\('b', 'c', 'counter_2-2.db', 'd', 'e'\)\. Remove"):
        multiproc.prepare_directory(str(d))
    assert (d / "counter_1-1.db").exists()  # nothing deleted


def test_a_name_that_vanished_is_not_a_plain_file(tmp_path):
    (tmp_path / "counter_1-1.db").write_text("x")
    assert directory._is_plain_file(str(tmp_path), "counter_1-1.db") is True
    assert directory._is_plain_file(str(tmp_path), "counter_2-2.db") is False


def test_an_unwritable_directory_is_refused_with_the_reason(tmp_path):
    with pytest.raises(multiproc.MetricsDirectoryError) as err:
        multiproc.prepare_directory("/proc/self/fd")
    assert str(err.value).startswith("metrics directory '/proc/self/fd' is not writable: ")
    assert str(err.value).endswith(
        ". Fix its permissions or ownership, or set PROMETHEUS_MULTIPROC_DIR to a writable directory "
        "dedicated to Aura's metrics (e.g. /dev/shm/aura-metrics)."
    )


def test_the_write_probe_leaves_nothing_behind(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    multiproc.prepare_directory(str(d))
    assert not [p for p in d.iterdir() if p.name.startswith(".aura-probe")]


def test_a_marker_that_cannot_be_written_is_a_clear_error(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / MARKER_NAME).symlink_to(tmp_path / "missing" / "marker")  # dangling: not there, not creatable
    with pytest.raises(multiproc.MetricsDirectoryError) as err:
        multiproc.prepare_directory(str(d))
    assert str(err.value).startswith(f"cannot prepare metrics directory {str(d)!r}: [Errno 2] ")
    assert str(err.value).endswith(
        ". Set PROMETHEUS_MULTIPROC_DIR to a writable directory dedicated to Aura's metrics"
        " (e.g. /dev/shm/aura-metrics)."
    )


def test_prepare_lets_workers_of_another_user_take_the_locks(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    for name in (LOCK_NAME, GATE_NAME, MARKER_NAME):
        (d / name).write_text("")
        (d / name).chmod(0o600)
    multiproc.prepare_directory(str(d))
    for name in (LOCK_NAME, GATE_NAME, MARKER_NAME):
        assert stat.S_IMODE((d / name).stat().st_mode) == 0o644, name


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
@pytest.mark.parametrize(("uid", "gid"), [(4242, None), (None, 4343), (4242, 4343)])
def test_prepare_hands_the_directory_to_the_workers_user(tmp_path, uid, gid):
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d), uid=uid, gid=gid)
    me = (os.getuid(), os.getgid())
    expected = (me[0] if uid is None else uid, me[1] if gid is None else gid)
    for path in (d, d / LOCK_NAME, d / GATE_NAME, d / MARKER_NAME):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == expected, path


def test_prepare_without_a_user_changes_no_owner(tmp_path):
    d = tmp_path / "m"
    multiproc.prepare_directory(str(d))
    for path in (d, d / LOCK_NAME, d / GATE_NAME, d / MARKER_NAME):
        assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
