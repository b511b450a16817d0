"""The audit rule registry and the function that runs every rule over one parsed file."""

from __future__ import annotations

import ast
from collections import Counter
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


def cap_per_rule(findings: Sequence[Finding], limit: int) -> list[Finding]:
    """Keep the first `limit` findings of each rule; one summary finding stands for the rest."""
    totals = Counter(finding.type for finding in findings)
    seen: Counter[str] = Counter()
    kept: list[Finding] = []
    for finding in findings:
        seen[finding.type] += 1
        if seen[finding.type] <= limit:
            kept.append(finding)
        elif seen[finding.type] == limit + 1:
            # Findings are in line order, so the summary sits at the first one left out.
            more = totals[finding.type] - limit
            message = f"{more} more {finding.type} findings from this line on (not listed)"
            kept.append(Finding(finding.type, finding.line, message))
    return kept


def check_tree(tree: ast.Module, settings: AuditSettings) -> list[Finding]:
    """Run every rule over one file's tree; findings ordered by line then type, capped per rule."""
    return check_tree_counted(tree, settings)[0]


def check_tree_counted(tree: ast.Module, settings: AuditSettings) -> tuple[list[Finding], Counter[str]]:
    """`check_tree`, and how many findings of each type there were before the cap."""
    # ast.walk is iterative (a deque), so deep trees cannot overflow the stack; walk once, share the list.
    nodes = list(ast.walk(tree))
    findings = [finding for rule in RULES for finding in rule(nodes, settings)]
    findings.sort(key=lambda f: (f.line, f.type))
    # A 256 KiB file of print(1) lines would otherwise yield ~29,000 violations per file.
    return cap_per_rule(findings, settings.max_findings_per_rule), Counter(f.type for f in findings)
