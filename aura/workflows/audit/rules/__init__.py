"""The audit rule registry and the function that runs every rule over one parsed file."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Sequence

from ..settings import AuditSettings
from ..types import Finding
from .calls import debugger_call, eval_exec, print_statement
from .secrets import hardcoded_secret
from .structure import bare_except, long_function

Rule = Callable[[Sequence[ast.AST], AuditSettings], Iterator[Finding]]

# syntax_error is not here: the parse node produces it for files that have no tree.
RULES: tuple[Rule, ...] = (
    print_statement,
    debugger_call,
    long_function,
    hardcoded_secret,
    bare_except,
    eval_exec,
)


def check_tree(tree: ast.Module, settings: AuditSettings) -> list[Finding]:
    """Run every rule over one file's tree and return findings ordered by line then type."""
    # ast.walk is iterative (a deque), so deep trees cannot overflow the stack; walk once, share the list.
    nodes = list(ast.walk(tree))
    findings = [finding for rule in RULES for finding in rule(nodes, settings)]
    findings.sort(key=lambda f: (f.line, f.type))
    return findings
