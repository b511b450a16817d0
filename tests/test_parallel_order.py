"""make test's start order (tests/support/parallel.py): each xdist process's first batch starts
with its share of the slow tests, longest first; nothing is lost or repeated."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.parallel import slow_tests_first, worksteal_chunks


@dataclass
class Item:
    name: str
    seconds: float | None = None

    def get_closest_marker(self, name: str):
        if name != "slow" or self.seconds is None:
            return None
        return pytest.mark.slow(self.seconds).mark


def test_batches_are_those_worksteal_hands_out():
    assert worksteal_chunks(1340, 4) == [335, 335, 335, 335]
    assert worksteal_chunks(10, 4) == [2, 2, 3, 3]
    assert sum(worksteal_chunks(1381, 4)) == 1381


def test_each_batch_starts_with_its_share_of_the_slow_tests_longest_first():
    items = [Item(f"t{i}") for i in range(40)]
    items[3] = Item("alertmanager", 180)
    items[4] = Item("prometheus", 150)
    items[5] = Item("promtool", 45)
    items[30] = Item("compat-a", 30)
    items[31] = Item("compat-b", 30)
    ordered = slow_tests_first(items, 4)
    assert sorted(i.name for i in ordered) == sorted(i.name for i in items)
    batches = [ordered[0:10], ordered[10:20], ordered[20:30], ordered[30:40]]
    heads = [[i.name for i in batch if i.seconds is not None] for batch in batches]
    assert heads == [["alertmanager"], ["prometheus"], ["promtool"], ["compat-a", "compat-b"]]
    for batch, head in zip(batches, heads, strict=True):
        assert [i.name for i in batch[: len(head)]] == head  # at the front of the batch
    rest = [i.name for i in ordered if i.seconds is None]
    assert rest == [i.name for i in items if i.seconds is None]  # the others keep their order
