"""Fixed remediation advice per violation type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from .settings import RuleType
from .types import Remediation, Violation

# Keyed by RuleType: mypy checks every name against the audit's one list (settings.py).
_ADVICE: dict[RuleType, str] = {
    "hardcoded_secret": (
        "Remove the secret from the code, rotate it if it was ever committed, and read it at run time "
        "from an environment variable or a secret manager."
    ),
    "debugger_call": ("Delete breakpoint()/set_trace() calls before submitting: they stop the program for input."),
    "syntax_error": ("Fix the reported line so the file parses; run `python -m py_compile <file>` locally to check."),
    "eval_exec": (
        "Avoid eval()/exec() on data: use ast.literal_eval for literals, json for data, "
        "or a dict of allowed functions for dispatch."
    ),
    "print_statement": ("Replace print() with the logging module so output can be levelled and switched off."),
    "long_function": "Split the function into smaller, well-named helpers that each do one job.",
    "bare_except": (
        "Catch the specific exceptions you expect (e.g. `except ValueError:`), or `except Exception:` "
        "at most, so KeyboardInterrupt and SystemExit still propagate."
    ),
}
ADVICE: Mapping[str, str] = MappingProxyType({rule: advice for rule, advice in _ADVICE.items()})


def advise(violations: Sequence[Violation]) -> tuple[Remediation, ...]:
    """One piece of advice per violation type present: errors first, then by type name."""
    severity = {v.type: v.severity for v in violations}
    ordered = sorted(severity, key=lambda rule: (severity[rule] != "error", rule))
    return tuple(Remediation(rule, ADVICE[rule]) for rule in ordered)
