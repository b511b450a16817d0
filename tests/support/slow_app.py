"""Aura's app plus routes that hold a worker: saturation tests need them, the product has none."""

from __future__ import annotations

import time

from flask import request

from wsgi import app


@app.get("/test/slow")
def slow():
    """Sleep ``s`` seconds (at most 10): a worker busy without using CPU."""
    seconds = min(float(request.args.get("s", "1")), 10.0)
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/test/spin")
def spin():
    """Burn ``ms`` milliseconds of CPU (at most 500)."""
    end = time.process_time() + min(float(request.args.get("ms", "10")), 500.0) / 1000
    n = 0
    while time.process_time() < end:
        n += 1
    return {"loops": n}


@app.get("/test/garbage")
def garbage():
    """Leave ``n`` reference cycles (at most 100000) for the garbage collector."""
    for _ in range(min(int(request.args.get("n", "10000")), 100_000)):
        cycle: list = []
        cycle.append(cycle)
    return {"left": True}
