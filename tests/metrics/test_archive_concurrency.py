"""aura.metrics.archive under concurrency and crashes: no increment lost or counted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import aura.metrics as multiproc
from aura.metrics.fileformat import ARCHIVE_NAME
from tests.support import programs

WORKERS = 12


def _dead_workers(directory, mpkit, n=WORKERS) -> list[str]:
    ids = [f"{2000 + i}-{i}" for i in range(1, n + 1)]
    for i, ident in enumerate(ids, start=1):
        mpkit.write_http_worker(directory, ident, k=i)
    return ids


def test_no_increment_lost_or_doubled_while_merging_during_scrapes(metrics_dir, mpkit, tmp_path):
    ids = _dead_workers(metrics_dir, mpkit)
    expected = mpkit.scrape(metrics_dir)  # all workers are dead: totals are constant
    stop = threading.Event()
    results: list[dict] = []
    errors: list[BaseException] = []

    def scrape_loop():
        try:
            while not stop.is_set():
                results.append(mpkit.scrape(metrics_dir))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    # Scrapers in this process (threads) and in another process, while merges run one by one.
    stop_file = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, programs.path("metrics_scraper.py"), str(metrics_dir), str(stop_file)],
        env=mpkit.env(metrics_dir),
        stdout=subprocess.PIPE,
        text=True,
    )
    threads = [threading.Thread(target=scrape_loop) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        mpkit.wait_for(f"{stop_file}.ready")  # the other process is scraping now
        for ident in ids:
            stats = multiproc.merge_dead_worker(str(metrics_dir), ident, lock_timeout=10)
            assert stats.skipped_reason is None and stats.merged_identifiers == (ident,)
            time.sleep(0.02)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        stop_file.write_text("stop")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0

    assert not errors, errors
    assert not list(metrics_dir.glob("*.db"))
    assert len(results) > WORKERS
    bad = [r for r in results if r != expected]
    assert not bad, f"{len(bad)} of {len(results)} scrapes differ"

    # The other process's scrapes, keyed as it printed them.
    expected_flat = {name + json.dumps(dict(labels), sort_keys=True): v for (name, labels), v in expected.items()}
    theirs = [json.loads(line) for line in out.splitlines() if line]
    assert len(theirs) > 3
    assert all(r == expected_flat for r in theirs)


@pytest.mark.parametrize("point", ["before-replace", "after-replace", "during-delete"])
def test_crash_during_merge_neither_loses_nor_double_counts(metrics_dir, mpkit, tmp_path, point):
    ids = _dead_workers(metrics_dir, mpkit, n=3)
    expected = mpkit.scrape(metrics_dir)
    signal_file = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, programs.path("pausing_merger.py"), str(metrics_dir), point, str(signal_file)],
        env=mpkit.env(metrics_dir),
    )
    try:
        mpkit.wait_for(signal_file)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs in the merging process
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    files = {p.name for p in metrics_dir.iterdir()}
    if point == "before-replace":
        assert ARCHIVE_NAME not in files and any(n.endswith(".tmp") for n in files)
        assert len(list(metrics_dir.glob("*.db"))) == 6
    elif point == "after-replace":
        assert ARCHIVE_NAME in files and len(list(metrics_dir.glob("*.db"))) == 6  # leftovers
    else:
        assert ARCHIVE_NAME in files and len(list(metrics_dir.glob("*.db"))) == 4

    # The lock died with the process; scrapes are exact (leftovers of absorbed workers ignored).
    assert mpkit.scrape(metrics_dir) == expected

    # A later merge, with one more dead worker, cleans up and prunes the absorbed list.
    mpkit.write_http_worker(metrics_dir, "3000-9", k=9)
    expected = mpkit.scrape(metrics_dir)
    stats = multiproc.merge_all_dead(str(metrics_dir), [], check_pids=False)
    left = {p.name for p in metrics_dir.iterdir()}
    assert not any(n.endswith(".db") or n.endswith(".tmp") for n in left)
    doc = json.loads((metrics_dir / ARCHIVE_NAME).read_text())
    if point == "before-replace":
        assert stats.temp_files_removed == 1
        assert set(stats.merged_identifiers) == {*ids, "3000-9"}
        assert sorted(doc["absorbed"]) == sorted([*ids, "3000-9"])
    else:
        assert stats.leftover_files_removed == (6 if point == "after-replace" else 4)
        assert stats.merged_identifiers == ("3000-9",)
        assert doc["absorbed"] == ["3000-9"]  # earlier ids pruned: their files are gone
    assert mpkit.scrape(metrics_dir) == expected


def test_merge_gives_up_on_lock_timeout_and_files_stay_readable(metrics_dir, mpkit):
    import fcntl

    ids = _dead_workers(metrics_dir, mpkit, n=2)
    expected = mpkit.scrape(metrics_dir)
    fd = os.open(metrics_dir / ".aura-metrics.lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a scrape that never finishes
        stats = multiproc.merge_dead_worker(str(metrics_dir), ids[0], lock_timeout=0.2)
        assert stats.skipped_reason == "lock timeout"
    finally:
        os.close(fd)
    assert mpkit.scrape(metrics_dir) == expected
    assert multiproc.merge_all_dead(str(metrics_dir), [], check_pids=False).merged_identifiers == tuple(ids)
    assert mpkit.scrape(metrics_dir) == expected
