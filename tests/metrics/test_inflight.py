"""The in-flight file (aura/metrics/inflight.py): its format, the scrape's busy time, the merge of a dead worker."""

from __future__ import annotations

import os
import stat
import threading
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


# --------------------------------------------------------------------------- the file, slot by slot


def _idle(slots: int) -> inflight.State:
    return inflight.State(((0.0, 0.0, "", ""),) * slots, 0.0, 0.0)


def test_a_new_file_has_the_documented_size_and_the_slots_asked_within_bounds(metrics_dir):
    assert inflight.file_size(1) == 32 + 136 and inflight.file_size(4) == 32 + 4 * 136  # docs/metrics.md
    for asked, slots in ((1, inflight.MIN_SLOTS), (4, 4), (10, 10), (1024, 1024), (5000, inflight.MAX_SLOTS)):
        f = InflightFile(str(metrics_dir), f"{asked}-1", asked)
        assert f.slots == slots and os.path.getsize(f.path) == inflight.file_size(slots)
        assert inflight.read(f.path) == _idle(slots)  # alive, nothing running, nothing overflowed
        with open(f.path, "rb") as data:  # the header as documented, its reserved field 0
            assert data.read(32) == inflight.HEADER.pack(b"AURAINF1", slots, 0, 0.0, 0.0)


def test_the_file_is_readable_by_other_users_and_replaces_a_longer_one_of_the_same_name(metrics_dir):
    old = os.umask(0)
    try:
        InflightFile(str(metrics_dir), "1-1", 64).begin(1.0, b"GET")
        f = InflightFile(str(metrics_dir), "1-1", 4)  # a file left under the same name
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(f.path).st_mode) == 0o644  # the master may run as another user
    assert inflight.read(f.path) == _idle(4)


def test_every_slot_serves_before_requests_overflow_and_each_keeps_its_own_time(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 6)
    taken = [f.begin(100.0 + i, b"GET") for i in range(6)]
    assert sorted(taken) == list(range(6)) and f.begin(200.0, b"PUT") == -1
    state = inflight.read(f.path)
    assert [state.slots[slot][1] for slot in taken] == [100.0 + i for i in range(6)]
    assert state.running_now() == 6 and state.busy(110.0) == pytest.approx(sum(10.0 - i for i in range(6)))
    f.route(taken[3], b"/api/v1/X")
    f.route(-1, b"/api/v1/overflowed")  # a request without a slot names nothing
    assert [endpoint for *_, endpoint in inflight.read(f.path).slots] == ["", "", "", "/api/v1/X", "", ""]
    for i, slot in enumerate(taken):
        f.end(slot, i + 1.0)
    f.end(-1, 0.5)  # two requests that found every slot taken
    f.end(-1, 0.25)
    state = inflight.read(f.path)
    assert [state.slots[slot][0] for slot in taken] == [i + 1.0 for i in range(6)]
    assert state.overflow == 0.75 and state.running_now() == 0
    assert state.busy(1e6) == 21.75 and state.running() == []
    assert sorted(f.begin(300.0, b"GET") for _ in range(6)) == list(range(6))  # all free again


def test_stamp_ended_returns_what_the_file_now_says(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 4)
    f.end(f.begin(50.0, b"GET"), 2.0)
    f.end(-1, 0.5)
    f.route(f.begin(100.0, b"POST"), b"/api/v1/a")
    stamped = inflight.stamp_ended(f.path, 130.0)
    assert stamped == inflight.read(f.path)
    assert stamped.ended == 130.0 and stamped.overflow == 0.5 and stamped.running_now() == 0
    assert stamped.running() == [Running("POST", "/api/v1/a", 30.0)]
    assert stamped.busy(1e9) == 2.0 + 0.5 + 30.0


def test_a_request_that_began_after_the_stamp_ran_for_no_time(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 4)
    f.begin(140.0, b"GET")
    assert inflight.stamp_ended(f.path, 130.0).running() == [Running("GET", "", 0.0)]


def test_stamp_ended_reads_the_monotonic_clock_when_given_no_time(metrics_dir):
    f = InflightFile(str(metrics_dir), "1-1", 4)
    before = time.perf_counter()
    stamped = inflight.stamp_ended(f.path)
    assert before <= stamped.ended <= time.perf_counter()
    assert inflight.read(f.path).ended == stamped.ended


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "0 bytes, shorter than the in-flight header"),
        (inflight.HEADER.pack(inflight.MAGIC, 2, 0, 0.0, 0.0)[:31], "31 bytes, shorter than the in-flight header"),
        (inflight.HEADER.pack(inflight.MAGIC, 2, 0, 0.0, 0.0), "not an in-flight file"),  # slots missing
        (inflight.HEADER.pack(inflight.MAGIC, 0, 0, 0.0, 0.0), "not an in-flight file"),  # no slot
        (inflight.HEADER.pack(inflight.MAGIC, 1025, 0, 0.0, 0.0) + bytes(1025 * 136), "not an in-flight file"),
        (inflight.HEADER.pack(b"AURAINF2", 1, 0, 0.0, 0.0) + bytes(136), "not an in-flight file"),
        (inflight.HEADER.pack(inflight.MAGIC, 1, 0, 0.0, 0.0) + bytes(137), "not an in-flight file"),
        (
            inflight.HEADER.pack(inflight.MAGIC, 1, 0, 0.0, 0.0) + inflight.SLOT.pack(-1.0, 1.0, b"GET", b"/\xff"),
            "in-flight labels are not UTF-8",
        ),
        (
            inflight.HEADER.pack(inflight.MAGIC, 1, 0, 0.0, 0.0) + inflight.SLOT.pack(-1.0, 1.0, b"\xff", b"/"),
            "in-flight labels are not UTF-8",
        ),
    ],
)
def test_parse_refuses_what_is_not_an_in_flight_file(data, message):
    with pytest.raises(DamagedFileError, match=f"^{message}$"):
        inflight.parse(data)


def test_scrape_files_gives_each_workers_busy_time_and_running_requests_and_skips_the_rest(metrics_dir, monkeypatch):
    d = str(metrics_dir)
    inflight.scrape_files(d, [], 0.0, print)  # forget what earlier tests reported
    f = InflightFile(d, "3101-1", 4)
    g = InflightFile(d, "3102-1", 4)
    f.end(f.begin(10.0, b"GET"), 2.0)
    f.begin(20.0, b"POST")
    (metrics_dir / ".aura-inflight.3103-1").write_bytes(b"junk")
    damaged = []
    names = [".aura-inflight.3100-1", ".aura-inflight.3103-1", ".aura-inflight.3101-1", ".aura-inflight.3102-1"]
    assert inflight.scrape_files(d, names, 25.0, lambda path, why: damaged.append((path, why))) == [
        (f.path, ("counter", "", "3101-1"), [(BUSY_KEY, 7.0, 0.0)]),
        (f.path, ("gauge", "livesum", "3101-1"), [(inflight.WORKERS_BUSY_KEY, 1.0, 0.0)]),
        (g.path, ("counter", "", "3102-1"), [(BUSY_KEY, 0.0, 0.0)]),
        (g.path, ("gauge", "livesum", "3102-1"), [(inflight.WORKERS_BUSY_KEY, 0.0, 0.0)]),
    ]  # the missing file (gone since the listing) and the damaged one are skipped
    assert damaged == [(str(metrics_dir / ".aura-inflight.3103-1"), "4 bytes, shorter than the in-flight header")]

    def fails(path):
        raise OSError  # an error without a message is named by its type

    monkeypatch.setattr(inflight, "read", fails)
    damaged.clear()
    assert inflight.scrape_files(d, names[2:], 25.0, lambda path, why: damaged.append((path, why))) == []
    assert damaged == [(f.path, "OSError"), (g.path, "OSError")]


def test_a_workers_busy_time_is_held_at_the_highest_reported_until_its_file_goes(metrics_dir):
    d = str(metrics_dir)
    inflight.scrape_files(d, [], 0.0, print)
    f = InflightFile(d, "3104-1", 4)
    f.begin(100.0, b"GET")
    name = [inflight.file_name("3104-1")]

    def busy(now):
        [(_, _, [(_, value, _)]), _] = inflight.scrape_files(d, name, now, print)
        return value

    assert busy(110.0) == 10.0
    assert busy(105.0) == 10.0  # a reader whose clock lags: never lower than already reported
    assert inflight.busy_at_death("3104-1", inflight.stamp_ended(f.path, 104.0)) == 10.0
    os.unlink(f.path)
    inflight.scrape_files(d, [], 0.0, print)  # merged: forgotten
    assert "3104-1" not in inflight._reported
    InflightFile(d, "3104-1", 4)  # the same name again starts from its own time
    assert busy(0.0) == 0.0


def test_busy_at_death_of_a_worker_never_scraped_is_its_busy_time_up_to_the_stamp(metrics_dir):
    f = InflightFile(str(metrics_dir), "3105-1", 4)
    f.end(f.begin(1.0, b"GET"), 0.25)
    f.begin(1.5, b"GET")
    assert inflight.busy_at_death("3105-1", inflight.stamp_ended(f.path, 2.0)) == 0.75


def test_open_for_worker_makes_the_file_this_workers_current_one(metrics_dir, monkeypatch):
    monkeypatch.setattr(inflight, "current", None)
    f = inflight.open_for_worker(str(metrics_dir), "3106-1", 8)
    assert isinstance(f, InflightFile) and inflight.current is f
    assert f.path == str(metrics_dir / ".aura-inflight.3106-1") and inflight.read(f.path) == _idle(8)


def test_a_forked_child_does_not_inherit_the_lock_a_parent_thread_held(metrics_dir, monkeypatch):
    held = inflight._reported_lock
    monkeypatch.setattr(inflight, "_reported_lock", held)  # the parent's lock again after the test
    held.acquire()  # a thread of the parent held it when the process forked
    try:
        inflight._forked()  # what os.register_at_fork runs in the child
        done = []
        scrape = threading.Thread(target=lambda: done.append(inflight.scrape_files(str(metrics_dir), [], 0.0, print)))
        scrape.start()
        scrape.join(5)
        assert done == [[]]  # the child's scrape did not wait on the inherited lock
    finally:
        held.release()
