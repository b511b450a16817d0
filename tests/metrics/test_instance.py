"""The per-instance process readings (/proc) behind the worker memory gauges."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys

import pytest

from aura.metrics.instance import _memory

MAPPED = 64 * 1024 * 1024
# Maps a file privately, reads every page, then waits: its pages are clean (never written) and
# private (mapped by this process only) - unique memory all the same.
_READER = """
import mmap, sys
with open(sys.argv[1], "rb") as f:
    pages = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print(sum(pages[i] for i in range(0, len(pages), mmap.PAGESIZE)), flush=True)
sys.stdin.read()
"""


def _private_clean(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Private_Clean:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="reads /proc/<pid>/smaps_rollup")
def test_unique_memory_counts_clean_private_pages(tmp_path):
    mapped = tmp_path / "mapped"
    with open(mapped, "wb") as f:
        f.write(b"\x01" * MAPPED)
        f.flush()
        os.fsync(f.fileno())  # written back: the page cache holds it clean
    with subprocess.Popen(  # on leaving: stdin closed (the reader ends), then waited for
        [sys.executable, "-c", _READER, str(mapped)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as reader:
        assert reader.stdout is not None
        assert int(reader.stdout.readline()) == MAPPED // mmap.PAGESIZE  # every page read
        clean = _private_clean(reader.pid)
        reading = _memory(reader.pid)
    assert clean >= MAPPED  # the setup holds: 64 MiB of clean private pages
    assert reading is not None
    pss, uss = reading
    assert uss >= clean, (pss, uss, clean)
