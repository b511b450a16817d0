"""prometheus-client picks its storage at import: Aura refuses a wrong order, and works without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, env_extra: dict | None = None, tmp_path: Path | None = None):
    import os

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_importing_prometheus_client_before_the_variable_is_refused(tmp_path):
    result = _run(f"""
        import os, prometheus_client
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        import aura.metrics.definitions
    """)
    assert result.returncode != 0
    assert "imported before PROMETHEUS_MULTIPROC_DIR was set" in result.stderr


def test_variable_set_first_gives_file_storage(tmp_path):
    result = _run("""
        from aura.metrics import definitions
        definitions.TOKENS_ISSUED.labels("access").inc()
    """, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())


def test_without_prometheus_client_the_app_runs_and_metrics_is_404(tmp_path):
    # A None entry in sys.modules makes `import prometheus_client` raise ImportError.
    result = _run(f"""
        import sys, json
        sys.modules["prometheus_client"] = None
        from aura import create_app
        app = create_app(dict(env="testing", instance_path={str(tmp_path)!r},
                              database_url="sqlite:///{tmp_path}/t.db",
                              jwt_secret_key="k" * 40, redis_url="redis://127.0.0.1:1",
                              password_hash_time_cost=1, password_hash_memory_cost=8))
        from aura.extensions import db
        with app.app_context():
            db.create_all()
        c = app.test_client()
        out = dict(
            metrics=c.get("/metrics").status_code,
            metrics_body=c.get("/metrics").get_json(),
            register=c.post("/api/v1/auth/register",
                            json=dict(email="a@b.io", password="long-enough")).status_code,
            login=c.post("/api/v1/auth/login",
                         json=dict(email="a@b.io", password="long-enough")).status_code,
            loaded="prometheus_client" in sys.modules and sys.modules["prometheus_client"] is not None,
        )
        print(json.dumps(out))
    """)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"metrics": 404, "metrics_body": out["metrics_body"], "register": 201,
                   "login": 200, "loaded": False}
    assert out["metrics_body"]["error"] == "not_found"
