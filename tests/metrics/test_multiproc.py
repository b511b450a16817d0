"""aura.metrics.multiproc: identity, equivalence with stock prometheus_client, merges, damage, set-up."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import threading

import pytest

import aura.metrics as multiproc
from aura.metrics.fileformat import ARCHIVE_NAME, GATE_NAME, LOCK_NAME, MARKER_NAME, read_db_file

COUNTING = ("t_requests", "t_latency_seconds", "t_payload_bytes")


def _archive_doc(directory):
    return json.loads((directory / ARCHIVE_NAME).read_text())


# --------------------------------------------------------------------------- identity


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
    script = (
        mpkit.STUB_PACKAGES
        + """
import os
import aura.metrics as multiproc
multiproc.install_value_class()
from prometheus_client import Counter
c = Counter("early", "Created in the master.")
pid = os.fork()
if pid == 0:
    multiproc.use_worker_identifier(multiproc.worker_identifier(os.getpid(), 7))
    c.inc(3)
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0
print(os.getpid(), pid)
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=mpkit.env(metrics_dir), capture_output=True, text=True, check=True
    )
    _master, child = proc.stdout.split()
    # The master is no worker: it writes nothing (it used to leave a file of zeros per type).
    assert {p.name for p in metrics_dir.glob("*.db")} == {f"counter_{child}-7.db"}
    assert [v for _, v, _ in read_db_file(str(metrics_dir / f"counter_{child}-7.db"))] == [3.0]


def _run(mpkit, metrics_dir, script: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", mpkit.STUB_PACKAGES + script],
        env=mpkit.env(metrics_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_a_process_forked_from_a_worker_writes_its_own_file(metrics_dir, mpkit):
    # e.g. a subprocess started with fork by a view: it must not add into the worker's file.
    worker, child = _run(
        mpkit,
        metrics_dir,
        """
import os
import aura.metrics as multiproc
multiproc.use_worker_identifier("900-1")
from prometheus_client import Counter
c = Counter("forked", "Written before and after a fork.")
c.inc(1)
pid = os.fork()
if pid == 0:
    c.inc(10)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
c.inc(1)
print(os.getpid(), pid)
""",
    )
    assert [v for _, v, _ in read_db_file(str(metrics_dir / "counter_900-1.db"))] == [2.0]
    assert [v for _, v, _ in read_db_file(str(metrics_dir / f"counter_{child}.db"))] == [10.0]  # its own


def test_a_fork_while_another_thread_records_cannot_deadlock_the_child(metrics_dir, mpkit):
    # The child gets a fresh lock: the copy it inherits may be held by a thread it does not have.
    _run(
        mpkit,
        metrics_dir,
        """
import os, signal, threading
import aura.metrics as multiproc
from aura.metrics.values import _Process
multiproc.use_worker_identifier("901-1")
from prometheus_client import Counter
c = Counter("locked", "Written by a child forked while the lock was held.")
held, release = threading.Event(), threading.Event()
def hold():
    with _Process.lock:
        held.set()
        release.wait(30)
threading.Thread(target=hold).start()
held.wait(30)
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # a deadlocked child dies of SIGALRM instead of hanging the test
    c.inc(1)
    os._exit(0)
release.set()
assert os.waitpid(pid, 0)[1] == 0, "the child could not write"
print(pid)
""",
    )


def test_counts_kept_while_files_cannot_be_created_are_written_once_they_can(tmp_path, mpkit):
    directory = tmp_path / "not-yet"  # gone, as a volume that is not mounted yet
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            mpkit.STUB_PACKAGES
            + f"""
import os
import aura.metrics as multiproc
from aura.metrics import values as mmap_values
mmap_values.RETRY_SECONDS = 0.0
multiproc.use_worker_identifier("903-1")
from prometheus_client import Counter
c = Counter("kept", "Counted while the directory was missing.")
c.inc(5)
assert not os.path.exists({str(directory)!r})
os.makedirs({str(directory)!r})
c.inc(1)
""",
        ],
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
    child = _run(
        mpkit,
        metrics_dir,
        f"""
import os
import aura.metrics as multiproc
from aura.metrics import values as mmap_values
mmap_values.RETRY_SECONDS = 0.0
multiproc.use_worker_identifier("904-1")
from prometheus_client import Counter
c = Counter("inherited", "Counted by a parent, then by its child.")
c.inc(3)
pid = os.fork()
if pid == 0:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(later)!r}  # the child's files cannot be created
    c.inc(1)
    os.makedirs({str(later)!r})
    c.inc(1)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
print(pid)
""",
    )[0]
    assert [v for _, v, _ in read_db_file(str(metrics_dir / "counter_904-1.db"))] == [3.0]
    assert [v for _, v, _ in read_db_file(str(later / f"counter_{child}.db"))] == [2.0]  # not 3 + 2


def test_request_recorder_writes_what_inc_and_observe_write(metrics_dir, mpkit):
    # The HTTP hot path bypasses Counter.inc and Histogram.observe: same files, same numbers.
    _run(
        mpkit,
        metrics_dir,
        """
import aura.metrics as multiproc
multiproc.use_worker_identifier("902-1")
from prometheus_client import Counter, Histogram
from aura.metrics.values import request_recorder
buckets = (0.001, 0.01, 0.1, 1.0)
durations = [0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.99, 1.0, 7.5, 1e9]
fast = request_recorder(Counter("fast", "h", ["m"]).labels("GET"),
                        Histogram("fast_s", "h", ["m"], buckets=buckets).labels("GET"))
count, hist = Counter("slow", "h", ["m"]).labels("GET"), Histogram("slow_s", "h", ["m"], buckets=buckets).labels("GET")
for d in durations:
    fast(d)
    count.inc()
    hist.observe(d)
""",
    )
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


# --------------------------------------------------------------------------- equivalence


def test_equivalence_with_stock_collector_before_and_after_merges(metrics_dir, mpkit, tmp_path):
    ids = {k: f"{5000 + k}-{k}" for k in (1, 2, 3, 4)}
    mpkit.run_workers(metrics_dir, [(ident, k) for k, ident in ids.items()])

    # Nothing merged: identical samples, values, types and help texts to MultiProcessCollector.
    before = mpkit.scrape(metrics_dir)
    assert before == mpkit.scrape(metrics_dir, collector="stock")
    assert mpkit.families(metrics_dir) == mpkit.families(metrics_dir, collector="stock")

    # Workers 1..3 die and are merged one by one; worker 4 stays live. The reference is stock
    # prometheus_client over a copy of the unmerged files, with the dead marked dead.
    dead = [ids[1], ids[2], ids[3]]
    reference = mpkit.stock_after_death(metrics_dir, dead, tmp_path / "reference")
    for ident in dead:
        stats = multiproc.merge_dead_worker(str(metrics_dir), ident)
        assert stats.merged_identifiers == (ident,)
        assert stats.merged_files == 13  # counter, histogram, summary and 10 gauge modes
    after = mpkit.scrape(metrics_dir)
    assert sorted(p.name for p in metrics_dir.glob("*.db")) == sorted(
        p.name for p in metrics_dir.glob(f"*_{ids[4]}.db")
    )
    assert after == pytest.approx(reference)
    assert all(after[k] >= before[k] for k in after if k[0].startswith(COUNTING))

    # Counters, histograms and summaries are exactly the sums.
    counting = {k: v for k, v in after.items() if k[0].startswith(COUNTING)}
    assert counting == mpkit.expected_worker_totals(ids)

    # Gauges per mode: live modes only from the live worker, 'all' keeps every dead pid label.
    x = (("kind", "x"),)
    assert after[("t_g_sum", x)] == 11 + 21 + 31 + 41
    assert after[("t_g_min", x)] == 11
    assert after[("t_g_max", x)] == 41
    assert after[("t_g_livesum", x)] == after[("t_g_livemin", x)] == after[("t_g_livemax", x)] == 41
    assert after[("t_g_livemostrecent", x)] == 41
    assert {dict(k[1])["pid"]: v for k, v in after.items() if k[0] == "t_g_all"} == {
        ids[1]: 11,
        ids[2]: 21,
        ids[3]: 31,
        ids[4]: 41,
    }
    assert [dict(k[1])["pid"] for k in after if k[0] == "t_g_liveall"] == [ids[4]]


def test_gauge_modes_fold_like_stock(metrics_dir, mpkit, tmp_path):
    # Direct writes with chosen timestamps: B is most recent although merged first.
    lab = {"kind": "x"}
    workers = {"1-1": (5.0, 100.0), "2-2": (7.0, 300.0), "3-3": (-2.0, 200.0), "4-4": (9.0, 250.0)}
    for ident, (value, ts) in workers.items():
        for mode in (
            "all",
            "liveall",
            "min",
            "livemin",
            "max",
            "livemax",
            "sum",
            "livesum",
            "mostrecent",
            "livemostrecent",
        ):
            entry = (f"g_{mode}", f"g_{mode}", lab, value, ts)
            mpkit.write_db(metrics_dir, "gauge", ident, [entry], mode=mode)
    assert mpkit.scrape(metrics_dir) == mpkit.scrape(metrics_dir, collector="stock")

    expected = mpkit.stock_after_death(metrics_dir, ["2-2", "3-3"], tmp_path / "ref1")
    expected_all_dead = mpkit.stock_after_death(metrics_dir, list(workers), tmp_path / "ref2")
    multiproc.merge_dead_worker(str(metrics_dir), "2-2")
    multiproc.merge_dead_worker(str(metrics_dir), "3-3")
    got = mpkit.scrape(metrics_dir)
    assert got == expected
    x = (("kind", "x"),)
    assert got[("g_mostrecent", x)] == 7.0  # from dead 2-2 (ts 300), kept by timestamp
    assert got[("g_min", x)] == -2.0 and got[("g_max", x)] == 9.0 and got[("g_sum", x)] == 19.0
    assert got[("g_livemostrecent", x)] == 9.0  # live 4-4 beats live 1-1 by timestamp
    assert got[("g_all", (("kind", "x"), ("pid", "3-3")))] == -2.0

    multiproc.merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert mpkit.scrape(metrics_dir) == expected_all_dead
    assert not list(metrics_dir.glob("*.db"))


def test_exposition_text_matches_stock(metrics_dir, mpkit):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    mpkit.run_workers(metrics_dir, [("7-1", 1), ("7-2", 2)])
    texts = []
    for cls in (multiproc.AuraMultiProcessCollector, MultiProcessCollector):
        reg = CollectorRegistry()
        if cls is MultiProcessCollector:
            cls(reg, str(metrics_dir))
        else:
            cls(reg, str(metrics_dir), self_metrics=False)
        texts.append(sorted(generate_latest(reg).decode().splitlines()))
    assert texts[0] == texts[1]


# --------------------------------------------------------------------------- merges


def test_counters_never_go_backwards_across_merges(metrics_dir, mpkit):
    ids = [f"{100 + i}-{i}" for i in range(1, 7)]
    for i, ident in enumerate(ids, start=1):
        mpkit.write_http_worker(metrics_dir, ident, k=i)
    expected = mpkit.scrape(metrics_dir)
    previous = expected
    for ident in ids[:-1]:
        multiproc.merge_dead_worker(str(metrics_dir), ident)
        current = mpkit.scrape(metrics_dir)
        assert current.keys() == previous.keys()
        assert all(current[k] >= previous[k] for k in current)
        assert current == expected  # all dead already: totals are constant
        previous = current


def test_merge_is_idempotent_and_ignores_unknown_identifier(metrics_dir, mpkit):
    mpkit.write_http_worker(metrics_dir, "9-1", k=1)
    before = mpkit.scrape(metrics_dir)
    assert multiproc.merge_dead_worker(str(metrics_dir), "9-1").merged_files == 2
    again = multiproc.merge_dead_worker(str(metrics_dir), "9-1")
    assert again.merged_identifiers == () and again.merged_files == 0
    assert multiproc.mark_worker_dead(str(metrics_dir), "77-7").merged_files == 0
    assert mpkit.scrape(metrics_dir) == before
    assert _archive_doc(metrics_dir)["stats"]["merges"] == 1


def test_merge_all_dead_respects_live_identifiers_and_running_pids(metrics_dir, mpkit):
    dead_pid = mpkit.dead_pid()
    live_pid = os.getpid()
    mpkit.write_http_worker(metrics_dir, f"{dead_pid}-1", k=1)  # dead: merged
    mpkit.write_http_worker(metrics_dir, f"{live_pid}-2", k=2)  # pid running: kept
    mpkit.write_http_worker(metrics_dir, f"{dead_pid}-3", k=3)  # listed live: kept
    mpkit.write_http_worker(metrics_dir, "sidecar", k=4)  # unknown owner: kept
    before = mpkit.scrape(metrics_dir)
    stats = multiproc.merge_all_dead(str(metrics_dir), [f"{dead_pid}-3"])
    assert stats.merged_identifiers == (f"{dead_pid}-1",)
    assert mpkit.scrape(metrics_dir) == before
    stats = multiproc.merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert set(stats.merged_identifiers) == {f"{live_pid}-2", f"{dead_pid}-3", "sidecar"}
    assert mpkit.scrape(metrics_dir) == before


def test_merge_dead_worker_also_folds_bare_pid_files_of_that_pid(metrics_dir, mpkit):
    # Metric objects created before use_worker_identifier() write prometheus_client's pid files.
    dead_pid = mpkit.dead_pid()
    mpkit.write_http_worker(metrics_dir, f"{dead_pid}-5", k=1)
    mpkit.write_db(metrics_dir, "counter", str(dead_pid), [("early", "early_total", {}, 3.0)])
    mpkit.write_db(metrics_dir, "counter", str(os.getpid()), [("early", "early_total", {}, 4.0)])
    before = mpkit.scrape(metrics_dir)
    stats = multiproc.merge_dead_worker(str(metrics_dir), f"{dead_pid}-5")
    assert set(stats.merged_identifiers) == {f"{dead_pid}-5", str(dead_pid)}
    assert (metrics_dir / f"counter_{os.getpid()}.db").exists()  # running pid: left alone
    assert mpkit.scrape(metrics_dir) == before


def test_self_metrics(metrics_dir, mpkit):
    for i in (1, 2, 3):
        mpkit.write_http_worker(metrics_dir, f"3{i}-{i}", k=i)
    multiproc.merge_dead_worker(str(metrics_dir), "31-1")
    multiproc.merge_dead_worker(str(metrics_dir), "32-2")
    got = mpkit.scrape(metrics_dir, include_self=True)
    assert got[("aura_metrics_merges_total", ())] == 2
    assert got[("aura_metrics_merged_files_total", ())] == 4
    assert got[("aura_metrics_merge_duration_seconds_count", ())] == 2
    assert got[("aura_metrics_merge_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert 0 < got[("aura_metrics_merge_duration_seconds_sum", ())] < 5
    assert got[("aura_metrics_directory_files", ())] == 3  # two files of 33-3 plus the archive
    assert got[("aura_metrics_damaged_files_skipped_total", (("stage", "merge"),))] == 0
    # Bounded labels only: nothing per file or per pid.
    assert all(set(dict(k[1])) <= {"le", "stage"} for k in got if k[0].startswith("aura_metrics_"))


def test_archive_is_parsed_once_while_unchanged(metrics_dir, mpkit, monkeypatch):
    mpkit.write_http_worker(metrics_dir, "1-1", k=1)
    mpkit.write_http_worker(metrics_dir, "2-2", k=2)
    multiproc.merge_dead_worker(str(metrics_dir), "1-1")
    builds = []
    real = multiproc.collector._build_view
    monkeypatch.setattr(multiproc.collector, "_build_view", lambda *a: builds.append(1) or real(*a))
    first = mpkit.scrape(metrics_dir)
    assert mpkit.scrape(metrics_dir) == first and mpkit.scrape(metrics_dir) == first
    assert len(builds) == 1
    multiproc.merge_dead_worker(str(metrics_dir), "2-2")  # new archive: cache invalidated
    assert mpkit.scrape(metrics_dir) == first
    assert len(builds) == 2


# --------------------------------------------------------------------------- damaged files


def _damage(metrics_dir, mpkit):
    """Five damaged files next to a good worker; returns their paths."""
    good = mpkit.write_db(metrics_dir, "counter", "1-1", [("c", "c_total", {"a": "1"}, 5.0)])
    assert good.exists()
    truncated = mpkit.write_db(
        metrics_dir, "counter", "2-2", [("c", "c_total", {"a": str(i)}, 1.0) for i in range(200)]
    )
    used = int.from_bytes(truncated.read_bytes()[:4], "little")
    with open(truncated, "r+b") as f:
        f.truncate(used - 10)
    rnd = metrics_dir / "histogram_3-3.db"
    rnd.write_bytes(random.Random(1234).randbytes(4096))
    empty = metrics_dir / "counter_4-4.db"
    empty.write_bytes(b"")
    badkey = mpkit.write_db(metrics_dir, "gauge", "5-5", [("g", "g", {}, 1.0)], mode="all")
    data = bytearray(badkey.read_bytes())
    data[12:14] = b"\xff\xfe"  # inside the key: no longer UTF-8 JSON
    badkey.write_bytes(bytes(data))
    return [truncated, rnd, empty, badkey]


def test_damaged_files_are_skipped_logged_and_counted(metrics_dir, mpkit, caplog):
    damaged = _damage(metrics_dir, mpkit)
    (metrics_dir / "notes.db").write_bytes(b"not a prometheus file")
    with pytest.raises(Exception):  # noqa: B017 - the stock collector fails the whole scrape
        mpkit.scrape(metrics_dir, collector="stock")

    with caplog.at_level(logging.WARNING, logger="aura.metrics"):
        got = mpkit.scrape(metrics_dir, include_self=True)
    assert got[("c_total", (("a", "1"),))] == 5.0
    assert not [k for k in got if k[0] in ("c_total",) and k[1] != (("a", "1"),)]
    logged = caplog.text
    for path in [*damaged, metrics_dir / "notes.db"]:
        assert path.name in logged
    again = mpkit.scrape(metrics_dir, include_self=True)
    skipped = ("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))
    assert again[skipped] - got[skipped] == 5


def test_merging_a_damaged_dead_file_discards_it_without_changing_values(metrics_dir, mpkit):
    _damage(metrics_dir, mpkit)
    before = mpkit.scrape(metrics_dir)
    stats = multiproc.merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.damaged_files == 4 and stats.merged_files == 5
    assert not list(metrics_dir.glob("*.db"))
    got = mpkit.scrape(metrics_dir, include_self=True)
    assert got[("aura_metrics_damaged_files_skipped_total", (("stage", "merge"),))] == 4
    assert {k: v for k, v in got.items() if not k[0].startswith("aura_")} == before


def test_damaged_archive_is_skipped_then_replaced(metrics_dir, mpkit, caplog):
    mpkit.write_http_worker(metrics_dir, "1-1", k=1)
    multiproc.merge_dead_worker(str(metrics_dir), "1-1")
    (metrics_dir / ARCHIVE_NAME).write_bytes(b"{garbage")
    with caplog.at_level(logging.WARNING, logger="aura.metrics"):
        assert mpkit.scrape(metrics_dir) == {}
    assert ARCHIVE_NAME in caplog.text
    mpkit.write_http_worker(metrics_dir, "2-2", k=2)
    multiproc.merge_dead_worker(str(metrics_dir), "2-2")
    assert (metrics_dir / "aura-archive.json.corrupt").exists()
    assert _archive_doc(metrics_dir)["absorbed"] == ["2-2"]


# --------------------------------------------------------------------------- prepare_directory


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
