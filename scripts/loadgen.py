#!/usr/bin/env python3
"""Drive realistic mixed traffic at a running Aura, bounded in requests and time.

Registrations (some duplicates), logins (good, bad password, unknown email, an inactive
account), refresh, logout, reuse of revoked tokens, expired tokens, rate-limit breaches, and
struggle and audit runs covering every violation type and all three audit statuses. A progress
bar on stderr while it runs, a summary table at the end. Targets must be loopback addresses
unless --allow-remote is given. Ctrl-C (SIGINT) or SIGTERM stops it at once: no new request
starts, the bar stops, the table so far is printed, and it exits as interrupted (SIGINT).

    .venv/bin/python scripts/loadgen.py --url http://127.0.0.1:8000 --requests 2000 --seconds 60
    (repeat --url to spread the load over several instances)
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

import requests

PASSWORD = "loadgen-password-1"
# One source per audit outcome, together covering every violation type.
AUDIT_CASES = {
    "pass": [{"path": "ok.py", "content": "def add(a, b):\n    return a + b\n"}],
    "remediation_required": [
        {
            "path": "warn.py",
            "content": "def f():\n    print('hi')\n    try:\n        pass\n    except:\n        pass\n",
        },
        {"path": "long.py", "content": "def long():\n" + "    x = 1\n" * 60},
        {"path": "README.md", "content": "# not python"},
    ],
    "fail": [
        {
            "path": "bad.py",
            "content": "import pdb\npassword = 'hunter2-secret'\npdb.set_trace()\n"
            "eval('1+1')\nbreakpoint()\nAWS = 'AKIAABCDEFGHIJKLMNOP'\n",
        },
        {"path": "broken.py", "content": "def oops(:\n    pass\n"},
    ],
}
STRUGGLE_CASES = [
    {
        "exercise_id": "loops-1",
        "edit_frequency": 24,
        "error_count": 15,
        "window_seconds": 300,
        "error_types": ["IndexError", "TypeError"],
        "topic": "loops",
    },
    {"exercise_id": "funcs-2", "edit_frequency": 2, "error_count": 0, "window_seconds": 300},
    {
        "exercise_id": "names-3",
        "edit_frequency": 30,
        "error_count": 20,
        "window_seconds": 120,
        "error_types": ["NameError"],
        "topic": "functions",
    },
]


def check_target(url: str, allow_remote: bool) -> None:
    """Refuse anything but loopback unless explicitly allowed."""
    host = urlsplit(url).hostname or ""
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not allow_remote and not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        sys.exit(
            f"refusing non-loopback target {url} ({', '.join(sorted(addresses))}); pass --allow-remote if you mean it"
        )


class Load:
    """Shared state of one run: budget, tallies, tokens."""

    def __init__(self, args):
        self.args = args
        self.bases = [url.rstrip("/") for url in args.url]
        self.deadline = time.monotonic() + args.seconds
        self.lock = threading.Lock()
        self.sent = 0
        self.tally: Counter = Counter()
        self.run_id = uuid.uuid4().hex[:8]
        self.users: list[str] = []
        self.stopped = threading.Event()  # set by the main thread when the run is over or interrupted
        # The signal that interrupted the run, set by its handler. A plain attribute, not the
        # Event: a handler runs in the main thread between any two bytecodes, even inside
        # Event.set() or inside another handler, and would deadlock on the Event's lock.
        self.signal: int | None = None

    def interrupt(self, signum: int, _frame: object) -> None:
        """The SIGINT and SIGTERM handler: the first signal ends the run. It takes no lock."""
        if self.signal is None:
            self.signal = signum

    def budget_left(self) -> bool:
        return (
            self.signal is None
            and not self.stopped.is_set()
            and self.sent < self.args.requests
            and time.monotonic() < self.deadline
        )

    def call(self, action: str, method: str, path: str, *, pin: bool = False, **kwargs) -> requests.Response | None:
        """One request, tallied by action and status; None when out of budget or cut.

        Requests rotate over the targets; `pin` sends this one to the first target.
        """
        with self.lock:
            if not self.budget_left():
                return None
            self.sent += 1
            base = self.bases[0 if pin else self.sent % len(self.bases)]
        kwargs.setdefault("timeout", 15)
        headers = kwargs.pop("headers", {})
        headers["Connection"] = "close"  # spread requests over every worker
        # As the proxy in front of Aura stamps it (nginx: t=${msec}); the app reads it only when it
        # trusts a proxy (TRUSTED_PROXY_COUNT), and then records http_request_queue_seconds.
        headers["X-Request-Start"] = f"t={time.time():.3f}"
        try:
            response = requests.request(method, base + path, headers=headers, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.tally[(action, f"error:{type(exc).__name__}")] += 1
            return None
        with self.lock:
            self.tally[(action, str(response.status_code))] += 1
        return response

    def progress(self) -> None:
        width = 40
        while True:
            done = min(self.sent / self.args.requests, 1.0)
            left = max(0.0, self.deadline - time.monotonic())
            bar = "#" * int(done * width)
            print(
                f"\r[{bar:<{width}}] {self.sent}/{self.args.requests} requests, {left:4.0f}s left",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if not self.budget_left():
                print(file=sys.stderr)
                return
            self.stopped.wait(0.2)


def login(load: Load, email: str, password: str = PASSWORD, action: str = "login", pin: bool = False) -> dict | None:
    response = load.call(action, "POST", "/api/v1/auth/login", json={"email": email, "password": password}, pin=pin)
    return response.json() if response is not None and response.status_code == 200 else None


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def setup(load: Load) -> str | None:
    """Register users (and a duplicate); keep an early access token to let it expire."""
    for i in range(load.args.users):
        email = f"user{i}-{load.run_id}@loadgen.example"
        response = load.call("register", "POST", "/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        if response is not None and response.status_code == 201:
            load.users.append(email)
    if load.users:
        load.call(
            "register_duplicate",
            "POST",
            "/api/v1/auth/register",
            json={"email": load.users[0].upper(), "password": PASSWORD},
        )
    tokens = login(load, load.users[0]) if load.users else None
    return tokens["access_token"] if tokens else None


def session_story(load: Load, rng: random.Random) -> None:
    """One user's session: login, me, workflows, refresh, logout, reuse of revoked tokens."""
    if not load.users:
        return
    email = rng.choice(load.users)
    tokens = login(load, email)
    if not tokens:
        return
    load.call("me", "GET", "/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    case = rng.choice(STRUGGLE_CASES)
    load.call("struggle", "POST", "/api/v1/workflows/struggle", json=case, headers=bearer(tokens["access_token"]))
    status = rng.choice(list(AUDIT_CASES))
    load.call(
        f"audit_{status}",
        "POST",
        "/api/v1/workflows/audit",
        json={"files": AUDIT_CASES[status]},
        headers=bearer(tokens["access_token"]),
    )
    old_refresh = tokens["refresh_token"]
    response = load.call("refresh", "POST", "/api/v1/auth/refresh", headers=bearer(old_refresh))
    if response is None or response.status_code != 200:
        return
    tokens = response.json()
    # Log out before reusing the rotated refresh token: a reuse ends the whole session (the
    # new tokens too), which would make every logout a 401 and a false authentication alert.
    load.call(
        "logout",
        "POST",
        "/api/v1/auth/logout",
        headers=bearer(tokens["access_token"]),
        json={"refresh_token": tokens["refresh_token"]},
    )
    load.call("refresh_reuse_revoked", "POST", "/api/v1/auth/refresh", headers=bearer(old_refresh))
    load.call("me_revoked", "GET", "/api/v1/auth/me", headers=bearer(tokens["access_token"]))


def failures(load: Load, rng: random.Random) -> None:
    """Bad passwords, unknown emails, the inactive account, missing and garbage tokens."""
    if load.users:
        login(load, rng.choice(load.users), "wrong-password", action="login_bad_password")
    login(load, f"nobody-{rng.randrange(10**6)}@loadgen.example", action="login_unknown")
    if load.args.inactive_email:
        login(load, load.args.inactive_email, action="login_inactive")
    load.call("me_missing_token", "GET", "/api/v1/auth/me")
    load.call("me_invalid_token", "GET", "/api/v1/auth/me", headers=bearer("not.a.token"))
    load.call("not_found", "GET", f"/no/such/page/{rng.randrange(1000)}")


def breach(load: Load, victim: str, attempts: range) -> None:
    """A burst on one account's login, past its limit: rate-limit hits.

    The first 40 attempts rotate over every target (the limit is shared, so it holds across
    them); the rest go to the first target, a sustained rate of hits on one series.
    """
    for n in attempts:
        if not load.budget_left():
            return
        login(load, victim, "wrong-password", action="login_burst", pin=n >= 40)


def worker(load: Load, seed: int, early_token: str | None) -> None:
    rng = random.Random(seed)
    while load.budget_left():
        roll = rng.random()
        if roll < 0.5:
            session_story(load, rng)
        elif roll < 0.9:
            failures(load, rng)
        elif early_token and time.monotonic() - load.early_at > load.args.token_ttl:
            load.call("me_expired_token", "GET", "/api/v1/auth/me", headers=bearer(early_token))
        else:
            load.call("healthz", "GET", "/healthz")


def main(argv: list[str] | None = None) -> dict:
    """Run the load; returns the tally as {action: {status: count}}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", help="target base URL; repeat for several instances (round robin)")
    parser.add_argument("--requests", type=int, default=1500, help="request budget (upper bound)")
    parser.add_argument("--seconds", type=float, default=60, help="time budget (upper bound)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--burst", type=int, default=400, help="logins in the rate-limit breach burst")
    parser.add_argument("--burst-threads", type=int, default=1, help="threads sharing the burst")
    parser.add_argument("--inactive-email", help="an account deactivated beforehand (expects 403)")
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=900,
        help="the server's ACCESS_TOKEN_EXPIRES: after it, the early token is sent as expired",
    )
    parser.add_argument("--allow-remote", action="store_true")
    parser.add_argument("--json", help="write the tally as JSON here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    args.url = args.url or ["http://127.0.0.1:8000"]
    for url in args.url:
        check_target(url, args.allow_remote)

    load = Load(args)
    load.started = time.monotonic()
    signal.signal(signal.SIGINT, load.interrupt)
    signal.signal(signal.SIGTERM, load.interrupt)
    bar = None if args.quiet else threading.Thread(target=load.progress, daemon=True)
    if bar:
        bar.start()
    early = setup(load)
    load.early_at = time.monotonic()  # the early token was issued before this: it expires within token_ttl
    victim = f"victim-{load.run_id}@loadgen.example"
    per_thread = max(1, args.burst // args.burst_threads)
    threads = [
        threading.Thread(target=breach, args=(load, victim, range(n * per_thread, (n + 1) * per_thread)))
        for n in range(args.burst_threads)
    ]
    threads += [threading.Thread(target=worker, args=(load, n, early)) for n in range(args.concurrency)]
    for t in threads:
        t.daemon = True  # a request in flight when interrupted must not hold up the exit
        t.start()
    for t in threads:
        while t.is_alive() and load.signal is None:
            t.join(0.2)
    load.stopped.set()  # wakes the bar at once
    if bar:
        bar.join(2)
    interrupted = load.signal
    if interrupted:  # threads in a request get 2 s in all to finish it; then they are left behind
        deadline = time.monotonic() + 2
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    table: dict[str, dict[str, int]] = {}
    with load.lock:
        tally = sorted(load.tally.items())
    for (action, status), count in tally:
        table.setdefault(action, {})[status] = count
    width = max(len(a) for a in table) if table else 10
    print(f"\n{'action':<{width}}  statuses")
    for action, statuses in table.items():
        print(f"{action:<{width}}  " + "  ".join(f"{s}: {n}" for s, n in statuses.items()))
    print(f"{'total':<{width}}  {sum(count for _, count in tally)} requests in {time.monotonic() - load.started:.1f}s")
    if interrupted:
        print("interrupted: load stopped")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(table, out, indent=2)
    if interrupted and __name__ == "__main__":
        # Die of the signal, so the calling shell (make demo) knows it was interrupted.
        sys.stdout.flush()
        signal.signal(interrupted, signal.SIG_DFL)
        os.kill(os.getpid(), interrupted)
    return table


if __name__ == "__main__":
    main()
