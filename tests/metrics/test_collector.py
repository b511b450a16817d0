"""aura.metrics.collector: a scrape equals stock prometheus_client's, before and after merges; self-metrics,
the archive view cache, and damaged files skipped."""

from __future__ import annotations

import json
import logging
import math
import os

import pytest
from prometheus_client import CollectorRegistry

import aura.metrics as multiproc
from aura.metrics import collector as collector_module
from aura.metrics.archive import DURATION_BUCKETS, merge_all_dead, merge_dead_worker
from aura.metrics.collector import AuraMultiProcessCollector
from aura.metrics.fileformat import ARCHIVE_NAME

COUNTING = ("t_requests", "t_latency_seconds", "t_payload_bytes")


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


def test_damaged_files_are_skipped_logged_and_counted(metrics_dir, mpkit, caplog):
    damaged = mpkit.damage(metrics_dir)
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


def _counter(mpkit, directory, ident, value, labels=None):
    return mpkit.write_db(directory, "counter", ident, [("c", "c_total", labels or {"a": "1"}, float(value))])


def _families(directory) -> dict:
    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, str(directory), lock_timeout=5)
    return {m.name: m for m in registry.collect()}


def _self(directory) -> dict:
    """The self-metrics of one scrape: {(sample name, labels): value}."""
    out = {}
    for name, family in _families(directory).items():
        if name.startswith("aura_metrics_"):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_scrape_adds_live_workers_to_the_archive(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    _counter(mpkit, metrics_dir, "2-2", 3)
    merge_dead_worker(str(metrics_dir), "1-1")
    _counter(mpkit, metrics_dir, "3-3", 4, {"a": "2"})
    got = mpkit.scrape(metrics_dir)
    assert got == {("c_total", (("a", "1"),)): 5.0, ("c_total", (("a", "2"),)): 4.0}


def test_gauges_carry_the_pid_label_of_their_worker_live_or_archived(metrics_dir, mpkit):
    mpkit.write_db(metrics_dir, "gauge", "1-1", [("g", "g", {"k": "x"}, 1.0, 5.0)], mode="all")
    mpkit.write_db(metrics_dir, "gauge", "2-2", [("g", "g", {"k": "x"}, 2.0, 6.0)], mode="all")
    merge_dead_worker(str(metrics_dir), "1-1")
    assert mpkit.scrape(metrics_dir) == {
        ("g", (("k", "x"), ("pid", "1-1"))): 1.0,
        ("g", (("k", "x"), ("pid", "2-2"))): 2.0,
    }
    family = _families(metrics_dir)["g"]
    assert family.type == "gauge" and family.documentation == "g help."
    assert [s.timestamp for s in family.samples] == [None, None]


def test_the_leftovers_of_an_absorbed_worker_are_not_counted_twice(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    merge_dead_worker(str(metrics_dir), "1-1")
    _counter(mpkit, metrics_dir, "1-1", 2)  # a merge crashed after writing the archive
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 2.0}


def test_only_value_files_are_read(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 2)
    (metrics_dir / ".hidden.db").write_bytes(b"not read")
    (metrics_dir / "notes.txt").write_bytes(b"not read")
    (metrics_dir / "counter_1-1.db.bak").write_bytes(b"not read")
    before = _self(metrics_dir)[("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))]
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 2.0}
    after = _self(metrics_dir)
    assert after[("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))] == before
    assert after[("aura_metrics_directory_files", ())] == 1


def test_damaged_files_are_skipped_whole_and_counted_per_scrape(metrics_dir, mpkit, caplog):
    _counter(mpkit, metrics_dir, "1-1", 2)
    (metrics_dir / "counter_2-2.db").write_bytes(b"\x00" * 3)
    (metrics_dir / "weird.db").write_bytes(b"x")
    mpkit.write_db(metrics_dir, "counter", "3-3", [("", "c_total", {"a": "1"}, 7.0)])  # no valid metric name
    key = ("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))
    first = _self(metrics_dir)[key]
    with caplog.at_level("DEBUG", logger="aura.metrics"):
        assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 2.0}
        second = _self(metrics_dir)[key]
    assert second - first == 6  # three files, two scrapes
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # once per file and reason, not once per scrape
    assert _self(metrics_dir)[("aura_metrics_directory_files", ())] == 4


def test_self_metrics_describe_the_merges(metrics_dir, mpkit):
    assert _self(metrics_dir)[("aura_metrics_merges_total", ())] == 0
    _counter(mpkit, metrics_dir, "1-1", 1)
    _counter(mpkit, metrics_dir, "2-2", 1)
    (metrics_dir / "histogram_2-2.db").write_bytes(b"damaged")
    merge_dead_worker(str(metrics_dir), "1-1")
    merge_dead_worker(str(metrics_dir), "2-2")
    _counter(mpkit, metrics_dir, "3-3", 1)
    got = _self(metrics_dir)
    assert got[("aura_metrics_merges_total", ())] == 2
    assert got[("aura_metrics_merged_files_total", ())] == 3
    assert got[("aura_metrics_damaged_files_skipped_total", (("stage", "merge"),))] == 1
    assert got[("aura_metrics_directory_files", ())] == 2  # the archive and one live file
    buckets = [got[("aura_metrics_merge_duration_seconds_bucket", (("le", le),))] for le in _les()]
    assert buckets == sorted(buckets) and buckets[-1] == 2  # cumulative, every merge counted
    assert got[("aura_metrics_merge_duration_seconds_count", ())] == 2
    assert 0 < got[("aura_metrics_merge_duration_seconds_sum", ())] < 10


def _les() -> list[str]:
    from prometheus_client.utils import floatToGoString

    return [floatToGoString(b) for b in DURATION_BUCKETS]


def test_merge_duration_buckets_are_cumulative_counts_of_the_archive(metrics_dir):
    from aura.metrics.archive import Archive

    a = Archive(merges=3)
    for seconds in (0.0001, 0.2, 0.2):
        a.observe_duration(seconds)
    (metrics_dir / ARCHIVE_NAME).write_bytes(a.to_bytes())
    got = _self(metrics_dir)
    counts = {le: got[("aura_metrics_merge_duration_seconds_bucket", (("le", le),))] for le in _les()}
    assert counts["0.001"] == 1 and counts["0.1"] == 1 and counts["0.25"] == 3 and counts["+Inf"] == 3
    assert got[("aura_metrics_merge_duration_seconds_sum", ())] == pytest.approx(0.4001)
    assert got[("aura_metrics_merges_total", ())] == 3


def test_without_self_metrics_a_scrape_is_the_stock_one(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, str(metrics_dir), self_metrics=False)
    assert [m.name for m in registry.collect()] == ["c"]


def test_the_archive_is_parsed_again_only_when_it_changed(metrics_dir, mpkit, monkeypatch):
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    parsed = []
    real = collector_module._build_view
    monkeypatch.setattr(collector_module, "_build_view", lambda a, p: parsed.append(p) or real(a, p))
    for _ in range(3):
        assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 1.0}
    assert len(parsed) <= 1
    _counter(mpkit, metrics_dir, "2-2", 2)
    merge_dead_worker(str(metrics_dir), "2-2")
    count = len(parsed)
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 3.0}
    assert len(parsed) == count + 1


def test_the_archive_cache_holds_at_most_sixteen_directories(tmp_path, mpkit):
    from aura.metrics import prepare_directory

    for i in range(18):
        d = tmp_path / f"d{i}"
        prepare_directory(str(d))
        _counter(mpkit, d, "1-1", i)
        merge_dead_worker(str(d), "1-1")
        assert mpkit.scrape(d) == {("c_total", (("a", "1"),)): float(i)}
        assert len(collector_module._archive_cache) <= 16
    assert str(tmp_path / "d17" / ARCHIVE_NAME) in collector_module._archive_cache
    assert str(tmp_path / "d0" / ARCHIVE_NAME) not in collector_module._archive_cache


def test_a_damaged_archive_group_is_skipped_and_the_rest_is_served(metrics_dir, mpkit, caplog):
    _counter(mpkit, metrics_dir, "1-1", 2)
    mpkit.write_db(metrics_dir, "gauge", "1-1", [("g", "g", {}, 4.0)], mode="max")
    merge_dead_worker(str(metrics_dir), "1-1")
    doc = json.loads((metrics_dir / ARCHIVE_NAME).read_bytes())
    for group in doc["groups"]:
        if group["type"] == "counter":
            group["values"][0][0] = "not a key"
    (metrics_dir / ARCHIVE_NAME).write_bytes(json.dumps(doc).encode())
    key = ("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))
    before = _self(metrics_dir)[key]  # parsed (and counted) once, then cached
    with caplog.at_level("WARNING", logger="aura.metrics"):
        assert mpkit.scrape(metrics_dir) == {("g", ()): 4.0}
    assert _self(metrics_dir)[key] == before


def test_an_unreadable_archive_counts_as_a_file_and_as_damage(metrics_dir, mpkit):
    (metrics_dir / ARCHIVE_NAME).write_bytes(b"{garbage")
    _counter(mpkit, metrics_dir, "1-1", 2)
    key = ("aura_metrics_damaged_files_skipped_total", (("stage", "scrape"),))
    first = _self(metrics_dir)
    assert first[("aura_metrics_directory_files", ())] == 2
    assert _self(metrics_dir)[key] == first[key] + 1
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 2.0}


def test_a_collector_needs_a_directory(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        AuraMultiProcessCollector(None, "")
    with pytest.raises(ValueError, match="is not a directory"):
        AuraMultiProcessCollector(None, str(tmp_path / "missing"))
    assert AuraMultiProcessCollector(None, str(tmp_path))._path == str(tmp_path)


def test_a_collector_registers_itself_only_with_a_registry(metrics_dir):
    registry = CollectorRegistry()
    collector = AuraMultiProcessCollector(registry, str(metrics_dir))
    assert registry._collector_to_names.get(collector) is not None or collector in registry._collector_to_names
    AuraMultiProcessCollector(None, str(metrics_dir))  # no registry: nothing to register with


def test_histograms_and_summaries_are_merged_like_stock(metrics_dir, mpkit):
    hist = [("h", "h_bucket", {"le": le}, v) for le, v in (("1.0", 1.0), ("+Inf", 2.0))]
    hist.append(("h", "h_sum", {}, 3.5))
    mpkit.write_db(metrics_dir, "histogram", "1-1", hist)
    mpkit.write_db(metrics_dir, "histogram", "2-2", hist)
    mpkit.write_db(metrics_dir, "summary", "1-1", [("s", "s_count", {}, 2.0), ("s", "s_sum", {}, 9.0)])
    stock = mpkit.scrape(metrics_dir, collector="stock")
    merge_dead_worker(str(metrics_dir), "1-1")
    aura = mpkit.scrape(metrics_dir)
    assert aura == stock
    assert aura[("h_bucket", (("le", "+Inf"),))] == 6.0 and aura[("h_count", ())] == 6.0
    assert aura[("h_sum", ())] == 7.0 and aura[("s_sum", ())] == 9.0
    assert math.isclose(aura[("s_count", ())], 2.0)
    families = _families(metrics_dir)
    assert families["h"].type == "histogram" and families["s"].type == "summary"


def test_scrapes_wait_for_a_merge_and_never_see_half_of_one(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    assert merge_all_dead(str(metrics_dir), [], check_pids=False).merged_files == 1
    assert os.listdir(metrics_dir).count(ARCHIVE_NAME) == 1
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 1.0}


def test_damage_is_remembered_for_a_bounded_number_of_files(metrics_dir, monkeypatch):
    remembered = {(f"/elsewhere/{i}.db", "old") for i in range(998)}
    monkeypatch.setattr(collector_module, "_logged_damage", remembered)
    for i in range(4):
        (metrics_dir / f"counter_{i}-{i}.db").write_bytes(b"\x00")
    _families(metrics_dir)
    assert len(remembered) == 1000  # two of the four remembered; the others would warn again


def test_after_a_fork_the_child_has_locks_of_its_own(metrics_dir, mpkit):
    locks = collector_module._scrape_damaged_lock, collector_module._archive_cache_lock
    collector_module._forked()
    assert collector_module._scrape_damaged_lock is not locks[0]
    assert collector_module._archive_cache_lock is not locks[1]
    for lock in (collector_module._scrape_damaged_lock, collector_module._archive_cache_lock):
        with lock:
            pass
    (metrics_dir / "counter_1-1.db").write_bytes(b"\x00")
    _counter(mpkit, metrics_dir, "2-2", 1)
    merge_dead_worker(str(metrics_dir), "2-2")
    assert mpkit.scrape(metrics_dir) == {("c_total", (("a", "1"),)): 1.0}


def test_self_metrics_are_documented_as_in_docs_metrics_md(metrics_dir):
    families = {name: (f.type, f.documentation) for name, f in _families(metrics_dir).items()}
    assert {name: doc for name, doc in families.items() if name.startswith("aura_metrics_")} == {
        "aura_metrics_merges": ("counter", "Merges of dead workers into the archive."),
        "aura_metrics_merged_files": ("counter", "Dead-worker files folded into the archive."),
        "aura_metrics_merge_duration_seconds": ("histogram", "Duration of dead-worker merges."),
        "aura_metrics_directory_files": ("gauge", "Metric files (*.db and archive) at scrape time."),
        "aura_metrics_damaged_files_skipped": (
            "counter",
            "Damaged metric files skipped (scrape: by this process).",
        ),
    }


def test_a_cached_archive_still_counts_as_a_file(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    _counter(mpkit, metrics_dir, "2-2", 1)
    counts = [_self(metrics_dir)[("aura_metrics_directory_files", ())] for _ in range(3)]
    assert counts == [2, 2, 2]


def test_only_gauges_carry_timestamps_and_leftovers_do_not_hide_live_files(metrics_dir, mpkit):
    _counter(mpkit, metrics_dir, "1-1", 1)
    merge_dead_worker(str(metrics_dir), "1-1")
    _counter(mpkit, metrics_dir, "1-1", 1)  # a leftover of the merge
    for i in range(2, 8):
        _counter(mpkit, metrics_dir, f"{i}-{i}", 1)
    family = _families(metrics_dir)["c"]
    assert [s.value for s in family.samples if s.name == "c_total"] == [7.0]
    assert all(s.timestamp is None for s in family.samples)
