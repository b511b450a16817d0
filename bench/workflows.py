"""Workflow latency in-process (p50/p99 per workflow), no HTTP, no database writes.

.venv/bin/python bench/workflows.py [--runs 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aura.workflows import load_catalog_file, run_audit, run_struggle  # noqa: E402

STRUGGLE = {
    "exercise_id": "loops-1",
    "edit_frequency": 25,
    "error_count": 14,
    "error_types": ["NameError", "TypeError"],
    "topic": "loops",
}
# A realistic submission: a few modules of ordinary code with some findings.
MODULE = "\n".join(
    f"def handler_{i}(request, items):\n    total = 0\n    for item in items:\n"
    f"        if item.price > {i}:\n            total += item.price\n    print(total)\n    return total\n"
    for i in range(40)
)
AUDIT = {
    "files": [{"path": f"pkg/mod{n}.py", "content": MODULE} for n in range(3)]
    + [{"path": "README.md", "content": "# docs"}]
}


def percentiles(samples: list[float]) -> dict:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def measure(fn, runs: int) -> dict:
    """Time `runs` calls after a warm-up."""
    for _ in range(10):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def main() -> None:
    """Measure both workflows and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    catalog = load_catalog_file()
    results = {
        "struggle": measure(lambda: run_struggle(STRUGGLE, catalog=catalog), args.runs),
        "audit (3 modules, 280 lines each)": measure(lambda: run_audit(AUDIT), args.runs),
    }
    print(f"{'workflow':<36}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in results.items():
        print(f"{name:<36}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
