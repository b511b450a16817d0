"""Client-chosen label values: the first N distinct ones per instance, shared by every process."""

from __future__ import annotations

import json
import os

from aura.metrics import SharedLabelValues


def test_processes_share_one_cap_and_admitted_values_keep_their_label(metrics_dir):
    pids = []
    for worker in range(4):  # four processes, as recycled workers one after another or at once
        pid = os.fork()
        if pid == 0:
            labels = SharedLabelValues("client_id", 5, str(metrics_dir))
            got = [labels.label(f"c{worker}-{i}") for i in range(5)]
            os._exit(0 if got.count("other") == (0 if worker == 0 else 5) else 1)
        assert os.waitpid(pid, 0)[1] == 0, f"worker {worker}"  # in turn: the first fills the cap
        pids.append(pid)
    labels = SharedLabelValues("client_id", 5, str(metrics_dir))
    assert [labels.label(f"c0-{i}") for i in range(5)] == [f"c0-{i}" for i in range(5)]  # seen: kept
    assert labels.label("new") == "other"
    assert labels.label("c0-3") == "c0-3"  # still itself once the cap is reached


def test_without_a_directory_the_cap_holds_per_process():
    labels = SharedLabelValues("client_id", 2, None)
    assert [labels.label(v) for v in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]


def test_an_unusable_file_falls_back_to_a_per_process_cap(tmp_path):
    labels = SharedLabelValues("client_id", 2, str(tmp_path / "missing"))
    assert [labels.label(v) for v in ("a", "b", "c")] == ["a", "b", "other"]


def test_a_value_admitted_before_the_cap_was_reached_keeps_its_label(metrics_dir):
    first = SharedLabelValues("client_id", 2, str(metrics_dir))
    second = SharedLabelValues("client_id", 2, str(metrics_dir))  # another worker
    assert [first.label(v) for v in ("a", "b")] == ["a", "b"]
    assert [second.label(v) for v in ("c", "a", "b", "d")] == ["other", "a", "b", "other"]
    assert [first.label(v) for v in ("e", "a", "b")] == ["other", "a", "b"]
    assert (metrics_dir / ".aura-labels.client_id").read_text() == '"a"\n"b"\n'


def test_the_cap_is_reached_exactly_at_n_values(metrics_dir):
    labels = SharedLabelValues("client_id", 3, str(metrics_dir))
    assert [labels.label(v) for v in ("a", "b", "a")] == ["a", "b", "a"]
    assert labels._full is False
    assert labels.label("c") == "c" and labels._full is True
    assert labels.label("d") == "other"
    other = SharedLabelValues("client_id", 3, str(metrics_dir))
    assert other.label("d") == "other" and other._full is True
    assert other.label("b") == "b"


def test_label_values_are_stored_as_json_lines_and_read_back(metrics_dir):
    labels = SharedLabelValues("client_id", 5, str(metrics_dir))
    odd = ['quote " and\\backslash', "ünïcode ✓", "new\nline"]
    assert [labels.label(v) for v in odd] == odd
    path = metrics_dir / ".aura-labels.client_id"
    assert path.read_text(encoding="utf-8").splitlines() == [json.dumps(v) for v in odd]
    assert (path.stat().st_mode & 0o777) == 0o644
    again = SharedLabelValues("client_id", 5, str(metrics_dir))
    assert [again.label(v) for v in odd] == odd
    assert path.read_text(encoding="utf-8").count("\n") == 3  # nothing appended twice


def test_a_damaged_file_falls_back_to_the_per_process_cap_and_says_so_once(metrics_dir, caplog):
    (metrics_dir / ".aura-labels.client_id").write_text("not json\n", encoding="utf-8")
    labels = SharedLabelValues("client_id", 1, str(metrics_dir))
    with caplog.at_level("WARNING", logger="aura.metrics"):
        assert [labels.label(v) for v in ("a", "b", "c")] == ["a", "other", "other"]
    assert sum("capped per process" in r.getMessage() for r in caplog.records) == 1


def test_label_names_must_be_plain():
    import pytest

    with pytest.raises(ValueError):
        SharedLabelValues("client id", 2, None)
    with pytest.raises(ValueError):
        SharedLabelValues("../x", 2, None)
    assert SharedLabelValues("client_id", 2, None).overflow == "other"
    assert SharedLabelValues("client_id", 2, None, overflow="rest").label("a") == "a"
