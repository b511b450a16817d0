"""Aura with prometheus_client unimportable: serve a few requests, print what they returned as JSON.

argv[1] is a scratch directory (instance path and SQLite file). A None entry in sys.modules makes
`import prometheus_client` raise ImportError.
"""

import json
import sys

sys.modules["prometheus_client"] = None
from aura.app import create_app  # noqa: E402 - after prometheus_client is blocked

scratch = sys.argv[1]
app = create_app(
    dict(
        env="testing",
        instance_path=scratch,
        database_url=f"sqlite:///{scratch}/t.db",
        jwt_secret_key="k" * 40,
        redis_url="redis://127.0.0.1:1",
        password_hash_time_cost=1,
        password_hash_memory_cost=8,
    )
)
from aura.extensions import db  # noqa: E402

with app.app_context():
    db.create_all()
c = app.test_client()
out = dict(
    metrics=c.get("/metrics").status_code,
    metrics_body=c.get("/metrics").get_json(),
    register=c.post("/api/v1/auth/register", json=dict(email="a@b.io", password="long-enough")).status_code,
    login=c.post("/api/v1/auth/login", json=dict(email="a@b.io", password="long-enough")).status_code,
    loaded="prometheus_client" in sys.modules and sys.modules["prometheus_client"] is not None,
)
print(json.dumps(out))
