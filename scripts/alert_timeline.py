#!/usr/bin/env python3
"""`make demo`'s alert timeline: wait for an alert, and print which alerts fired, when, and when
they resolved, with the notifications the sink received.

    python scripts/alert_timeline.py wait --prometheus URL --alert NAME --state firing --timeout 420
    python scripts/alert_timeline.py report --prometheus URL --since EPOCH [--notifications FILE]

`wait` polls Prometheus's /api/v1/alerts every 2 s; it exits 0 once the alert is in the state
(`firing`, or `inactive`: neither pending nor firing), 1 when the time runs out. `report` reads
the ALERTS series Prometheus recorded since EPOCH (firing intervals at the evaluation interval's
resolution) and the sink's log (scripts/alert_sink.py --log), and prints one line per firing
interval and per notification, in UTC. Loopback Prometheus only; a signal ends either quietly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit
from urllib.request import urlopen

POLL_SECONDS = 2.0
STEP_SECONDS = 5  # the demo's evaluation interval
# Labels every alert has, or that add nothing to "where": the rest tell two series of one alert apart.
_COMMON_LABELS = {
    "__name__",
    "alertname",
    "alertstate",
    "namespace",
    "pod",
    "job",
    "instance",
    "severity",
    "slo",
    "burn",
}


def _get(base: str, path: str, **params: object) -> dict:
    url = f"{base.rstrip('/')}{path}" + (f"?{urlencode(params)}" if params else "")
    with urlopen(url, timeout=10) as response:  # noqa: S310 - a loopback URL, checked in main()
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]


def alert_states(prometheus: str) -> dict[str, str]:
    """alertname -> its most advanced state now: firing, pending (absent: inactive)."""
    states: dict[str, str] = {}
    for alert in _get(prometheus, "/api/v1/alerts")["alerts"]:
        name = alert["labels"]["alertname"]
        if states.get(name) != "firing":
            states[name] = alert["state"]
    return states


def wait(prometheus: str, alert: str, state: str, timeout: float) -> bool:
    """True once `alert` is in `state` (firing, or inactive), False when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            now = alert_states(prometheus).get(alert, "inactive")
        except OSError:
            now = None  # Prometheus busy or restarting: ask again
        if now == state:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def firing_intervals(prometheus: str, since: float, until: float) -> list[tuple[str, str, float, float | None]]:
    """(alertname, where, first firing sample, resolved at or None) per firing interval."""
    data = _get(
        prometheus,
        "/api/v1/query_range",
        query='ALERTS{alertstate="firing"}',
        start=since,
        end=until,
        step=STEP_SECONDS,
    )
    intervals = []
    for series in data["result"]:
        labels = series["metric"]
        where = " ".join(
            [labels.get("pod") or labels.get("namespace") or ""]
            + [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _COMMON_LABELS]
        )
        stamps = [float(t) for t, _ in series["values"]]
        start = previous = stamps[0]
        for stamp in stamps[1:] + [None]:
            if stamp is None or stamp - previous > STEP_SECONDS * 1.5:
                still = stamp is None and until - previous <= STEP_SECONDS * 1.5
                intervals.append((labels["alertname"], where, start, None if still else previous + STEP_SECONDS))
                if stamp is not None:
                    start = stamp
            if stamp is not None:
                previous = stamp
    return sorted(intervals, key=lambda i: (i[2], i[0]))


def _clock(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S")


def report(prometheus: str, since: float, notifications: str | None) -> str:
    """The timeline as text."""
    until = time.time()
    lines = [f"Alert timeline (UTC), {_clock(since)} to {_clock(until)}:"]
    intervals = firing_intervals(prometheus, since, until)
    width = max([len(name) for name, *_ in intervals] + [10])
    where_width = max([len(where) for _, where, *_ in intervals] + [8])
    for name, where, start, end in intervals:
        ended = f"resolved {_clock(end)} ({end - start:.0f}s firing)" if end else "STILL FIRING at the end"
        lines.append(f"  {name:<{width}}  {where:<{where_width}}  fired {_clock(start)}  {ended}")
    if not intervals:
        lines.append("  no alert fired")
    if notifications:
        try:
            with open(notifications) as log:
                sent = [line.rstrip("\n") for line in log if line.strip()]
        except FileNotFoundError:
            sent = []
        lines.append(f"Notifications delivered to the sink ({len(sent)}; time receiver status alert):")
        lines += [f"  {' '.join(line.split()[:4])}" for line in sent] or ["  none"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    waiting = sub.add_parser("wait", help="wait until an alert is firing (or inactive)")
    waiting.add_argument("--alert", required=True)
    waiting.add_argument("--state", choices=("firing", "inactive"), default="firing")
    waiting.add_argument("--timeout", type=float, default=300)
    reporting = sub.add_parser("report", help="print the timeline since --since")
    reporting.add_argument("--since", type=float, required=True, help="seconds since the epoch")
    reporting.add_argument("--notifications", help="the sink's log file")
    for command in (waiting, reporting):
        command.add_argument("--prometheus", required=True, help="e.g. http://127.0.0.1:9090")
    args = parser.parse_args(argv)
    if urlsplit(args.prometheus).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--prometheus must be a loopback URL")
    # Ctrl-C in the demo reaches this process too: end quietly, the demo is stopping.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(130))
    if args.command == "wait":
        return 0 if wait(args.prometheus, args.alert, args.state, args.timeout) else 1
    print(report(args.prometheus, args.since, args.notifications), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
