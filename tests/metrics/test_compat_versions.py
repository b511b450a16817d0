"""The metrics core against the oldest and the newest prometheus_client it supports, each in a scratch venv.

The version check (``aura.metrics._compat``) lets Aura use prometheus_client's private internals
on every release from ``SUPPORTED_VERSIONS[0]`` to ``SUPPORTED_VERSIONS[1]``; this proves both
ends. Each venv gets that release of prometheus-client and sees the rest of this venv's packages
(pytest, hypothesis, Flask...) behind it, and runs the tests that compare Aura with
prometheus_client: the differential merge tests, the collector, the value class and request
recorder, and the exposition through /metrics. ``pytest -m compat`` selects it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from aura.metrics._compat import SUPPORTED_VERSIONS

ROOT = Path(__file__).resolve().parents[2]
TESTS = (
    "tests/metrics/test_stock_semantics.py",
    "tests/metrics/test_collector.py",
    "tests/metrics/test_values.py",
    "tests/metrics/test_http_metrics.py",
    "tests/metrics/test_exemplars.py",
)
pytestmark = [pytest.mark.compat, pytest.mark.slow(30)]  # a venv and a pytest run each


def _venv_with(tmp_path: Path, version: str) -> Path:
    """A venv whose prometheus-client is ``version``, with this venv's other packages behind it."""
    venv = tmp_path / f"venv-{version}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site]
    subprocess.run([*install, f"prometheus-client=={version}"], check=True, capture_output=True, timeout=300)
    # A .pth line is appended to sys.path: the venv's own prometheus_client comes first.
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_the_metrics_core_means_what_prometheus_client_means_at_both_ends_of_the_range(tmp_path, version):
    python = _venv_with(tmp_path, version)
    check = "import prometheus_client, aura.metrics._compat as c; print(c.installed_version(), c.problem())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = subprocess.run([python, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert seen.stdout.split() == [version, "None"], seen.stderr  # Aura's value class and collector, not stock
    result = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"), *TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
