"""The Makefile explains itself: `make` lists every target with one line; `make clean` undoes them."""

from __future__ import annotations

import os
import re
import subprocess

from aura.testing.servers import ROOT


def _make(*args: str) -> str:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_make_alone_lists_every_target_with_one_line():
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    listed = {}
    for line in _make().splitlines():
        name, _, doc = line.strip().partition(" ")
        listed[name] = doc.strip()
    assert set(listed) == set(phony)
    assert all(listed.values()), listed
    assert _make("help") == _make()


def test_the_descriptions_start_in_one_column():
    """Aligned to the longest target name (`dashboards-preview` once overflowed its column)."""
    lines = _make().splitlines()
    starts = {len(line) - len(line.lstrip()[len(line.split()[0]) :].lstrip()) for line in lines}
    assert len(starts) == 1, lines


def test_clean_removes_what_the_targets_create():
    commands = _make("-n", "clean")
    for created in (
        ".venv",
        "instance",
        ".demo",
        "bench/results",
        "mutants",
        ".pytest_cache",
        f"aura-metrics-{os.getuid()}",
    ):
        assert created in commands, created
