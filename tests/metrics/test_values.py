"""aura.metrics.values: how a value is stored - one file per worker lifetime, forks, storage failures,
and the request recorder that writes what inc and observe write."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import aura.metrics as multiproc
from aura.metrics.fileformat import read_db_file
from tests.support import programs


def test_worker_identifier_is_unique_per_lifetime_and_has_no_underscore():
    assert multiproc.worker_identifier(1234, 7) == "1234-7"
    assert multiproc.worker_identifier(1234, 7) != multiproc.worker_identifier(1234, 8)
    assert "_" not in multiproc.worker_identifier(99999, 123456)
    with pytest.raises(ValueError):
        multiproc.worker_identifier(0, 1)
    with pytest.raises(ValueError):
        multiproc.use_worker_identifier("12_3")


def test_worker_files_are_named_by_identifier(metrics_dir, mpkit):
    mpkit.run_workers(metrics_dir, [("4242-1", 1)])
    names = {p.name for p in metrics_dir.glob("*.db")}
    assert "counter_4242-1.db" in names
    assert "histogram_4242-1.db" in names
    assert {f"gauge_{m}_4242-1.db" for m in ("all", "livesum", "mostrecent")} <= names
    assert all("4242-1" in n for n in names)


def test_recycled_pid_never_adds_to_old_worker(metrics_dir, mpkit):
    # Same pid, new age: the new worker writes a new file starting from zero, both unmerged ...
    mpkit.run_workers(metrics_dir, [("4242-1", 5)])
    mpkit.run_workers(metrics_dir, [("4242-2", 3)])
    get = ("t_requests_total", (("method", "GET"), ("status", "200")))
    assert [v for k, v, _ in read_db_file(str(metrics_dir / "counter_4242-2.db")) if '"GET"' in k] == [3.0]
    assert mpkit.scrape(metrics_dir)[get] == 8.0
    # ... and after the old one is merged (its files gone, its id absorbed) the new one is untouched.
    multiproc.merge_dead_worker(str(metrics_dir), "4242-1")
    assert not list(metrics_dir.glob("*_4242-1.db"))
    assert mpkit.scrape(metrics_dir)[get] == 8.0
    mpkit.run_workers(metrics_dir, [("4242-3", 4)])
    assert mpkit.scrape(metrics_dir)[get] == 12.0


def test_metrics_created_before_fork_follow_the_worker_identifier(metrics_dir, mpkit):
    # As in a Gunicorn master that imports metric definitions before forking workers.
    proc = subprocess.run(
        [sys.executable, programs.path("metric_before_fork.py")],
        env=mpkit.env(metrics_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    _master, child = proc.stdout.split()
    # The master is no worker: it writes nothing (it used to leave a file of zeros per type).
    assert {p.name for p in metrics_dir.glob("*.db")} == {f"counter_{child}-7.db"}
    assert [v for _, v, _ in read_db_file(str(metrics_dir / f"counter_{child}-7.db"))] == [3.0]


def _run(mpkit, metrics_dir, program: str, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, programs.path(program), *args],
        env=mpkit.env(metrics_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_a_process_forked_from_a_worker_writes_its_own_file(metrics_dir, mpkit):
    # e.g. a subprocess started with fork by a view: it must not add into the worker's file.
    worker, child = _run(mpkit, metrics_dir, "fork_from_worker.py")
    assert [v for _, v, _ in read_db_file(str(metrics_dir / "counter_900-1.db"))] == [2.0]
    assert [v for _, v, _ in read_db_file(str(metrics_dir / f"counter_{child}.db"))] == [10.0]  # its own


def test_a_fork_while_another_thread_records_cannot_deadlock_the_child(metrics_dir, mpkit):
    # The child gets a fresh lock: the copy it inherits may be held by a thread it does not have.
    _run(mpkit, metrics_dir, "fork_while_locked.py")


def test_counts_kept_while_files_cannot_be_created_are_written_once_they_can(tmp_path, mpkit):
    directory = tmp_path / "not-yet"  # gone, as a volume that is not mounted yet
    proc = subprocess.run(
        [sys.executable, programs.path("count_before_directory_exists.py"), str(directory)],
        env=mpkit.env(directory),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("metrics are degraded") == 1
    assert "metrics recovered" in proc.stderr
    assert [v for _, v, _ in read_db_file(str(directory / "counter_903-1.db"))] == [6.0]


def test_a_child_that_cannot_open_its_files_does_not_inherit_the_parents_counts(tmp_path, metrics_dir, mpkit):
    later = tmp_path / "later"
    child = _run(mpkit, metrics_dir, "child_without_files.py", str(later))[0]
    assert [v for _, v, _ in read_db_file(str(metrics_dir / "counter_904-1.db"))] == [3.0]
    assert [v for _, v, _ in read_db_file(str(later / f"counter_{child}.db"))] == [2.0]  # not 3 + 2


def test_request_recorder_writes_what_inc_and_observe_write(metrics_dir, mpkit):
    # The HTTP hot path bypasses Counter.inc and Histogram.observe: same files, same numbers.
    _run(mpkit, metrics_dir, "request_recorder_and_inc.py")
    values: dict[str, dict[str, float]] = {"fast": {}, "slow": {}}
    for kind in ("counter", "histogram"):
        for key, value, _ in read_db_file(str(metrics_dir / f"{kind}_902-1.db")):
            name = key.split('"')[1]  # [metric_name, name, labelnames, labelvalues, help]
            variant = "fast" if name.startswith("fast") else "slow"
            values[variant][key.replace("fast", "slow", 2)] = value
    assert values["fast"] == values["slow"] and len(values["slow"]) == 1 + 1 + 5  # total, sum, buckets
    assert values["fast"][next(k for k in values["slow"] if "_sum" in k)] == sum(
        [0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.99, 1.0, 7.5, 1e9]
    )


def test_a_value_file_appears_at_its_full_size(tmp_path):
    # A scrape listing the directory while a worker creates a file must never find it empty
    # (it used to be created empty and then extended: a scrape reported it as damaged).
    from aura.metrics._compat import ReservingMmapedDict

    seen_empty: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            for entry in os.scandir(tmp_path):
                if entry.name.endswith(".db") and entry.stat().st_size == 0:
                    seen_empty.append(entry.name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(300):
            ReservingMmapedDict(str(tmp_path / f"counter_{i}-1.db")).close()
    finally:
        done.set()
        watcher.join(30)
    assert not seen_empty, seen_empty[:5]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
