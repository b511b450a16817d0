"""Aura's collector and merges mean what prometheus_client means, sample for sample (property-based).

Random workloads write counters, gauges of every mode, histograms and summaries through
prometheus_client's own file writer, from several worker identities; workers die (and are
merged) at random points, their slots reused by new identities as Gunicorn recycles workers.
The same writes go to a second directory that stock prometheus_client reads after
``mark_process_dead``: the two scrapes must be equal.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import mark_process_dead

import aura.metrics as core
from aura.metrics.fileformat import GAUGE_MODES, value_file_name

SLOTS = 3  # worker slots; a slot's identity changes when its worker dies (a recycle)
BUCKETS = ("1.0", "5.0", "+Inf")

KINDS = ("counter", "histogram", "summary", *(f"gauge:{m}" for m in sorted(GAUGE_MODES)))
write_op = st.tuples(
    st.just("write"),
    st.integers(0, SLOTS - 1),
    st.sampled_from(["a", "b"]),
    st.integers(-50, 1000),  # integers: sums are exact whatever order the two readers add in
)
die_op = st.tuples(st.just("die"), st.integers(0, SLOTS - 1))
sweep_op = st.tuples(st.just("sweep"))
workload = st.lists(st.one_of(write_op, write_op, write_op, die_op, sweep_op), max_size=60)


class Twin:
    """Two directories receiving the same writes: one merged by Aura, one left to stock."""

    def __init__(self, root: Path):
        self.aura, self.stock = root / "aura", root / "stock"
        core.prepare_directory(str(self.aura))
        self.stock.mkdir()
        self.generation = [1] * SLOTS
        self.dead: list[str] = []
        self.clock = 0.0

    def ident(self, slot: int) -> str:
        return f"{100 + slot}-{self.generation[slot]}"

    def write(self, slot: int, label: str, amount: int) -> None:
        for kind in KINDS:  # every type and gauge mode sees every write
            self._write(slot, kind, label, amount)

    def _write(self, slot: int, kind: str, label: str, amount: int) -> None:
        typ, _, mode = kind.partition(":")
        ident = self.ident(slot)
        self.clock += 1.0
        rows: list[tuple[str, str, dict[str, str], float, float]]
        if typ == "counter":
            rows = [("p_c", "p_c_total", {"k": label}, abs(amount), 0.0)]
        elif typ == "summary":
            rows = [("p_s", "p_s_count", {"k": label}, 1, 0.0), ("p_s", "p_s_sum", {"k": label}, amount, 0.0)]
        elif typ == "histogram":
            bucket = next(b for b in BUCKETS if b == "+Inf" or amount <= float(b))
            rows = [
                ("p_h", "p_h_bucket", {"k": label, "le": bucket}, 1, 0.0),
                ("p_h", "p_h_sum", {"k": label}, amount, 0.0),
            ]
        else:
            rows = [(f"p_g_{mode}", f"p_g_{mode}", {"k": label}, amount, self.clock)]
        for directory in (self.aura, self.stock):
            d = MmapedDict(str(directory / value_file_name(typ, mode, ident)))
            try:
                for metric, sample, labels, value, ts in rows:
                    key = mmap_key(metric, sample, list(labels), list(labels.values()), f"{metric} help.")
                    if typ == "gauge":  # a gauge is set; the others add, as their values do
                        d.write_value(key, float(value), ts)
                    else:
                        d.write_value(key, d.read_value(key)[0] + value, ts)
            finally:
                d.close()

    def die(self, slot: int) -> None:
        ident = self.ident(slot)
        self.dead.append(ident)
        self.generation[slot] += 1
        core.merge_dead_worker(str(self.aura), ident)
        mark_process_dead(ident, str(self.stock))

    def sweep(self) -> None:
        live = [self.ident(s) for s in range(SLOTS)]
        core.merge_all_dead(str(self.aura), live, check_pids=False)


# mpkit is stateless, so sharing it between examples is safe.
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(workload)
def test_scrape_equals_stock_sample_for_sample(mpkit, ops):
    with tempfile.TemporaryDirectory() as tmp:
        twin = Twin(Path(tmp))
        for op in ops:
            getattr(twin, op[0])(*op[1:])
        assert mpkit.scrape(twin.aura) == mpkit.scrape(twin.stock, collector="stock")
        # and again once every dead worker is folded in (live gauges of the dead dropped alike)
        twin.sweep()
        assert mpkit.scrape(twin.aura) == mpkit.scrape(twin.stock, collector="stock")
