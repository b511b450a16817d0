"""Rules about calls: builtin print, builtin eval/exec and debugger breakpoints."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from ..settings import AuditSettings
from ..types import Finding

DEBUGGER_MODULES = frozenset({"pdb", "ipdb", "pudb"})


def _calls_to_name(nodes: Sequence[ast.AST], names: frozenset[str]) -> Iterator[tuple[ast.Call, str]]:
    """Yield calls whose callee is a bare name from `names` (obj.name(...) is a method, not a builtin)."""
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            yield node, node.func.id


def print_statement(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag calls to the builtin print()."""
    for call, _ in _calls_to_name(nodes, frozenset({"print"})):
        yield Finding("print_statement", call.lineno, "call to builtin print()")


def eval_exec(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag calls to the builtins eval() and exec()."""
    for call, name in _calls_to_name(nodes, frozenset({"eval", "exec"})):
        yield Finding("eval_exec", call.lineno, f"call to builtin {name}()")


def _debugger_aliases(nodes: Sequence[ast.AST]) -> tuple[set[str], set[str]]:
    """Names bound to a debugger module, and names bound to its set_trace, by imports anywhere in the file."""
    modules = set(DEBUGGER_MODULES)  # pdb.set_trace() is flagged even without a visible import
    set_traces: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in DEBUGGER_MODULES:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module in DEBUGGER_MODULES:
            for alias in node.names:
                if alias.name in ("set_trace", "*"):
                    set_traces.add(alias.asname or "set_trace")
    return modules, set_traces


def _debugger_module_of(target: ast.expr, modules: set[str]) -> str | None:
    """The debugger module an expression refers to: a bound name or __import__("pdb")."""
    if isinstance(target, ast.Name) and target.id in modules:
        return target.id
    if (
        isinstance(target, ast.Call)
        and isinstance(target.func, ast.Name)
        and target.func.id == "__import__"
        and target.args
        and isinstance(target.args[0], ast.Constant)
        and target.args[0].value in DEBUGGER_MODULES
    ):
        return str(target.args[0].value)
    return None


def debugger_call(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag breakpoint(), <pdb|ipdb|pudb>.set_trace() and set_trace imported from them."""
    modules, set_traces = _debugger_aliases(nodes)
    for node in nodes:
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "breakpoint":
            yield Finding("debugger_call", node.lineno, "debugger breakpoint: breakpoint()")
        elif isinstance(func, ast.Name) and func.id in set_traces:
            message = f"debugger breakpoint: {func.id}() imported from a debugger module"
            yield Finding("debugger_call", node.lineno, message)
        elif isinstance(func, ast.Attribute) and func.attr == "set_trace":
            module = _debugger_module_of(func.value, modules)
            if module is not None:
                yield Finding("debugger_call", node.lineno, f"debugger breakpoint: {module}.set_trace()")
