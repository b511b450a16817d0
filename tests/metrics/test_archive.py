"""aura.metrics.archive: dead workers merged into the archive - exact, idempotent, like stock for every
gauge mode, and safe with damaged files."""

from __future__ import annotations

import json
import logging
import os

import aura.metrics as multiproc
from aura.metrics.fileformat import ARCHIVE_NAME


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
