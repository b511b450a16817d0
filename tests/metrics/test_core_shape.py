"""The metrics core's contract with its users: its own imports, its version check, the null recorder."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import aura.metrics as core
from aura.instrumentation.recorder import PrometheusRecorder, Recorder
from aura.metrics import _compat

CORE = Path(core.__file__).parent


def test_the_core_imports_nothing_else_of_aura():
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("aura"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("aura") for a in node.names), path.name


def test_the_public_api_is_declared():
    assert sorted(core.__all__) == core.__all__ and all(hasattr(core, name) for name in core.__all__)


def test_only_the_compat_module_touches_prometheus_client_internals():
    # Private attributes of prometheus_client objects used anywhere else would escape the version check.
    private = {
        "_m",
        "_positions",
        "_used",
        "_capacity",
        "_init_value",
        "_accumulate_metrics",
        "_multiprocess_mode",
        "_buckets",
        "_upper_bounds",
        "_sum",
        "_INITIAL_MMAP_SIZE",
    }
    for path in CORE.glob("*.py"):
        if path.name == "_compat.py":
            continue
        used = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
        assert not used & private, f"{path.name} uses {used & private}"


def test_version_check():
    assert _compat.problem() is None  # the pinned version is a tested one
    message = _compat.problem("0.99.0")
    assert message and "0.99.0" in message and "tested" in message


def test_prometheus_recorder_overrides_every_event():
    events = {name for name, member in inspect.getmembers(Recorder, inspect.isfunction) if not name.startswith("_")}
    assert events  # the interface is the base class's public methods
    for name in events:
        assert getattr(PrometheusRecorder, name) is not getattr(Recorder, name), f"{name} records nothing"
        assert inspect.signature(getattr(PrometheusRecorder, name)) == inspect.signature(getattr(Recorder, name))


def test_the_null_recorder_accepts_every_event():
    null = Recorder()
    assert null.enabled is False
    null.auth_request("login", True)
    null.rate_limit_hit("/x", "1.2.3.4")
    assert null.http_recorder("GET", "/x", "200")(0.1) is None
