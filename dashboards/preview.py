"""Render each Grafana dashboard's panels from a live Prometheus into a PNG preview.

    python dashboards/preview.py --prometheus http://127.0.0.1:9090 --start EPOCH --end EPOCH \
        [--namespace demo] [--scrape-interval 5] [--out docs/images/dashboards]

Grafana does not run here, so this draws what it would: every panel of every committed
dashboard (k8s/monitoring/grafana/dashboards/*.json), in its order and grid, from the very
expressions the JSON holds - time series through /api/v1/query_range, stat and pie-chart panels
through an instant query at the end - with Grafana's variables filled in as the dashboards'
"All" would resolve them ($job: aura, $pod: every pod, $namespace: the one given).
`make dashboards-preview` runs it against `make demo`'s stack (scripts/dashboards-preview.sh).
Needs matplotlib (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import requests  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "k8s" / "monitoring" / "grafana" / "dashboards"
OUT_DIR = ROOT / "docs" / "images" / "dashboards"
MAX_POINTS = 240  # per series, as Grafana's max data points would for a panel this size


def substitute(expr: str, variables: dict[str, str]) -> str:
    # Longest names first: $__rate_interval before a hypothetical $__rate.
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(name, variables[name])
    return expr


def legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


class Prometheus:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def _get(self, path: str, params: dict) -> list[dict]:
        body = requests.get(f"{self.url}{path}", params=params, timeout=30).json()
        if body.get("status") != "success":
            raise RuntimeError(f"{params.get('query')}: {body.get('error')}")
        return body["data"]["result"]

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})

    def instant(self, expr: str, at: float) -> list[dict]:
        return self._get("/api/v1/query", {"query": expr, "time": at})


def unit_formatter(unit: str):
    if unit == "percentunit":
        return FuncFormatter(lambda v, _: f"{v * 100:.0f}%")
    if unit == "bytes":
        return FuncFormatter(lambda v, _: f"{v / 2**20:.0f} MiB")
    if unit == "s":
        return FuncFormatter(lambda v, _: f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.1f} s")
    suffix = {"reqps": " req/s", "ops": "/s", "opm": "/min"}.get(unit, "")
    return FuncFormatter(lambda v, _: f"{v:g}{suffix}")


def draw_timeseries(ax, panel, prometheus, variables, start, end):
    step = max(1.0, (end - start) / MAX_POINTS)
    drawn = 0
    for target in panel["targets"]:
        for series in prometheus.range(substitute(target["expr"], variables), start, end, step):
            times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
            values = [float(v) if v not in ("NaN", "+Inf", "-Inf") else math.nan for _, v in series["values"]]
            ax.plot(times, values, linewidth=1.2, label=legend(target.get("legendFormat", ""), series["metric"]))
            drawn += 1
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    ax.yaxis.set_major_formatter(unit_formatter(unit))
    ax.xaxis.set_major_locator(mdates.MinuteLocator(tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    if panel["fieldConfig"]["defaults"].get("min") == 0 and unit != "percentunit":
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.25)
    if drawn:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if drawn > 6 else 1, framealpha=0.6)
    return drawn


def draw_stat(ax, panel, prometheus, variables, end):
    [target] = panel["targets"]
    result = prometheus.instant(substitute(target["expr"], variables), end)
    value = float(result[0]["value"][1]) if result else 0.0
    ax.text(0.5, 0.45, f"{value:,.0f}", ha="center", va="center", fontsize=34, color="#3274d9", transform=ax.transAxes)
    ax.set_axis_off()
    return 1


def draw_pie(ax, panel, prometheus, variables, end):
    sizes, labels = [], []
    for target in panel["targets"]:
        for series in prometheus.instant(substitute(target["expr"], variables), end):
            value = float(series["value"][1])
            if value > 0:
                sizes.append(value)
                labels.append(legend(target.get("legendFormat", ""), series["metric"]))
    if sizes:
        ax.pie(sizes, labels=labels, autopct="%1.0f%%", textprops={"fontsize": 7})
    ax.set_aspect("equal")
    return len(sizes)


def render(
    dashboard: dict, prometheus: Prometheus, variables: dict[str, str], start: float, end: float, path: Path
) -> list[str]:
    """Draw one dashboard to path; returns the titles of panels that had no data."""
    panels = dashboard["panels"]
    columns = 2
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(15, 3.3 * rows), squeeze=False)
    empty = []
    for index, ax in enumerate(axes.flat):
        if index >= len(panels):
            ax.set_axis_off()
            continue
        panel = panels[index]
        ax.set_title(panel["title"], fontsize=10, loc="left", fontweight="bold")
        if panel["type"] == "timeseries":
            drawn = draw_timeseries(ax, panel, prometheus, variables, start, end)
        elif panel["type"] == "stat":
            drawn = draw_stat(ax, panel, prometheus, variables, end)
        else:
            drawn = draw_pie(ax, panel, prometheus, variables, end)
        if not drawn:
            empty.append(panel["title"])
            ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes, color="grey")
    when = datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(
        f"{dashboard['title']} - make demo's load, {round((end - start) / 60)} min to {when} "
        f"(namespace={variables['$namespace']}, job=aura, pod=All)",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return empty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL of a Prometheus that scraped Aura")
    parser.add_argument("--start", type=float, required=True, help="range start, Unix seconds")
    parser.add_argument("--end", type=float, required=True, help="range end, Unix seconds")
    parser.add_argument("--namespace", default="demo", help="the namespace label of the targets")
    parser.add_argument("--scrape-interval", type=float, default=5, help="seconds; $__rate_interval is 4x")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    variables = {
        "$__rate_interval": f"{int(4 * args.scrape_interval)}s",
        "$__range": f"{int(args.end - args.start)}s",
        "$namespace": re.escape(args.namespace),
        "$job": "aura",
        "$pod": ".+",
    }
    prometheus = Prometheus(args.prometheus)
    status = 0
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        out = args.out / f"{path.stem}.png"
        empty = render(dashboard, prometheus, variables, args.start, args.end, out)
        print(
            f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
            + (f" (no data: {', '.join(empty)})" if empty else "")
        )
        status = status or (1 if empty else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
