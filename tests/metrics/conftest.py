"""Helpers for the aura.metrics.multiproc tests, handed out by the `mpkit` fixture."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import values as stock_values

from aura.metrics import values
from tests.support import programs

ROOT = Path(__file__).resolve().parents[2]


class Kit:
    """Build worker files, run workers and scrape, in the shapes the tests compare."""

    root = ROOT

    @staticmethod
    def env(directory, **extra) -> dict:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory), PYTHONPATH=str(ROOT))
        env.update(extra)
        return env

    @classmethod
    def run_workers(cls, directory, specs) -> None:
        """Run real worker processes in parallel: specs are (identifier, k)."""
        procs = [
            subprocess.Popen(
                [sys.executable, programs.path("metrics_worker.py"), json.dumps({"identifier": ident, "k": k})],
                env=cls.env(directory),
                stderr=subprocess.PIPE,
            )
            for ident, k in specs
        ]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err.decode()

    @staticmethod
    def expected_worker_totals(ks) -> dict:
        """Counter/histogram/summary samples tests/support/programs/metrics_worker.py gives for the ks, summed."""
        out: dict = {}

        def add(name, labels, v):
            key = (name, tuple(sorted(labels.items())))
            out[key] = out.get(key, 0.0) + v

        for k in ks:
            add("t_requests_total", {"method": "GET", "status": "200"}, k)
            if k % 2 == 0:
                add("t_requests_total", {"method": "POST", "status": "500"}, 10 * k)
            obs = (1, 2 * k, 3 * k)
            for le, bound in (("1.0", 1), ("2.0", 2), ("5.0", 5), ("+Inf", float("inf"))):
                add("t_latency_seconds_bucket", {"route": "/a", "le": le}, sum(v <= bound for v in obs))
            add("t_latency_seconds_count", {"route": "/a"}, 3)
            add("t_latency_seconds_sum", {"route": "/a"}, sum(obs))
            add("t_payload_bytes_count", {}, 1)
            add("t_payload_bytes_sum", {}, 100 * k)
        return out

    @staticmethod
    def write_db(directory, typ, identifier, entries, mode="") -> Path:
        """Write a prometheus_client file directly: entries are (metric, sample, labels, value[, ts])."""
        from prometheus_client.mmap_dict import MmapedDict, mmap_key

        prefix = f"gauge_{mode}" if typ == "gauge" else typ
        path = Path(directory) / f"{prefix}_{identifier}.db"
        d = MmapedDict(str(path))
        try:
            for metric, sample, labels, value, *ts in entries:
                key = mmap_key(metric, sample, list(labels), list(labels.values()), f"{metric} help.")
                d.write_value(key, value, ts[0] if ts else 0.0)
        finally:
            d.close()
        return path

    @classmethod
    def write_http_worker(cls, directory, identifier, k, label_sets=20) -> None:
        """A dead HTTP-ish worker: a counter and a histogram over label_sets routes, integer values."""
        counter, hist = [], []
        for i in range(label_sets):
            labels = {"endpoint": f"/e{i}", "method": "GET"}
            counter.append(("http_requests", "http_requests_total", labels, float(k * (i + 1))))
            for le in ("0.1", "1.0", "+Inf"):
                bucket_labels = {**labels, "le": le}
                hist.append(("http_latency_seconds", "http_latency_seconds_bucket", bucket_labels, float(k)))
            hist.append(("http_latency_seconds", "http_latency_seconds_sum", labels, float(2 * k)))
        cls.write_db(directory, "counter", identifier, counter)
        cls.write_db(directory, "histogram", identifier, hist)

    @staticmethod
    def scrape(directory, collector="aura", include_self=False) -> dict:
        """{(sample name, sorted labels): value} from a fresh registry, as a scrape sees it."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        from aura.metrics import AuraMultiProcessCollector

        reg = CollectorRegistry()
        if collector == "aura":
            AuraMultiProcessCollector(reg, str(directory), lock_timeout=10)
        else:
            MultiProcessCollector(reg, str(directory))
        out = {}
        for metric in reg.collect():
            if metric.name.startswith("aura_metrics_") and not include_self:
                continue
            for s in metric.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in out, key
                out[key] = s.value
        return out

    @staticmethod
    def families(directory, collector="aura") -> dict:
        """{family name: (type, help)} of a scrape, without self-metrics."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        from aura.metrics import AuraMultiProcessCollector

        reg = CollectorRegistry()
        (AuraMultiProcessCollector if collector == "aura" else MultiProcessCollector)(reg, str(directory))
        return {m.name: (m.type, m.documentation) for m in reg.collect() if not m.name.startswith("aura_metrics_")}

    @classmethod
    def stock_after_death(cls, directory, dead_identifiers, scratch) -> dict:
        """What stock prometheus_client reports over the same files once the dead are marked dead."""
        from prometheus_client.multiprocess import mark_process_dead

        scratch = Path(scratch)
        scratch.mkdir()
        for f in Path(directory).glob("*.db"):
            shutil.copy(f, scratch / f.name)
        for ident in dead_identifiers:
            mark_process_dead(ident, str(scratch))
        return cls.scrape(scratch, collector="stock")

    @classmethod
    def damage(cls, metrics_dir) -> list[Path]:
        """Five damaged files next to a good worker; returns their paths."""
        good = cls.write_db(metrics_dir, "counter", "1-1", [("c", "c_total", {"a": "1"}, 5.0)])
        assert good.exists()
        truncated = cls.write_db(
            metrics_dir, "counter", "2-2", [("c", "c_total", {"a": str(i)}, 1.0) for i in range(200)]
        )
        used = int.from_bytes(truncated.read_bytes()[:4], "little")
        with open(truncated, "r+b") as f:
            f.truncate(used - 10)
        rnd = metrics_dir / "histogram_3-3.db"
        rnd.write_bytes(random.Random(1234).randbytes(4096))
        empty = metrics_dir / "counter_4-4.db"
        empty.write_bytes(b"")
        badkey = cls.write_db(metrics_dir, "gauge", "5-5", [("g", "g", {}, 1.0)], mode="all")
        data = bytearray(badkey.read_bytes())
        data[12:14] = b"\xff\xfe"  # inside the key: no longer UTF-8 JSON
        badkey.write_bytes(bytes(data))
        return [truncated, rnd, empty, badkey]

    @staticmethod
    def only(samples, prefix) -> dict:
        return {k: v for k, v in samples.items() if k[0].startswith(prefix)}

    @staticmethod
    def dead_pid() -> int:
        """The pid of a process that has exited (and been reaped)."""
        proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
        return int(proc.stdout)

    @staticmethod
    def wait_for(path, timeout=30.0) -> None:
        end = time.monotonic() + timeout
        while not os.path.exists(path):
            assert time.monotonic() < end, f"timed out waiting for {path}"
            time.sleep(0.01)


@pytest.fixture
def mpkit() -> type[Kit]:
    """The multiprocess-core test helpers."""
    return Kit


@pytest.fixture
def metrics_dir(tmp_path) -> Path:
    """An empty, prepared metrics directory."""
    from aura.metrics import prepare_directory

    d = tmp_path / "prom"
    prepare_directory(str(d))
    return d


@pytest.fixture
def worker(metrics_dir, monkeypatch):
    """This process as a worker writing into metrics_dir (identity set by the test)."""
    P = values._Process
    monkeypatch.setattr(stock_values, "ValueClass", values.AuraValue)
    names = ("identity", "identifier", "directory", "files", "values", "retry_at", "exemplars", "exemplars_retry_at")
    saved = {name: getattr(P, name) for name in names}
    saved["degraded_logged"] = P.degraded_logged
    saved["exemplars_failed_logged"] = P.exemplars_failed_logged
    P.identity, P.identifier, P.files, P.values, P.retry_at = None, None, {}, [], 0.0
    P.exemplars, P.exemplars_retry_at = None, 0.0
    P.generation += 1
    yield metrics_dir
    for file in P.files.values():
        file.close()
    if P.exemplars is not None:
        P.exemplars.close()
    for name, value in saved.items():
        setattr(P, name, value)
    P.generation += 1
