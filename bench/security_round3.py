"""The figures of docs/security.md for issue 23 (application side), measured on this checkout.

    .venv/bin/python bench/security_round3.py [cpu] [amplification] [listing] [flood]
        [--database-url URL] [--runs N]

1. cpu: the worker CPU (process time, in-process) spent refusing a 1 MiB audit body of 31,000
   tiny file objects (the file-count check), median of --runs.
2. amplification: request and answer bytes of 6.5 KB of UTF-8 built to amplify (three files,
   255-character astral paths, 80 findings each).
3. listing: GET /api/v1/workflows?limit=100 over 100 stored runs of ~300 KB each, in-process,
   median of --runs (SQLite, or --database-url for PostgreSQL: a scratch database it empties).
4. flood: Gunicorn with 4 workers, production Argon2 (t=3, 64 MiB), rate limits at their
   defaults, a private redis-server; 40 loopback addresses registering 6 times each at once
   (a 429 for the hashing budget retried after its Retry-After); /healthz timed every 0.1 s
   meanwhile from another address.

Run it from a checkout of main to get the "before" figures (the script only needs the public
API). Everything runs on free loopback ports and is stopped by pid; the numbers depend on the
machine and are for docs, never asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aura.testing.servers import Gunicorn, RedisServer, app_env, migrate, session_from  # noqa: E402

PASSWORD = "long-enough-password-1"


def _app(tmp: Path, database_url: str | None, redis_url: str):
    from flask_migrate import upgrade

    from aura.app import create_app
    from aura.extensions import db

    settings = {
        "env": "testing",
        "database_url": database_url or f"sqlite:///{tmp / 'bench.db'}",
        "instance_path": tmp / "instance",
        "redis_url": redis_url,
        "redis_auth_db": 14,
        "redis_rate_limit_db": 15,
        "jwt_secret_key": "bench-secret-key-0123456789abcdef-0123456789abcdef",
        "password_hash_time_cost": 1,
        "password_hash_memory_cost": 8,
        "rate_limit_enabled": False,
        "metrics_enabled": False,
    }
    app = create_app(settings)
    with app.app_context():
        if database_url:
            db.session.execute(db.text("DROP SCHEMA public CASCADE"))
            db.session.execute(db.text("CREATE SCHEMA public"))
            db.session.commit()
        upgrade()
    return app


def _bearer(client) -> tuple[dict, str]:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    token = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).get_json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, email


def cpu(app, runs: int) -> None:
    client = app.test_client()
    headers, _ = _bearer(client)
    body = json.dumps({"files": [{"path": "a.py", "content": ""}] * 31_000}).encode()
    samples, answer = [], None
    for _ in range(runs):
        started = time.process_time()
        response = client.post(
            "/api/v1/workflows/audit", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        samples.append(time.process_time() - started)
        answer = (response.status_code, response.get_json()["error"], len(response.data))
    print(
        f"cpu: {len(body):,} B body of 31,000 file objects -> {answer[0]} {answer[1]} ({answer[2]:,} B); "
        f"CPU median {statistics.median(samples) * 1000:.0f} ms, min {min(samples) * 1000:.0f}, "
        f"max {max(samples) * 1000:.0f} ({runs} runs)"
    )


def amplification(app) -> None:
    client = app.test_client()
    headers, _ = _bearer(client)
    noisy = "print(1)\n" * 20 + "breakpoint()\n" * 20 + "eval(x)\n" * 20 + "try:\n    f()\nexcept:\n    pass\n" * 20
    paths = [f"{chr(0x1D54F + i) * 251}.py" for i in range(3)]
    sent = json.dumps({"files": [{"path": p, "content": noisy} for p in paths]}, ensure_ascii=False).encode()
    response = client.post(
        "/api/v1/workflows/audit", data=sent, headers={**headers, "Content-Type": "application/json"}
    )
    body = response.get_json()
    again = client.get(f"/api/v1/workflows/audit/{body['id']}", headers=headers)
    print(
        f"amplification: request {len(sent):,} B -> answer {len(response.data):,} B "
        f"(x{len(response.data) / len(sent):.1f}), {len(body['violations'])} findings listed of "
        f"{sum(body['violation_counts'].values())}, truncated={body['truncated']}; GET {len(again.data):,} B"
    )


def listing(app, runs: int) -> None:
    from aura.extensions import db
    from aura.models import User, WorkflowRun

    client = app.test_client()
    headers, email = _bearer(client)
    finding = {
        "type": "print_statement",
        "path": "p" * 240 + ".py",
        "line": 1,
        "message": "m" * 200,
        "severity": "warning",
    }
    result = {
        "status": "remediation_required",
        "violations": [finding] * 600,
        "files_processed": 1,
        "files_skipped": 0,
        "remediation": [],
        "truncated": False,
        "violation_counts": {"print_statement": 600},
    }
    with app.app_context():
        user_id = db.session.scalar(db.select(User.id).where(User.email == email))
        for _ in range(100):
            run_id = str(uuid.uuid4())
            db.session.add(
                WorkflowRun(id=run_id, workflow_type="audit", user_id=user_id, result={**result, "id": run_id})
            )
        db.session.commit()
        dialect = db.engine.dialect.name
    size = len(json.dumps({**result, "id": "x" * 36}))
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/api/v1/workflows?limit=100", headers=headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.get_json()["runs"]) == 100
    print(
        f"listing ({dialect}): 100 runs of {size:,} B each, limit=100: median "
        f"{statistics.median(samples) * 1000:.1f} ms, min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f} "
        f"({runs} runs)"
    )


def flood(tmp: Path) -> None:
    redis = RedisServer().start()
    try:
        env = app_env(
            tmp,
            f"sqlite:///{tmp / 'flood.db'}",
            REDIS_URL=redis.url,
            REDIS_AUTH_DB="0",
            REDIS_RATE_LIMIT_DB="1",
            AURA_ENV="production",
            PASSWORD_HASH_TIME_COST="3",
            PASSWORD_HASH_MEMORY_COST="65536",
            PASSWORD_HASH_MAX_CONCURRENT="2",
            RATE_LIMIT_ENABLED="true",
        )
        migrate(env)
        with Gunicorn(tmp, env, workers=4, PROMETHEUS_MULTIPROC_DIR=str(tmp / "metrics")) as server:
            server.wait_for_workers(4)
            over = threading.Event()
            probes: list[float] = []

            def probe() -> None:
                session = session_from("127.0.2.1")
                for _ in range(3000):
                    if over.wait(0.1):
                        return
                    started = time.perf_counter()
                    try:
                        session.get(f"{server.url}/healthz", timeout=30)
                        probes.append(time.perf_counter() - started)
                    except requests.RequestException:
                        probes.append(30.0)

            def register(n: int) -> list:
                # Six registrations per address; a 429 for the hashing budget is retried after its
                # Retry-After (up to 60 times), as a client would, so the flood lasts.
                session = session_from(f"127.0.3.{n + 1}")
                statuses = []
                for i in range(6):
                    body = {"email": f"flood-{n}-{i}-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD}
                    for _try in range(60):
                        try:
                            response = session.post(f"{server.url}/api/v1/auth/register", json=body, timeout=120)
                        except requests.RequestException as exc:
                            statuses.append(type(exc).__name__)
                            break
                        error = response.json().get("error") if response.status_code == 429 else None
                        statuses.append(f"{response.status_code} {error}" if error else response.status_code)
                        if error != "too_many_concurrent_requests":
                            break
                        time.sleep(int(response.headers.get("Retry-After", "1")))
                return statuses

            prober = threading.Thread(target=probe)
            prober.start()
            started = time.monotonic()
            try:
                with ThreadPoolExecutor(40) as pool:
                    statuses = [s for batch in pool.map(register, range(40)) for s in batch]
            finally:
                took = time.monotonic() - started
                over.set()
                prober.join(60)
            probes.sort()
            counts = {code: statuses.count(code) for code in sorted(set(statuses), key=str)}
            print(f"flood: 40 addresses x 6 registrations in {took:.1f} s, answers: {counts}")
            print(
                f"/healthz during the flood: n={len(probes)} median {statistics.median(probes) * 1000:.0f} ms, "
                f"p90 {probes[int(len(probes) * 0.9)] * 1000:.0f} ms, max {probes[-1] * 1000:.0f} ms, "
                f"over 3 s (the readiness probe's timeout): {sum(p > 3 for p in probes)}"
            )
    finally:
        redis.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("figures", nargs="*", default=["cpu", "amplification", "listing", "flood"])
    parser.add_argument("--database-url", default="", help="PostgreSQL scratch database for `listing`")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aura-round3-") as tmp_dir:
        tmp = Path(tmp_dir)
        if set(args.figures) & {"cpu", "amplification", "listing"}:
            app = _app(tmp, args.database_url or None, args.redis_url)
            if "cpu" in args.figures:
                cpu(app, args.runs)
            if "amplification" in args.figures:
                amplification(app)
            if "listing" in args.figures:
                listing(app, args.runs)
        if "flood" in args.figures:
            flood(tmp)


if __name__ == "__main__":
    main()
