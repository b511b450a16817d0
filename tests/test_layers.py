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


# What each lower layer must not import: the layers above it. The metrics core imports nothing
# else of Aura (tests/metrics/test_core_shape.py); instrumentation records for every layer.
UPWARD = {
    "metrics": ("aura.api", "aura.app", "aura.cli", "aura.services", "aura.workflows", "aura.instrumentation"),
    "instrumentation": ("aura.api", "aura.app", "aura.cli", "aura.services", "aura.infra"),
}


def _package_files(package: str) -> list[tuple[Path, str]]:
    files = sorted((ROOT / "aura" / package).rglob("*.py"))
    assert files
    return [(path, ".".join(path.relative_to(ROOT).parent.parts)) for path in files]


@pytest.mark.parametrize("package", sorted(UPWARD))
def test_no_lower_layer_imports_a_layer_above_it(package):
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path, dotted in _package_files(package)
        for name in _imports(path, dotted)
        if any(name == above or name.startswith(above + ".") for above in UPWARD[package])
    }
    assert not found, sorted(found)


def _function_level_imports(path: Path) -> list[int]:
    """Lines of the imports inside functions of one file."""
    tree = ast.parse(path.read_text(), str(path))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return sorted(
        node.lineno
        for function in functions
        for node in ast.walk(function)
        if isinstance(node, ast.Import | ast.ImportFrom)
    )


@pytest.mark.parametrize("package", sorted(UPWARD))
def test_the_metrics_layers_import_at_the_top_only(package):
    # An import inside a function hides a dependency (or a cycle) until that function runs.
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for path, _ in _package_files(package)
        for line in _function_level_imports(path)
    }
    assert not found, sorted(found)


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of a module graph (first module repeated at the end), or []."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return []
        for dep in sorted(graph.get(name, ())):
            cycle = visit(dep, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return []

    return next((cycle for cycle in (visit(name, []) for name in sorted(graph)) if cycle), [])


def test_the_metrics_core_has_no_import_cycle():
    modules = {path.stem: path for path, _ in _package_files("metrics") if path.stem != "__init__"}
    graph = {
        name: {dep.rsplit(".", 1)[-1] for dep in _imports(path, "aura.metrics") if dep.startswith("aura.metrics.")}
        & set(modules)
        for name, path in modules.items()
    }
    assert "exposition" in graph["gunicorn"]  # the graph sees relative imports
    assert _cycle(graph) == []


def test_the_checks_see_a_function_level_import_and_a_cycle(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("import os\n\n\ndef f():\n    from . import exposition\n")
    assert _function_level_imports(module) == [5]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
