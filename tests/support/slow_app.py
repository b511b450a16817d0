"""Aura's app plus routes that hold a worker: saturation tests need them, the product has none."""

from __future__ import annotations

import os
import socket
import time

from flask import request

from wsgi import app


@app.get("/test/slow")
def slow():
    """Sleep ``s`` seconds (at most 10): a worker busy without using CPU."""
    seconds = min(float(request.args.get("s", "1")), 10.0)
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/test/fail")
def fail():
    """Fail unexpectedly: a 500 in the project's error shape."""
    raise RuntimeError("a failure for the 5xx metrics")


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


@app.get("/test/dependency")
def dependency():
    """Ask the dependency on 127.0.0.1:``port`` (a test's server) and wait for its answer, as long
    as it takes: a worker stuck on a dependency that stopped answering. Sends its pid first."""
    with socket.create_connection(("127.0.0.1", int(request.args["port"]))) as sock:
        sock.sendall(f"{os.getpid()}\n".encode())
        answer = sock.recv(64)
    return {"answer": answer.decode()}
