"""What the revocation check costs per authenticated request: the durable store's check (one Lua
script: the marker against the server's run_id, and the token's and family's keys) against the
plain MGET of the same three keys it replaced (issue 23 item 3). Medians of N calls on a real
Redis; not part of `make bench`.

    AURA_TEST_REDIS_URL=redis://127.0.0.1:6379 .venv/bin/python bench/revocation_check.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from aura.api.context import services
    from aura.app import create_app
    from aura.auth.revocation import KEY_PREFIX, LOADED_MARKER

    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    tmp = Path(tempfile.mkdtemp(prefix="aura-revocation-bench-"))
    app = create_app(
        {
            "env": "testing",
            "database_url": f"sqlite:///{tmp / 'bench.db'}",
            "instance_path": tmp,
            "redis_url": os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            "redis_auth_db": 12,
            "redis_rate_limit_db": 13,
            "jwt_secret_key": "bench-secret-key-that-is-long-enough-0123456789",
            "rate_limit_enabled": False,
            "metrics_enabled": False,
        }
    )
    store, client = services(app).revocation, services(app).redis.auth
    with app.app_context():
        from aura.extensions import db

        db.create_all()
        store.is_revoked("warm-up", "family")  # loads, sets the marker
        keys = [LOADED_MARKER, KEY_PREFIX + "jti", KEY_PREFIX + "family"]
        for name, call in (
            ("MGET of the three keys (before)", lambda: client.mget(keys)),
            ("script: marker vs run_id + keys (now)", lambda: store.is_revoked("jti", "family")),
        ):
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
            times.sort()
            print(
                f"{name}: median {statistics.median(times) * 1e6:.1f} µs, p99 {times[int(calls * 0.99)] * 1e6:.1f} µs"
            )


if __name__ == "__main__":
    main()
