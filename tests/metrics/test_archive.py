"""aura.metrics.archive: dead workers merged into the archive - exact, idempotent, like stock for every
gauge mode, and safe with damaged files."""

from __future__ import annotations

import json
import logging
import math
import os
import time

import pytest

import aura.metrics as multiproc
from aura.metrics import archive
from aura.metrics.archive import (
    ARCHIVE_FORMAT,
    DURATION_BUCKETS,
    Archive,
    merge_all_dead,
    merge_dead_worker,
    parse_rows,
)
from aura.metrics.fileformat import ARCHIVE_NAME, CORRUPT_ARCHIVE_NAME, DamagedFileError
from aura.metrics.locking import directory_lock


def _archive_doc(directory):
    return json.loads((directory / ARCHIVE_NAME).read_text())


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


def test_merging_a_damaged_dead_file_discards_it_without_changing_values(metrics_dir, mpkit):
    mpkit.damage(metrics_dir)
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


def _doc(directory) -> dict:
    return json.loads((directory / ARCHIVE_NAME).read_bytes())


def _counter(mpkit, directory, ident, value, name="c"):
    return mpkit.write_db(directory, "counter", ident, [(name, f"{name}_total", {"a": "1"}, float(value))])


def _key(name="c", sample="c_total", labels=None):
    from prometheus_client.mmap_dict import mmap_key

    labels = labels or {"a": "1"}
    return mmap_key(name, sample, list(labels), list(labels.values()), f"{name} help.")


# --------------------------------------------------------------------------- folding


def test_counters_histograms_and_summaries_add_up_without_timestamps():
    a = Archive()
    for typ in ("counter", "histogram", "summary"):
        a.fold(typ, "", "1-1", [("k", 2.0, 11.0), ("j", 1.0, 0.0)])
        a.fold(typ, "", "2-2", [("k", 3.0, 12.0)])
        assert a.groups[(typ, "", "")] == {"k": [5.0, 0.0], "j": [1.0, 0.0]}


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("sum", {"k": [7.0, 10.0]}),
        ("min", {"k": [2.0, 10.0]}),
        ("max", {"k": [5.0, 10.0]}),
        ("mostrecent", {"k": [2.0, 30.0]}),
    ],
)
def test_gauges_fold_by_their_mode(mode, expected):
    a = Archive()
    for ident, value, ts in (("1-1", 5.0, 10.0), ("2-2", 2.0, 30.0), ("3-3", 0.0, 20.0)):
        a.fold("gauge", mode, ident, [("k", value, ts)])
    if mode == "sum":
        assert a.groups[("gauge", "sum", "")] == expected
    elif mode == "min":
        assert a.groups[("gauge", "min", "")] == {"k": [0.0, 10.0]}
    else:
        assert a.groups[("gauge", mode, "")] == expected


def test_gauge_max_and_min_keep_the_extreme_whatever_the_order():
    a = Archive()
    for value in (3.0, 9.0, 1.0, 9.0, 4.0):
        a.fold("gauge", "max", "1-1", [("k", value, 0.0)])
        a.fold("gauge", "min", "1-1", [("k", value, 0.0)])
    assert a.groups[("gauge", "max", "")]["k"][0] == 9.0
    assert a.groups[("gauge", "min", "")]["k"][0] == 1.0


def test_gauge_mostrecent_ignores_an_older_or_equal_write():
    a = Archive()
    a.fold("gauge", "mostrecent", "1-1", [("k", 1.0, 20.0)])
    a.fold("gauge", "mostrecent", "2-2", [("k", 2.0, 20.0)])
    a.fold("gauge", "mostrecent", "3-3", [("k", 3.0, 19.0)])
    assert a.groups[("gauge", "mostrecent", "")]["k"] == [1.0, 20.0]


def test_gauge_all_keeps_one_group_per_dead_worker_and_live_gauges_are_dropped():
    a = Archive()
    a.fold("gauge", "all", "1-1", [("k", 1.0, 5.0)])
    a.fold("gauge", "all", "2-2", [("k", 2.0, 6.0)])
    a.fold("gauge", "all", "2-2", [("k", 3.0, 4.0)])  # last write wins
    for live in ("liveall", "livesum", "livemin", "livemax", "livemostrecent"):
        a.fold("gauge", live, "1-1", [("k", 9.0, 0.0)])
    assert a.groups == {("gauge", "all", "1-1"): {"k": [1.0, 5.0]}, ("gauge", "all", "2-2"): {"k": [3.0, 4.0]}}


def test_merge_durations_land_in_the_first_bucket_at_or_above_them():
    a = Archive()
    for seconds in (0.0, 0.001, 0.0011, 0.3, 5.0, 99.0):
        a.observe_duration(seconds)
    counts = dict(zip(DURATION_BUCKETS, a.duration_counts, strict=True))
    assert counts[0.001] == 2 and counts[0.0025] == 1 and counts[0.5] == 1 and counts[5.0] == 1
    assert counts[math.inf] == 1 and sum(a.duration_counts) == 6
    assert a.duration_sum == pytest.approx(0.0 + 0.001 + 0.0011 + 0.3 + 5.0 + 99.0)


# --------------------------------------------------------------------------- the format


def _sample_archive() -> Archive:
    a = Archive(absorbed={"2-2", "1-1"}, merges=3, merged_files=7, damaged_files=2)
    a.fold("counter", "", "1-1", [("k", 2.5, 0.0)])
    a.fold("gauge", "all", "1-1", [("g", 4.0, 1.5)])
    a.fold("gauge", "max", "1-1", [("m", 6.0, 0.0)])
    a.observe_duration(0.002)
    a.observe_duration(math.inf)
    a.groups[("summary", "", "")] = {}  # an empty group is not written
    return a


def test_the_archive_document_is_exactly_the_documented_format():
    doc = json.loads(_sample_archive().to_bytes())
    assert doc == {
        "format": "aura-metrics-archive",
        "version": 1,
        "absorbed": ["1-1", "2-2"],
        "stats": {
            "merges": 3,
            "merged_files": 7,
            "damaged_files": 2,
            "merge_duration": {
                "buckets": [
                    [repr(b) if b != math.inf else "+Inf", 1 if b in (0.0025, math.inf) else 0]
                    for b in DURATION_BUCKETS
                ],
                "sum": math.inf,
            },
        },
        "groups": [
            {"type": "counter", "mode": "", "id": "", "values": [["k", 2.5, 0.0]]},
            {"type": "gauge", "mode": "all", "id": "1-1", "values": [["g", 4.0, 1.5]]},
            {"type": "gauge", "mode": "max", "id": "", "values": [["m", 6.0, 0.0]]},
        ],
    }
    assert b" " not in _sample_archive().to_bytes()  # compact separators


def test_an_archive_reads_back_as_it_was_written():
    a = _sample_archive()
    del a.groups[("summary", "", "")]
    b = Archive.from_bytes(a.to_bytes())
    assert b == a


def test_stored_bucket_bounds_that_changed_count_into_the_next_bound():
    doc = json.loads(Archive().to_bytes())
    doc["stats"]["merge_duration"]["buckets"] = [["0.003", 4], ["0.001", 1], ["7.5", 2], ["+Inf", 1]]
    b = Archive.from_bytes(json.dumps(doc).encode())
    counts = dict(zip(DURATION_BUCKETS, b.duration_counts, strict=True))
    assert counts[0.005] == 4 and counts[0.001] == 1 and counts[math.inf] == 3
    assert sum(b.duration_counts) == 8


@pytest.mark.parametrize(
    "change",
    [
        {"format": "something-else"},
        {"format": None},
        {"version": 2},
        {"version": 0},
        {"version": "1"},
    ],
)
def test_an_archive_of_another_format_or_version_is_damaged(change):
    doc = json.loads(_sample_archive().to_bytes())
    doc.update(change)
    with pytest.raises(DamagedFileError, match="not a version-1 archive"):
        Archive.from_bytes(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("absorbed"),
        lambda d: d["stats"].pop("merges"),
        lambda d: d["stats"].update(merged_files="many"),
        lambda d: d["stats"].update(damaged_files=None),
        lambda d: d["stats"]["merge_duration"].update(sum="x"),
        lambda d: d["stats"]["merge_duration"]["buckets"].append(["nan-ish", 1]),
        lambda d: d["groups"].append({"type": "info", "mode": "", "id": "", "values": []}),
        lambda d: d["groups"].append({"type": "gauge", "mode": "median", "id": "", "values": []}),
        lambda d: d["groups"][0].update(values=[["k", "NaN?", 0]]),
        lambda d: d["groups"][0].update(values=[["k", 1.0]]),
        lambda d: d.update(groups=None),
    ],
)
def test_a_malformed_archive_is_damaged_not_an_exception(damage):
    doc = json.loads(_sample_archive().to_bytes())
    damage(doc)
    with pytest.raises(DamagedFileError):
        Archive.from_bytes(json.dumps(doc).encode())


def test_bytes_that_are_not_an_archive_are_damaged():
    for data in (b"", b"[]", b"{garbage", b'"aura-metrics-archive"', b"\xff\xfe"):
        with pytest.raises(DamagedFileError):
            Archive.from_bytes(data)


def test_parse_rows_validates_names_and_returns_labels():
    key = _key("c", "c_total", {"a": "1", "b": "x"})
    assert parse_rows("counter", [(key, 2.0, 3.0)]) == [("c", "c_total", (("a", "1"), ("b", "x")), "c help.", 2.0, 3.0)]
    assert parse_rows("counter", [(key, 4.0, 0.0)])[0][4:] == (4.0, 0.0)  # cached parse, fresh values
    with pytest.raises(DamagedFileError, match="invalid metric name"):
        parse_rows("counter", [(_key("", "x_total"), 1.0, 0.0)])
    with pytest.raises(DamagedFileError):
        parse_rows("counter", [(_key("", "x_total"), 1.0, 0.0)])  # the verdict is cached too


# --------------------------------------------------------------------------- merging


def test_a_merge_reports_exactly_what_it_did(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    mpkit.write_db(metrics_dir, "gauge", "1-1", [("g", "g", {}, 5.0)], mode="livesum")
    _counter(mpkit, metrics_dir, "2-2", 3)
    _counter(mpkit, metrics_dir, "3-3", 4)
    (metrics_dir / ".aura-archive.crashed.tmp").write_bytes(b"half an archive")
    stats = merge_all_dead(str(metrics_dir), ["3-3"], check_pids=False)
    assert stats.merged_identifiers == ("1-1", "2-2")
    assert (stats.merged_files, stats.damaged_files, stats.temp_files_removed) == (3, 0, 1)
    assert stats.leftover_files_removed == 0 and stats.skipped_reason is None
    assert stats.duration_seconds > 0
    assert sorted(p.name for p in metrics_dir.glob("*.db")) == ["counter_3-3.db"]
    assert not (metrics_dir / ".aura-archive.crashed.tmp").exists()
    doc = _doc(metrics_dir)
    assert doc["absorbed"] == ["1-1", "2-2"]
    assert doc["stats"]["merges"] == 1 and doc["stats"]["merged_files"] == 3
    assert sum(n for _, n in doc["stats"]["merge_duration"]["buckets"]) == 1
    assert doc["groups"] == [{"type": "counter", "mode": "", "id": "", "values": [[_key(), 5.0, 0.0]]}]


def test_merge_statistics_accumulate_across_merges(metrics_dir, mpkit):
    for i, ident in enumerate(("1-1", "2-2", "3-3")):
        _counter(mpkit, metrics_dir, ident, i + 1)
        (metrics_dir / f"histogram_{ident}.db").write_bytes(b"damaged")
        merge_dead_worker(str(metrics_dir), ident)
    stats = _doc(metrics_dir)["stats"]
    assert (stats["merges"], stats["merged_files"], stats["damaged_files"]) == (3, 6, 3)
    assert sum(n for _, n in stats["merge_duration"]["buckets"]) == 3
    assert stats["merge_duration"]["sum"] > 0


def test_nothing_to_merge_writes_nothing(metrics_dir, mpkit):
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.merged_identifiers == () and stats.merged_files == 0
    assert not (metrics_dir / ARCHIVE_NAME).exists()
    _counter(mpkit, metrics_dir, "1-1", 1)
    assert merge_all_dead(str(metrics_dir), ["1-1"], check_pids=False).merged_identifiers == ()
    assert not (metrics_dir / ARCHIVE_NAME).exists()


def test_leftovers_of_an_absorbed_worker_are_deleted_and_counted(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    merge_dead_worker(str(metrics_dir), "1-1")
    before = _doc(metrics_dir)
    _counter(mpkit, metrics_dir, "1-1", 2)  # as if a merge crashed between replace and delete
    mpkit.write_db(metrics_dir, "gauge", "1-1", [("g", "g", {}, 1.0)], mode="all")
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.leftover_files_removed == 2 and stats.merged_identifiers == ()
    assert not list(metrics_dir.glob("*.db"))
    after = _doc(metrics_dir)  # not folded again; nothing of 1-1 is left, so it leaves the list
    assert after["groups"] == before["groups"] and after["stats"] == before["stats"]
    assert before["absorbed"] == ["1-1"] and after["absorbed"] == []
    assert mpkit.scrape(metrics_dir)[("c_total", (("a", "1"),))] == 2.0


def test_a_leftover_that_cannot_be_deleted_stays_absorbed(metrics_dir, mpkit):
    """Otherwise the next merge would fold it in a second time (or a scrape count it twice)."""
    _counter(mpkit, metrics_dir, "1-1", 2)
    merge_dead_worker(str(metrics_dir), "1-1")
    (metrics_dir / "histogram_1-1.db").mkdir()  # a leftover unlink() cannot remove
    _counter(mpkit, metrics_dir, "1-1", 2)  # and one it can
    _counter(mpkit, metrics_dir, "2-2", 3)
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.merged_identifiers == ("2-2",) and stats.leftover_files_removed == 1
    assert _doc(metrics_dir)["absorbed"] == ["1-1", "2-2"]
    assert mpkit.scrape(metrics_dir)[("c_total", (("a", "1"),))] == 5.0
    # Once it can be deleted, the identifier is dropped from the list (nothing of it is left).
    (metrics_dir / "histogram_1-1.db").rmdir()
    _counter(mpkit, metrics_dir, "1-1", 2)
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert stats.leftover_files_removed == 1 and stats.merged_identifiers == ()
    assert _doc(metrics_dir)["absorbed"] == []
    assert mpkit.scrape(metrics_dir)[("c_total", (("a", "1"),))] == 5.0


def test_every_new_archive_has_a_later_mtime_than_the_one_it_replaces(metrics_dir, mpkit):
    """Scrapers cache the parsed archive by inode, mtime and size; a new archive must not look old."""
    path = metrics_dir / ARCHIVE_NAME
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    future = time.time_ns() + 50 * 10**9  # e.g. a clock that stepped back since
    os.utime(path, ns=(future, future))
    _counter(mpkit, metrics_dir, "2-2", 1)
    merge_dead_worker(str(metrics_dir), "2-2")
    assert future < path.stat().st_mtime_ns <= future + 2 * 10**9
    # And with a sane clock, the new archive simply carries the current time.
    past = time.time_ns() - 50 * 10**9
    os.utime(path, ns=(past, past))
    _counter(mpkit, metrics_dir, "3-3", 1)
    started = time.time_ns()
    merge_dead_worker(str(metrics_dir), "3-3")
    assert path.stat().st_mtime_ns >= started - 10**7


def test_a_damaged_archive_is_kept_aside_and_merging_goes_on(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    (metrics_dir / ARCHIVE_NAME).write_bytes(b'{"format": "aura-metrics-archive", "version": 2}')
    _counter(mpkit, metrics_dir, "2-2", 3)
    stats = merge_dead_worker(str(metrics_dir), "2-2")
    assert stats.merged_identifiers == ("2-2",)
    assert (metrics_dir / CORRUPT_ARCHIVE_NAME).read_bytes().endswith(b'"version": 2}')
    assert _doc(metrics_dir)["absorbed"] == ["2-2"] and _doc(metrics_dir)["stats"]["merges"] == 1


def test_a_merge_that_cannot_get_the_lock_changes_nothing(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    with directory_lock(str(metrics_dir), exclusive=False, timeout=1):  # a scrape in progress
        stats = merge_all_dead(str(metrics_dir), [], check_pids=False, lock_timeout=0.05)
    assert stats.skipped_reason == "lock timeout" and stats.merged_identifiers == ()
    assert 0.04 < stats.duration_seconds
    assert (metrics_dir / "counter_1-1.db").exists() and not (metrics_dir / ARCHIVE_NAME).exists()
    assert merge_all_dead(str(metrics_dir), [], check_pids=False).merged_identifiers == ("1-1",)


def test_extra_rows_are_folded_with_the_dead_workers_counters(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    mpkit.write_db(metrics_dir, "gauge", "2-2", [("g", "g", {}, 1.0)], mode="all")
    seen = []

    def extra(ident, rows, running):
        seen.append((ident, [(k, v) for k, v, _ in rows], running))
        return [("counter", (_key("deaths", "deaths_total", {"why": "killed"}), 1.0, 0.0))]

    merge_all_dead(str(metrics_dir), [], check_pids=False, extra_rows=extra)
    assert seen == [("1-1", [(_key(), 2.0)], []), ("2-2", [], [])]
    got = mpkit.scrape(metrics_dir)
    assert got[("deaths_total", (("why", "killed"),))] == 2.0 and got[("c_total", (("a", "1"),))] == 2.0


# --------------------------------------------------------------------------- which workers are dead


def test_pid_of_reads_the_pid_an_identifier_starts_with():
    assert archive.pid_of("123-4") == 123
    assert archive.pid_of("123") == 123
    assert archive.pid_of("123.5-2") == 123
    assert archive.pid_of("web-1") is None and archive.pid_of("") is None


def test_pid_running(mpkit):
    assert archive.pid_running(os.getpid())
    assert not archive.pid_running(mpkit.dead_pid())


def test_merge_all_dead_folds_only_workers_it_can_prove_dead(metrics_dir, mpkit):
    dead = mpkit.dead_pid()
    for ident in (f"{dead}-1", f"{os.getpid()}-1", "web-1", f"{dead}-2"):
        _counter(mpkit, metrics_dir, ident, 1)
    stats = merge_all_dead(str(metrics_dir), [f"{dead}-2"])
    assert stats.merged_identifiers == (f"{dead}-1",)
    assert sorted(p.name for p in metrics_dir.glob("*.db")) == sorted(
        [f"counter_{os.getpid()}-1.db", "counter_web-1.db", f"counter_{dead}-2.db"]
    )


def test_merge_dead_worker_takes_the_bare_pid_files_only_of_a_dead_pid(metrics_dir, mpkit):
    dead, alive = mpkit.dead_pid(), os.getpid()
    for ident in (f"{dead}-1", str(dead), f"{alive}-1", str(alive)):
        _counter(mpkit, metrics_dir, ident, 1)
    assert merge_dead_worker(str(metrics_dir), f"{dead}-1").merged_identifiers == tuple(
        sorted([f"{dead}-1", str(dead)])
    )
    assert merge_dead_worker(str(metrics_dir), f"{alive}-1").merged_identifiers == (f"{alive}-1",)
    assert (metrics_dir / f"counter_{alive}.db").exists()
    assert merge_dead_worker(str(metrics_dir), "nobody-1").merged_identifiers == ()
    assert archive.mark_worker_dead(str(metrics_dir), str(alive)).merged_identifiers == (str(alive),)
    with pytest.raises(ValueError):
        merge_dead_worker(str(metrics_dir), "a_b")


def test_the_archive_format_names_itself():
    assert ARCHIVE_FORMAT == "aura-metrics-archive"


def test_a_pid_of_another_user_counts_as_running(monkeypatch):
    def refused(pid, signal):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(archive.os, "kill", refused)
    assert archive.pid_running(1)


def test_mark_worker_dead_passes_its_lock_timeout_on(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    with directory_lock(str(metrics_dir), exclusive=False, timeout=1):
        started = time.monotonic()
        stats = archive.mark_worker_dead(str(metrics_dir), "1-1", lock_timeout=0.05)
    assert stats.skipped_reason == "lock timeout" and time.monotonic() - started < 5


def test_metric_names_are_checked_once_and_the_verdict_kept(monkeypatch):
    verdicts: dict = {}
    monkeypatch.setattr(archive, "_metric_name_ok", verdicts)
    monkeypatch.setattr(archive, "_key_cache", {})  # parsed keys skip the name check
    with pytest.raises(DamagedFileError, match="invalid metric name ''"):
        parse_rows("counter", [(_key("", "x_total"), 1.0, 0.0)])
    assert parse_rows("gauge", [(_key("fresh_name", "fresh_name"), 1.0, 0.0)])[0][0] == "fresh_name"
    assert verdicts == {("", "counter"): False, ("fresh_name", "gauge"): True}


def test_merge_all_dead_looks_at_every_worker(metrics_dir, mpkit):
    dead = [f"{mpkit.dead_pid()}-{i}" for i in range(8)]
    kept = [f"{os.getpid()}-1", "web-1", "web-2"]
    for ident in dead + kept:
        _counter(mpkit, metrics_dir, ident, 1)
    stats = merge_all_dead(str(metrics_dir), ["web-2"])
    assert stats.merged_identifiers == tuple(sorted(dead))
    assert sorted(p.name for p in metrics_dir.glob("*.db")) == sorted(f"counter_{i}.db" for i in kept)


def test_every_damaged_file_of_a_dead_worker_is_counted_and_the_rest_folded(metrics_dir, mpkit):
    for name in ("histogram_1-1.db", "summary_1-1.db", "gauge_all_1-1.db", "gauge_max_1-1.db"):
        (metrics_dir / name).write_bytes(b"damaged")
    _counter(mpkit, metrics_dir, "1-1", 4)
    stats = merge_dead_worker(str(metrics_dir), "1-1")
    assert (stats.merged_files, stats.damaged_files) == (5, 4)
    assert _doc(metrics_dir)["stats"]["damaged_files"] == 4
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 4.0}


def test_a_sweep_with_nothing_to_merge_still_reports_what_it_cleaned(metrics_dir, mpkit):
    (metrics_dir / ".aura-archive.crashed.tmp").write_bytes(b"half an archive")
    stats = merge_all_dead(str(metrics_dir), [], check_pids=False)
    assert (stats.merged_identifiers, stats.temp_files_removed, stats.leftover_files_removed) == ((), 1, 0)
    assert stats.duration_seconds < 60
