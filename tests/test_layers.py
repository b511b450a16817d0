"""The web layer (`aura.api`, `aura.app`) is the only one that knows Flask."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import programs

ROOT = Path(__file__).resolve().parents[1]
BELOW_THE_WEB = ("auth", "services", "workflows", "infra", "metrics")
WEB_LAYER = ("aura.api", "aura.app", "aura.cli")


def _imports(path: Path, package: str) -> set[str]:
    """Every module a file imports, at the top or inside functions (relative ones resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.update(f"{module}.{alias.name}" for alias in node.names)
            names.add(module)
    return names


def _forbidden(name: str) -> bool:
    """Flask, its extensions (flask_*), Werkzeug, or the web layer."""
    top = name.split(".")[0]
    return top in ("flask", "werkzeug") or top.startswith("flask_") or ".".join(name.split(".")[:2]) in WEB_LAYER


@pytest.mark.parametrize("package", BELOW_THE_WEB)
def test_no_module_below_the_web_layer_imports_flask_or_the_api(package):
    files = sorted((ROOT / "aura" / package).rglob("*.py"))
    assert files
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in _imports(path, ".".join(path.relative_to(ROOT).parent.parts))
        if _forbidden(name)
    }
    assert not found, sorted(found)


def test_the_check_sees_imports_inside_functions_and_relative_ones(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    import flask_limiter\n    from ..api import errors\n    from . import redis\n")
    found = {name for name in _imports(module, "aura.infra") if _forbidden(name)}
    assert found == {"flask_limiter", "aura.api", "aura.api.errors"}


def _loaded_flask_modules(*modules: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, programs.path("flask_modules_loaded.py"), *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_metrics_and_workflows_load_no_flask_at_all():
    # The two pure layers do not even reach Flask through the database handle.
    assert _loaded_flask_modules("aura.metrics", "aura.workflows") == []


def test_the_loaded_modules_check_sees_flask():
    assert "flask" in _loaded_flask_modules("aura.api")
