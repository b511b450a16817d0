"""Fixtures for the workflow tests: the bundled catalog and a one-file audit helper."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aura.workflows import AuditResult, AuditSettings, Lesson, load_catalog_file, run_audit

AuditOne = Callable[..., AuditResult]


@pytest.fixture(scope="session")
def catalog() -> list[Lesson]:
    """The bundled lessons.json catalog."""
    return load_catalog_file()


@pytest.fixture
def audit_one() -> AuditOne:
    """Audit a single source string; keyword arguments become AuditSettings fields."""

    def run(source: str | bytes, path: str = "mod.py", **settings: object) -> AuditResult:
        return run_audit({"files": [{"path": path, "content": source}]}, settings=AuditSettings(**settings))

    return run


def _found(result: AuditResult, rule: str | None = None) -> list[tuple[str, int]]:
    """(type, line) pairs of a result's violations, optionally only one rule's."""
    return [(v.type, v.line) for v in result.violations if rule is None or v.type == rule]


@pytest.fixture
def found() -> Callable[..., list[tuple[str, int]]]:
    """Helper listing (type, line) of violations, optionally filtered to one rule."""
    return _found
