"""Aura's benchmark suite, one command (`make bench`): a table on stdout, JSON in bench/results/.

Runs, one after the other (each step is its own script, run as a subprocess, and can be run
alone - see docs/performance.md):

1. bench/http_overhead.py  in-process per-request instrumentation cost (µs), with a breakdown;
2. bench/workflows.py      workflow latency in-process (p50/p99);
3. bench/metrics_scrape.py /metrics latency with 0, 100 and 1000 recycled workers, merging on/off;
4. bench/http_load.py      requests/s of GET /healthz and POST /api/v1/workflows/audit under
                           Gunicorn (4 workers), metrics on and off in alternating rounds, and
                           each worker's resident memory.

Then it prints the figures and each target with PASS/FAIL. It also records the machine (cores,
CPU, load average) and how much CPU *other* processes used while it ran: the load generator
and the servers share the machine's cores, and so does anything else running.

    .venv/bin/python bench/run.py [--quick] [--strict] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

# The issue's targets.
SCRAPE_MAX_RATIO = 1.5  # /metrics after 1000 recycled workers vs fresh, merging on
THROUGHPUT_MIN_RATIO = 0.95  # instrumented / uninstrumented requests/s, GET /healthz
BARE_FLASK_MAX_RATIO = 1.4  # Aura's request path (metrics off) against a bare Flask app, in-process
OVERHEAD_MAX_US = 10.0  # µs; the Gunicorn-saturation issue tightened it from 15 (busy gauge and time added)

# Full run and a quick smoke run (same steps, smaller numbers; not for figures).
PROFILES = {
    "full": {
        "overhead": ["--requests", "50", "--runs", "400"],
        "workflows": ["--runs", "200"],
        "scrape": ["--dead", "0,100,1000", "--runs", "5", "--off-runs", "3"],
        "load": ["--rounds", "10", "--seconds", "3", "--warmup", "2"],
    },
    "quick": {
        "overhead": ["--requests", "50", "--runs", "40"],
        "workflows": ["--runs", "30"],
        "scrape": ["--dead", "0,100,1000", "--runs", "2", "--off-runs", "1"],
        "load": ["--rounds", "2", "--seconds", "2", "--warmup", "1"],
    },
}


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def _own_cpu_seconds() -> float:
    """CPU seconds used by this process and every descendant it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=ROOT)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return ""


def machine_facts() -> dict:
    """What the figures depend on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:")
    )
    versions = {}
    for dist in ("flask", "gunicorn", "prometheus_client", "werkzeug"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:  # noqa: BLE001 - a missing version is not a reason to stop
            versions[dist] = None
    commit = _first_line(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(_first_line(["git", "status", "--porcelain", "--untracked-files=no"]))
    busy0, total0 = _cpu_ticks()
    time.sleep(2)
    busy1, total1 = _cpu_ticks()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "mem_total_mib": mem // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "git": f"{commit}{' (uncommitted changes)' if dirty else ''}",
        "loadavg_at_start": os.getloadavg(),
        "cpu_busy_before_start_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
    }


def step(name: str, script: str, args: list[str], out_dir: Path) -> dict:
    """Run one benchmark script with --json; its progress goes to stderr; return its JSON."""
    json_path = out_dir / f".{name}.json"
    cmd = [sys.executable, str(BENCH / script), *args, "--json", str(json_path)]
    print(f"[{name}] {' '.join(['bench/' + script, *args])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(proc.stdout, file=sys.stderr)
        raise SystemExit(f"[{name}] failed with exit status {proc.returncode}")
    data = json.loads(json_path.read_text())
    json_path.unlink()
    seconds = time.monotonic() - started
    print(f"[{name}] done in {seconds:.0f}s", file=sys.stderr, flush=True)
    return {"seconds": round(seconds, 1), "result": data}


def verdicts(results: dict) -> list[dict]:
    """The three targets, each with its measured value and PASS/FAIL."""
    out = []
    scrape = {r["dead_workers"]: r for r in results["scrape"]["result"]["results"]}
    if 0 in scrape and 1000 in scrape:
        ratio = scrape[1000]["on_median_ms"] / scrape[0]["on_median_ms"]
        out.append(
            {
                "target": "/metrics after 1000 recycled workers, merging on, vs fresh start",
                "limit": f"<= {SCRAPE_MAX_RATIO}x",
                "value": f"{ratio:.2f}x",
                "pass": ratio <= SCRAPE_MAX_RATIO,
            }
        )
    healthz = results["load"]["result"]["routes"]["healthz"]
    out.append(
        {
            "target": "requests/s instrumented / uninstrumented, GET /healthz",
            "limit": f">= {THROUGHPUT_MIN_RATIO}",
            "value": f"{healthz['ratio_on_off']:.3f}",
            "pass": healthz["ratio_on_off"] >= THROUGHPUT_MIN_RATIO,
            "note": f"cross-check, workers' CPU per request off/on: {healthz['cpu_ratio_off_on']:.3f}",
        }
    )
    overhead = results["overhead"]["result"]["overhead_us"]
    out.append(
        {
            "target": "instrumentation overhead per request (in-process)",
            "limit": f"<= {OVERHEAD_MAX_US:g} µs",
            "value": f"{overhead:.1f} µs",
            "pass": overhead <= OVERHEAD_MAX_US,
        }
    )
    vs_bare = results["overhead"]["result"]["uninstrumented_vs_bare"]
    out.append(
        {
            "target": "Aura's request path (metrics off) / bare Flask, GET /healthz (in-process)",
            "limit": f"<= {BARE_FLASK_MAX_RATIO:g}x",
            "value": f"{vs_bare:.2f}x",
            "pass": vs_bare <= BARE_FLASK_MAX_RATIO,
        }
    )
    return out


def render(report: dict) -> str:
    """The human-readable table."""
    m, r = report["machine"], report["results"]
    lines = []
    add = lines.append
    la = " ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    add(f"Aura benchmark  {report['started_at']}  git {m['git']}")
    add(
        f"machine: {m['cores']} cores ({m['cpu']}), {m['mem_total_mib']} MiB, Python {m['python']}, "
        f"kernel {m['kernel']}"
    )
    add(
        f"load average at start: {la}; CPU busy before start: {m['cpu_busy_before_start_pct']}%; "
        f"other processes' CPU during the run: {report['others_cpu_pct']}% of the machine"
    )
    if report["busy"]:
        add(
            "WARNING: the machine was busy with other work - figures are inflated and noisy; "
            "re-run `make bench` at a quiet moment."
        )
    add("")

    ov = r["overhead"]["result"]
    add(
        f"1. In-process instrumentation cost, GET {ov['path']} through WSGI ({ov['runs']} alternating "
        f"runs x {ov['requests_per_run']} requests per variant, each request timed)"
    )
    add(f"   {'variant':<16}{'median µs/req':>15}{'+ vs off':>10}{'p10 µs/req':>12}{'+ vs off':>10}")
    for name, v in ov["variants"].items():
        add(
            f"   {name:<16}{v['median_us']:>15.1f}{v['median_overhead_us']:>10.1f}"
            f"{v['p10_us']:>12.1f}{v['p10_overhead_us']:>10.1f}"
        )
    add("")

    wf = r["workflows"]["result"]
    add("2. Workflow latency in-process (no HTTP)")
    for name, v in wf.items():
        add(f"   {name:<36} p50 {v['p50_ms']:>8.2f} ms   p99 {v['p99_ms']:>8.2f} ms")
    add("")

    sc = r["scrape"]["result"]
    add(
        f"3. /metrics scrape latency, {sc['live_workers']} live workers + N recycled (medians of "
        f"{sc['runs']} scrapes with merging, {sc.get('off_runs', sc['runs'])} without)"
    )
    add(
        f"   {'recycled':>8} {'files':>6} {'merging OFF':>12} {'merging ON':>11} {'ON cold':>9} "
        f"{'ON vs fresh':>12} {'OFF/ON':>7}"
    )
    fresh = next((x["on_median_ms"] for x in sc["results"] if x["dead_workers"] == 0), None)
    for x in sc["results"]:
        vs = f"{x['on_median_ms'] / fresh:.2f}x" if fresh else "-"
        add(
            f"   {x['dead_workers']:>8} {x['files_unmerged']:>6} {x['off_stock_median_ms']:>9.1f} ms "
            f"{x['on_median_ms']:>8.1f} ms {x['on_cold_ms']:>6.1f} ms {vs:>12} "
            f"{x['off_stock_median_ms'] / x['on_median_ms']:>6.1f}x"
        )
    add("")

    ld = r["load"]["result"]
    gen = ld["load_generator_settings"]
    gen_s = (
        f"wrk -t{gen['threads']} -c{gen['connections']}"
        if ld["load_generator"] == "wrk"
        else f"Python client x{gen['processes']}"
    )
    add(
        f"4. Throughput under Gunicorn ({ld['workers']} {ld['worker_class']} workers, {gen_s}, "
        f"{ld['rounds']} alternating rounds x {ld['seconds_per_cell']:g} s, medians; on/off is the median "
        f"of the rounds' ratios; {ld['redis']})"
    )
    add(
        f"   {'route':<32}{'metrics on':>11}{'metrics off':>12}{'on/off':>8}   "
        f"{'worker CPU/req on':>17}{'off':>8}{'off/on':>8}{'p50 ms on/off':>16}{'errors':>7}"
    )
    for x in ld["routes"].values():
        add(
            f"   {x['method'] + ' ' + x['path']:<32}{x['rps_on']:>7.0f} r/s{x['rps_off']:>8.0f} r/s"
            f"{x['ratio_on_off']:>8.3f}   {x['worker_cpu_us_on']:>14.0f} µs{x['worker_cpu_us_off']:>5.0f} µs"
            f"{x['cpu_ratio_off_on']:>8.3f}{x['p50_ms_on']:>9.1f} / {x['p50_ms_off']:<5.1f}"
            f"{x['errors_on'] + x['errors_off']:>7}"
        )
    for when, label in (("rss_after_warmup", "after warm-up"), ("rss_after_rounds", "after the rounds")):
        mm = ld[when]
        add(
            f"   worker RSS {label:<17} on {mm['median_mib_on']:>6.1f} MiB   "
            f"off {mm['median_mib_off']:>6.1f} MiB   delta {mm['delta_mib']:+.1f} MiB  "
            f"(median of {len(mm['per_worker_mib_on'])} workers)"
        )
    add("")

    add("Targets")
    for v in report["targets"]:
        note = f"; {v['note']}" if v.get("note") else ""
        add(f"   {'PASS' if v['pass'] else 'FAIL'}  {v['target']}: {v['value']} (target {v['limit']}){note}")
    add("")
    add(f"total {report['seconds']:.0f} s; JSON: {report['json_path']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (figures not meaningful)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="directory for the JSON")
    args = parser.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    started_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    machine = machine_facts()
    busy0, total0 = _cpu_ticks()
    own0 = _own_cpu_seconds()

    results = {
        "overhead": step("overhead", "http_overhead.py", profile["overhead"], args.out),
        "workflows": step("workflows", "workflows.py", profile["workflows"], args.out),
        "scrape": step("scrape", "metrics_scrape.py", profile["scrape"], args.out),
        "load": step("load", "http_load.py", profile["load"], args.out),
    }

    busy1, total1 = _cpu_ticks()
    tick = os.sysconf("SC_CLK_TCK")
    machine_busy_s = (busy1 - busy0) / tick
    own_s = _own_cpu_seconds() - own0
    capacity_s = (total1 - total0) / tick  # all cores
    others_pct = round(100 * max(0.0, machine_busy_s - own_s) / max(1e-9, capacity_s), 1)
    machine["loadavg_at_end"] = os.getloadavg()
    # Busy: others used a noticeable share of the cores, before or during the run.
    busy = others_pct > 10 or machine["cpu_busy_before_start_pct"] > 20

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.out / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    report = {
        "started_at": started_at,
        "profile": "quick" if args.quick else "full",
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "others_cpu_pct": others_pct,
        "busy": busy,
        "results": results,
        "json_path": str(json_path),
    }
    report["targets"] = verdicts(results)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    if args.strict and not all(v["pass"] for v in report["targets"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
