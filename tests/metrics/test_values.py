"""aura.metrics.values: how a value is stored - one file per worker lifetime, forks, storage failures,
and the request recorder that writes what inc and observe write."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import values as stock_values
from prometheus_client.mmap_dict import mmap_key

import aura.metrics as multiproc
from aura.metrics import values
from aura.metrics.fileformat import read_db_file
from aura.metrics.locking import MetricsDirectoryError
from tests.support import programs


def test_worker_identifier_is_unique_per_lifetime_and_has_no_underscore():
    assert multiproc.worker_identifier(1234, 7) == "1234-7"
    assert multiproc.worker_identifier(1234, 7) != multiproc.worker_identifier(1234, 8)
    assert "_" not in multiproc.worker_identifier(99999, 123456)
    with pytest.raises(ValueError):
        multiproc.worker_identifier(0, 1)
    with pytest.raises(ValueError):
        multiproc.use_worker_identifier("12_3", "/nonexistent")


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


P = values._Process


def _stored(path) -> list[float]:
    return [v for _, v, _ in read_db_file(str(path))]


def _counter(name="c"):
    return Counter(name, "Help.", registry=CollectorRegistry())


def test_without_an_identity_values_stay_in_memory(worker):
    counter = _counter()
    counter.inc(2)
    counter.inc(0.5)
    assert counter._value.get() == 2.5
    assert values.current_identifier() is None
    assert list(worker.iterdir()) == [] or not list(worker.glob("*.db"))


def test_a_worker_writes_its_values_into_files_named_after_it(worker):
    values.set_identifier("4242-1", str(worker))
    counter = _counter()
    counter.inc(3)
    gauge = Gauge("g", "Help.", registry=CollectorRegistry(), multiprocess_mode="mostrecent")
    gauge.set(7.5)
    assert values.current_identifier() == "4242-1"
    assert read_db_file(str(worker / "counter_4242-1.db")) == [(mmap_key("c", "c_total", (), (), "Help."), 3.0, 0.0)]
    plain = Gauge("plain", "Help.", registry=CollectorRegistry(), multiprocess_mode="all")
    plain.set(3.0)
    assert [(v, ts) for _, v, ts in read_db_file(str(worker / "gauge_all_4242-1.db"))] == [(3.0, 0.0)]
    [(_, value, timestamp)] = read_db_file(str(worker / "gauge_mostrecent_4242-1.db"))
    assert value == 7.5 and abs(timestamp - time.time()) < 60  # mostrecent gauges carry the time
    gauge._value.set(1.5, 99.0)
    assert [(v, ts) for _, v, ts in read_db_file(str(worker / "gauge_mostrecent_4242-1.db"))] == [(1.5, 99.0)]
    counter.inc(1)
    assert _stored(worker / "counter_4242-1.db") == [4.0]
    assert counter._value.get() == 4.0


def test_a_value_made_before_the_identity_follows_it_and_counts_from_its_file(worker):
    early = _counter()  # made in the master, before fork
    early.inc(5)
    values.set_identifier("4242-2", str(worker))
    early.inc(1)
    # A new identity starts from its own (empty) file, not from what the master counted.
    assert _stored(worker / "counter_4242-2.db") == [1.0]
    assert early._value.get() == 1.0
    values.set_identifier("4242-3", str(worker))
    assert early._value.get() == 0.0
    early.inc(2)
    assert _stored(worker / "counter_4242-3.db") == [2.0] and _stored(worker / "counter_4242-2.db") == [1.0]
    gauge = Gauge("early_g", "Help.", registry=CollectorRegistry(), multiprocess_mode="all")
    gauge.set(4.0)
    values.set_identifier("4242-12", str(worker))
    gauge.set(5.0)  # set() follows the identity too
    assert _stored(worker / "gauge_all_4242-12.db") == [5.0] and _stored(worker / "gauge_all_4242-3.db") == [4.0]


def test_an_identity_set_then_a_fork_still_reopens_untouched_values(worker):
    untouched = _counter("untouched")  # made before the identity, not written since
    values.set_identifier("4242-11", str(worker))
    values._forked()  # e.g. Gunicorn's post_fork, then a fork of the worker itself
    untouched.inc(1)
    assert _stored(worker / "counter_4242-11.db") == [1.0]


def test_a_second_value_of_the_same_key_reads_what_the_file_holds(worker):
    values.set_identifier("4242-4", str(worker))
    _counter("same").inc(6)
    again = _counter("same")
    assert again._value.get() == 6.0
    again.inc(1)
    assert _stored(worker / "counter_4242-4.db") == [7.0]


def test_an_identifier_set_in_another_process_names_files_by_this_pid(worker):
    P.identity, P.directory = ("4242-5", os.getpid() + 1), str(worker)  # as seen in a process forked from that worker
    P.generation += 1
    assert values.current_identifier() == str(os.getpid())
    _counter().inc(1)
    assert _stored(worker / f"counter_{os.getpid()}.db") == [1.0]


def test_use_worker_identifier_checks_the_name_and_the_directory(worker, monkeypatch):
    with pytest.raises(ValueError):
        values.use_worker_identifier("12_3", str(worker))
    with pytest.raises(MetricsDirectoryError) as missing:
        values.use_worker_identifier("12-3", "")
    assert (
        str(missing.value) == "no metrics directory; set PROMETHEUS_MULTIPROC_DIR to the instance's metrics directory"
    )
    values.use_worker_identifier("12-3", str(worker))
    assert stock_values.ValueClass is values.AuraValue
    assert values.current_identifier() == "12-3"


def test_install_value_class_falls_back_to_stock_on_an_untested_prometheus_client(worker, monkeypatch):
    from aura.metrics import _compat

    assert values.install_value_class() is None
    assert stock_values.ValueClass is values.AuraValue
    monkeypatch.setattr(_compat, "problem", lambda: "prometheus_client 9.9 is not one this was tested against")
    assert values.install_value_class() == "prometheus_client 9.9 is not one this was tested against"
    assert stock_values.ValueClass is not values.AuraValue


def test_storage_failures_count_in_memory_and_are_written_once_the_files_open(tmp_path, worker, monkeypatch, caplog):
    missing = tmp_path / "not-mounted-yet"
    monkeypatch.setattr(values, "RETRY_SECONDS", 3600.0)
    P.degraded_logged = False
    values.set_identifier("4242-6", str(missing))
    counter = _counter()
    with caplog.at_level(logging.DEBUG, logger="aura.metrics"):
        counter.inc(2)
        counter.inc(3)
        missing.mkdir()
        counter.inc(1)  # not retried yet: RETRY_SECONDS has not passed
        assert not (missing / "counter_4242-6.db").exists()
        P.retry_at = 0.0  # the interval has passed
        counter.inc(1)
    assert _stored(missing / "counter_4242-6.db") == [7.0]
    assert counter._value.get() == 7.0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "metrics are degraded" in errors[0] and "No such file or directory" in errors[0]
    assert any("metrics recovered" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert P.degraded_logged is False  # a later failure is reported again


def test_a_retry_stops_at_the_first_value_that_still_fails(tmp_path, worker, monkeypatch):
    missing = tmp_path / "gone"
    values.set_identifier("4242-7", str(missing))
    first, second = _counter("first"), _counter("second")
    first.inc(1)
    second.inc(1)
    P.retry_at = 0.0
    first.inc(1)  # the directory is still missing: nothing opens, the next retry waits
    assert first._value._file is None and second._value._file is None
    assert P.retry_at > 0
    assert P.degraded_logged is True


def test_a_value_is_written_only_in_its_own_slot(worker):
    values.set_identifier("4242-8", str(worker))
    registry = CollectorRegistry()
    labelled = Counter("l", "Help.", ["k"], registry=registry)
    for i in range(50):
        labelled.labels(str(i)).inc(i)
    assert sorted(_stored(worker / "counter_4242-8.db")) == [float(i) for i in range(50)]
    files = {id(labelled.labels(str(i))._value._file) for i in range(50)}
    assert len(files) == 1 and len(P.files) == 1  # one open file per type and mode, shared


def test_request_recorder_writes_what_inc_observe_and_the_busy_metrics_write(worker):
    values.set_identifier("4242-9", str(worker))
    registry = CollectorRegistry()
    buckets = (0.001, 0.01, 0.1, 1.0)
    count = Counter("req", "Help.", ["m"], registry=registry).labels("GET")
    hist = Histogram("req_s", "Help.", ["m"], buckets=buckets, registry=registry).labels("GET")
    busy_seconds = Counter("busy_s", "Help.", registry=registry)
    busy = Gauge("busy", "Help.", registry=registry, multiprocess_mode="livesum")
    record = values.request_recorder(count, hist, busy_seconds, busy)
    durations = [0.0, 0.001, 0.0010001, 0.05, 0.1, 7.5]
    for d in durations:
        busy.inc()
        record(d)
    assert count._value.get() == 6 and busy._value.get() == 0
    assert busy_seconds._value.get() == pytest.approx(sum(durations))
    assert hist._sum.get() == pytest.approx(sum(durations))
    assert [b.get() for b in hist._buckets] == [2, 1, 2, 0, 1]
    on_disk = {k.split('"')[3]: v for k, v, _ in read_db_file(str(worker / "counter_4242-9.db"))}
    assert on_disk == {"req_total": 6.0, "busy_s_total": pytest.approx(sum(durations))}
    assert sorted(_stored(worker / "histogram_4242-9.db")) == sorted([2.0, 1.0, 2.0, 0.0, 1.0, sum(durations)])
    assert _stored(worker / "gauge_livesum_4242-9.db") == [0.0]


def test_request_recorder_without_the_busy_metrics(worker):
    values.set_identifier("4242-10", str(worker))
    registry = CollectorRegistry()
    count = Counter("r2", "Help.", registry=registry)
    hist = Histogram("r2_s", "Help.", buckets=(1.0,), registry=registry)
    record = values.request_recorder(count, hist)
    record(0.5)
    record(2.0)
    assert count._value.get() == 2 and hist._sum.get() == 2.5
    assert [b.get() for b in hist._buckets] == [1, 1]


def _request_metrics():
    registry = CollectorRegistry()
    count = Counter("rq", "Help.", registry=registry)
    hist = Histogram("rq_s", "Help.", buckets=(1.0,), registry=registry)
    return count, hist


def test_a_request_recorder_made_before_the_identity_writes_to_the_files_named_after_it(worker):
    count, hist = _request_metrics()
    record = values.request_recorder(count, hist)  # bound once per label set, then reused
    values.set_identifier("4242-13", str(worker))
    record(0.5)
    values.set_identifier("4242-14", str(worker))  # a new identity: the recorder moves on to its files
    record(2.0)
    assert _stored(worker / "counter_4242-13.db") == [1.0] and _stored(worker / "counter_4242-14.db") == [1.0]
    assert sorted(_stored(worker / "histogram_4242-14.db")) == [0.0, 1.0, 2.0]  # le=1, +Inf, sum


def test_requests_recorded_while_storage_fails_are_written_once_it_recovers(tmp_path, worker, monkeypatch):
    missing = tmp_path / "not-mounted-yet"
    monkeypatch.setattr(values, "RETRY_SECONDS", 3600.0)
    values.set_identifier("4242-15", str(missing))
    count, hist = _request_metrics()
    record = values.request_recorder(count, hist)
    record(0.5)  # no file: every value of the request still counts, in memory
    record(2.0)
    assert count._value.get() == 2 and hist._sum.get() == 2.5 and [b.get() for b in hist._buckets] == [1, 1]
    missing.mkdir()
    P.retry_at = 0.0  # the retry interval has passed
    record(0.25)
    assert _stored(missing / "counter_4242-15.db") == [3.0]
    assert sorted(_stored(missing / "histogram_4242-15.db")) == [1.0, 2.0, 2.75]  # le=1, +Inf, sum


def test_request_recorder_of_stock_values_uses_the_public_methods(monkeypatch):
    monkeypatch.setattr(stock_values, "ValueClass", stock_values.MutexValue)
    registry = CollectorRegistry()
    count = Counter("r3", "Help.", registry=registry)
    hist = Histogram("r3_s", "Help.", buckets=(1.0,), registry=registry)
    busy_seconds = Counter("r3_busy_s", "Help.", registry=registry)
    busy = Gauge("r3_busy", "Help.", registry=registry)
    record = values.request_recorder(count, hist, busy_seconds, busy)
    busy.inc(2)
    record(0.5)
    record(3.0)
    assert count._value.get() == 2 and hist._sum.get() == 3.5 and busy_seconds._value.get() == 3.5
    assert busy._value.get() == 0
    record_plain = values.request_recorder(count, hist)
    record_plain(0.25)
    assert count._value.get() == 3 and busy_seconds._value.get() == 3.5 and busy._value.get() == 0


def test_stored_values_and_exemplars(worker):
    registry = CollectorRegistry()
    counter = Counter("sv", "Help.", registry=registry)
    hist = Histogram("sv_s", "Help.", buckets=(1.0,), registry=registry)
    assert values.stored_values(counter) == (counter._value,)
    assert values.stored_values(hist) == (hist._sum, *hist._buckets)
    assert counter._value.set_exemplar(object()) is None and counter._value.get_exemplar() is None


def test_with_untested_internals_the_recorders_use_public_methods_only(worker, monkeypatch):
    from aura.metrics import _compat

    monkeypatch.setattr(_compat, "problem", lambda version=None: "prometheus_client 9.9 is not supported")
    count, hist = _request_metrics()
    busy_seconds, busy = Counter("bs", "Help.", registry=None), Gauge("b", "Help.", registry=None)
    assert values.stored_values(count) == values.stored_values(hist) == () == _compat.upper_bounds(hist)
    assert _compat.sample_rows(count, (), 1.0) == []
    record = values.request_recorder(count, hist, busy_seconds, busy)
    busy.inc()
    record(0.5)
    record(2.0)
    samples = {
        (s.name, s.labels.get("le")): s.value for m in (count, hist, busy_seconds, busy) for s in m.collect()[0].samples
    }
    assert samples[("rq_total", None)] == 2 and samples[("rq_s_sum", None)] == 2.5
    assert samples[("rq_s_bucket", "1.0")] == 1 and samples[("rq_s_bucket", "+Inf")] == 2
    assert samples[("bs_total", None)] == 2.5 and samples[("b", None)] == -1


def test_after_a_fork_the_child_gets_a_fresh_lock_and_reports_degradation_itself(worker):
    lock, generation = P.lock, P.generation
    P.degraded_logged = True
    values._forked()
    assert P.lock is not lock and P.generation == generation + 1 and P.degraded_logged is False
    with P.lock:  # a working lock, not held
        pass
