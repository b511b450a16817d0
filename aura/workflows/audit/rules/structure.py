"""Rules about code structure: overly long functions and bare except clauses."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from ..settings import AuditSettings
from ..types import Finding


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first body statement to the end of the last, inclusive (not the def line)."""
    first = node.body[0].lineno
    last = node.body[-1].end_lineno or node.body[-1].lineno
    return last - first + 1


def long_function(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag functions whose body spans more than max_function_lines lines, at the def line."""
    limit = settings.max_function_lines
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = body_lines(node)
            if length > limit:
                yield Finding(
                    "long_function",
                    node.lineno,
                    f"function {node.name!r} body is {length} lines (limit {limit})",
                )


def bare_except(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag `except:` clauses that name no exception type."""
    for node in nodes:
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            message = "bare 'except:' catches everything, even KeyboardInterrupt"
            yield Finding("bare_except", node.lineno, message)
