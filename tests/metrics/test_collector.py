"""aura.metrics.collector: a scrape equals stock prometheus_client's, before and after merges; self-metrics,
the archive view cache, and damaged files skipped."""

from __future__ import annotations

import logging

import pytest

import aura.metrics as multiproc

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
