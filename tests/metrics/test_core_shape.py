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
    files = [*CORE.glob("*.py"), *(CORE.parent / "instrumentation").glob("*.py")]
    assert len(files) > 15
    for path in files:
        if path.name == "_compat.py":
            continue
        # AuraValue keeps its float in an attribute of its own named _value, as the stock values do.
        private = _compat.PRIVATE_NAMES - {"_value"} if path.name == "values.py" else _compat.PRIVATE_NAMES
        used = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
        assert not used & private, f"{path.name} uses {used & private}"


def test_the_compat_module_declares_every_private_name_it_uses():
    tree = ast.parse(Path(_compat.__file__).read_text())
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")}
    own = {"__init__", "__code__", "_reserve", "_release", "_code_names"}
    assert used - own <= _compat.PRIVATE_NAMES, sorted(used - own - _compat.PRIVATE_NAMES)


def test_version_check():
    assert _compat.problem() is None  # the pinned version is a supported one
    assert _compat.missing_names() == []
    for version in ("0.99.0", "0.17.1", "0.26.0rc1", "1.0"):
        message = _compat.problem(version)
        assert message and version in message and "supports" in message
    assert _compat.problem(_compat.SUPPORTED_VERSIONS[0]) is None


def test_the_version_check_sees_a_renamed_private_name(monkeypatch):
    from prometheus_client import Histogram, mmap_dict

    def metric_init(self):  # a release that renamed the histogram's buckets
        self._bucket_values = []

    monkeypatch.delattr(mmap_dict, "_INITIAL_MMAP_SIZE")
    monkeypatch.setattr(Histogram, "_metric_init", metric_init)
    assert _compat.missing_names() == ["mmap_dict._INITIAL_MMAP_SIZE", "Histogram._sum", "Histogram._buckets"]
    _compat.problem.cache_clear()
    try:
        message = _compat.problem(_compat.SUPPORTED_VERSIONS[1])
    finally:
        _compat.problem.cache_clear()
    assert message and "lacks mmap_dict._INITIAL_MMAP_SIZE, Histogram._sum, Histogram._buckets" in message


def test_prometheus_recorder_overrides_every_event():
    # "ǁ": mutmut's copies of each method (xǁRecorderǁname__mutmut_N), there while `make mutate` runs.
    events = {
        name
        for name, member in inspect.getmembers(Recorder, inspect.isfunction)
        if not name.startswith("_") and "ǁ" not in name
    }
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
