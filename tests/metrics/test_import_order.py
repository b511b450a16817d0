"""Import order does not matter, only Gunicorn workers write metric files, and Aura runs without prometheus-client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import programs

ROOT = Path(__file__).resolve().parents[2]


def _run(program: str, *args: str):
    """Run one of tests/support/programs from the repository, without a metrics directory."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, programs.path(program), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_import_order_does_not_matter_and_only_workers_write_files(tmp_path):
    # prometheus_client imported first (it then picks in-memory values), the directory set after:
    # definitions still installs Aura's value class. The process itself is no Gunicorn worker
    # (a `flask` command, a shell) and writes nothing; a worker forked from it writes its counts.
    result = _run("import_order_fork.py", str(tmp_path))
    assert result.returncode == 0, result.stderr
    from aura.metrics.fileformat import read_db_file

    names = {p.name for p in tmp_path.iterdir()}
    assert "counter_77-1.db" in names and all(n.endswith("_77-1.db") for n in names), names
    rows = {k: v for k, v, _ in read_db_file(str(tmp_path / "counter_77-1.db"))}
    assert [v for k, v in rows.items() if '"access"' in k and "tokens_issued_total" in k] == [3.0]


def test_a_flask_command_writes_no_metric_files(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "AURA_INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "REDIS_URL": "redis://127.0.0.1:1",
    }
    import os

    flask = str(Path(sys.executable).parent / "flask")
    result = subprocess.run(
        [flask, "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "AURA_"))}, **env},
    )
    assert result.returncode == 0, result.stderr
    assert list(metrics.iterdir()) == []


def test_without_prometheus_client_the_app_runs_and_metrics_is_404(tmp_path):
    result = _run("app_without_prometheus_client.py", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"metrics": 404, "metrics_body": out["metrics_body"], "register": 201, "login": 200, "loaded": False}
    assert out["metrics_body"]["error"] == "not_found"
