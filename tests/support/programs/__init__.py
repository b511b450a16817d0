"""Programs the tests run in a process of their own, kept as files so the linter sees them.

Each states what it does in its docstring and takes its inputs from ``sys.argv``; the tests run
them with ``sys.executable`` and ``PYTHONPATH`` set to the repository (``path`` finds one).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def path(name: str) -> str:
    """The path of program ``name`` (a file name in this directory)."""
    found = HERE / name
    assert found.is_file(), found
    return str(found)
