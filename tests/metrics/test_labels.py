"""Client-chosen label values: the first N distinct ones per instance, shared by every process."""

from __future__ import annotations

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
