"""The in-flight file (aura/metrics/inflight.py): its format, the scrape's busy time, the merge of a dead worker."""

from __future__ import annotations

import os
import time

import pytest

from aura.metrics import inflight
from aura.metrics.archive import merge_all_dead
from aura.metrics.fileformat import ARCHIVE_NAME, DamagedFileError, is_owned_name, parse_inflight_name
from aura.metrics.inflight import BUSY_KEY, InflightFile, Running
from aura.metrics.locking import directory_lock

BUSY = ("gunicorn_worker_busy_seconds_total", ())


def _http_rows(method, endpoint, status, seconds):
    """A stand-in for the recorder's lost_request_rows: one counter row per request, keyed by its labels."""
    key = f'["lost", "lost_total", {{"e": "{method} {endpoint} {status}"}}, "h"]'
    return [("counter", (key, 1.0, 0.0)), ("counter", (key.replace("lost_total", "lost_seconds_total"), seconds, 0.0))]


def test_names_are_owned_and_parsed():
    assert inflight.file_name("12-3") == ".aura-inflight.12-3"
    assert parse_inflight_name(".aura-inflight.12-3") == "12-3"
    assert parse_inflight_name(".aura-inflight._x") is None and parse_inflight_name("counter_1.db") is None
    assert is_owned_name(".aura-inflight.12-3")


def test_slot_encodes_finished_and_running_busy_time_in_one_double(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 2)
    path = f.path
    assert inflight.read(path).busy(1e9) == 0.0 and len(inflight.read(path).slots) == inflight.MIN_SLOTS
    slot = f.begin(1000.0, b"GET")
    state = inflight.read(path)
    busy, start, method, endpoint = state.slots[slot]
    assert busy < 0 and start == 1000.0 and method == "GET" and endpoint == ""
    assert state.busy(1002.5) == pytest.approx(2.5)  # accrues while running
    f.route(slot, b"/api/v1/x")
    assert inflight.read(path).slots[slot][3] == "/api/v1/x"
    f.end(slot, 3.0)
    state = inflight.read(path)
    assert state.slots[slot][0] == 3.0 and state.busy(5000.0) == 3.0  # finished: no longer grows
    again = f.begin(2000.0, b"POST")
    assert again == slot and inflight.read(path).slots[slot][3] == ""  # the old endpoint is cleared
    assert inflight.read(path).busy(2001.0) == pytest.approx(4.0)


def test_requests_beyond_the_slots_still_count_their_busy_time(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 1)
    slots = [f.begin(10.0, b"GET") for _ in range(inflight.MIN_SLOTS)]
    assert f.begin(10.0, b"GET") == -1
    f.end(-1, 0.5)
    for s in slots:
        f.end(s, 1.0)
    assert inflight.read(f.path).busy(99.0) == pytest.approx(inflight.MIN_SLOTS + 0.5)


def test_damaged_files_are_refused(metrics_dir):
    path = metrics_dir / ".aura-inflight.1-1"
    for data in (b"", b"x" * 40, inflight.HEADER.pack(b"AURAINF1", 2, 0, 0.0, 0.0)):  # short, bad magic, truncated
        path.write_bytes(data)
        with pytest.raises(DamagedFileError):
            inflight.read(str(path))


def test_stamp_ended_is_first_wins(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 1)
    f.begin(100.0, b"GET")
    assert inflight.stamp_ended(f.path, 130.0).running() == [Running("GET", "", 30.0)]
    assert inflight.stamp_ended(f.path, 999.0).ended == 130.0
    assert inflight.read(f.path).busy(5000.0) == pytest.approx(30.0)


def test_scrape_reads_busy_time_of_running_requests(metrics_dir, mpkit):
    f = InflightFile(str(metrics_dir), "1-1", 2)
    f.begin(time.perf_counter() - 5.0, b"GET")  # started 5 s ago, still running
    first = mpkit.scrape(metrics_dir)[BUSY]
    time.sleep(0.2)
    second = mpkit.scrape(metrics_dir)[BUSY]
    assert 5.0 <= first < second and second - first >= 0.2


def test_dead_worker_merge_records_its_running_request_once_even_when_retried(metrics_dir, mpkit):
    d = str(metrics_dir)
    f = InflightFile(d, "1-1", 2)
    done = f.begin(50.0, b"GET")
    f.end(done, 2.0)  # a finished request: 2 s
    f.route(f.begin(100.0, b"POST"), b"/api/v1/slow")
    inflight.stamp_ended(f.path, 130.0)  # the master found it dead (child_exit)
    before = mpkit.scrape(metrics_dir)[BUSY]
    assert before == pytest.approx(32.0)
    calls = []

    def extra(ident, rows, running):
        calls.append(running)
        return [row for r in running for row in _http_rows(r.method, r.endpoint, "502", r.seconds)]

    with directory_lock(d, exclusive=False, timeout=1):  # a scrape holds the lock: the merge is skipped
        assert merge_all_dead(d, [], check_pids=False, lock_timeout=0.05, extra_rows=extra).skipped_reason
    assert calls == [] and not (metrics_dir / ARCHIVE_NAME).exists()
    assert mpkit.scrape(metrics_dir)[BUSY] == pytest.approx(32.0)  # still read from the file, not grown
    stats = merge_all_dead(d, [], check_pids=False, extra_rows=extra)
    assert stats.merged_identifiers == ("1-1",) and not os.path.exists(f.path)
    assert calls == [[Running("POST", "/api/v1/slow", 30.0)]]
    merge_all_dead(d, [], check_pids=False, extra_rows=extra)  # a later merge: nothing left to count
    got = mpkit.scrape(metrics_dir)
    assert got[BUSY] == pytest.approx(32.0)
    assert got[("lost_total", (("e", "POST /api/v1/slow 502"),))] == 1.0
    assert got[("lost_seconds_total", (("e", "POST /api/v1/slow 502"),))] == pytest.approx(30.0)


def test_merge_stamps_a_dead_worker_nobody_stamped(metrics_dir, mpkit):
    f = InflightFile(str(metrics_dir), "1-1", 1)
    f.begin(time.perf_counter() - 1.0, b"GET")
    merge_all_dead(str(metrics_dir), [], check_pids=False)
    busy = mpkit.scrape(metrics_dir)[BUSY]
    time.sleep(0.1)
    assert busy >= 1.0 and mpkit.scrape(metrics_dir)[BUSY] == busy


def test_busy_keys_are_the_definitions_series():
    from prometheus_client.mmap_dict import mmap_key

    from aura.instrumentation import definitions as d

    assert BUSY_KEY == mmap_key(
        d.WORKER_BUSY_SECONDS._name, "gunicorn_worker_busy_seconds_total", [], [], d.WORKER_BUSY_SECONDS._documentation
    )
    gauge = d.WORKERS_BUSY
    assert inflight.WORKERS_BUSY_KEY == mmap_key(gauge._name, gauge._name, [], [], gauge._documentation)


def test_scrape_reads_running_requests_of_live_workers_as_busy_workers(metrics_dir, mpkit):
    f = InflightFile(str(metrics_dir), "1-1", 2)
    g = InflightFile(str(metrics_dir), "2-1", 2)
    f.begin(time.perf_counter(), b"GET")
    f.begin(time.perf_counter(), b"GET")
    g.end(g.begin(time.perf_counter(), b"GET"), 0.1)
    assert mpkit.scrape(metrics_dir)[("gunicorn_workers_busy", ())] == 2
    inflight.stamp_ended(f.path)  # found dead: it runs nothing any more
    assert mpkit.scrape(metrics_dir)[("gunicorn_workers_busy", ())] == 0


def test_a_damaged_in_flight_file_is_skipped_by_scrapes_and_discarded_by_the_merge(metrics_dir, mpkit):
    mpkit.write_db(metrics_dir, "counter", "1-1", [("c", "c_total", {}, 3.0)])
    (metrics_dir / ".aura-inflight.1-1").write_bytes(b"garbage" * 10)
    assert mpkit.scrape(metrics_dir)[("c_total", ())] == 3.0
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.merged_identifiers == ("1-1",) and stats.damaged_files == 1
    assert not (metrics_dir / ".aura-inflight.1-1").exists()
    assert mpkit.scrape(metrics_dir)[("c_total", ())] == 3.0


def test_the_merge_keeps_the_highest_busy_time_this_process_reported(metrics_dir, mpkit):
    f = InflightFile(str(metrics_dir), "1-1", 1)
    f.begin(time.perf_counter() - 2.0, b"GET")
    reported = mpkit.scrape(metrics_dir)[BUSY]
    inflight.stamp_ended(f.path, time.perf_counter() - 1.0)  # a stamp below what a scrape saw
    assert mpkit.scrape(metrics_dir)[BUSY] == reported
    merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert mpkit.scrape(metrics_dir)[BUSY] == reported
