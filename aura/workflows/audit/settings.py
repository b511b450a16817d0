"""Limits, rule parameters and the severity table for the code audit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

Severity = Literal["error", "warning"]
RuleType = Literal[
    "print_statement",
    "debugger_call",
    "long_function",
    "hardcoded_secret",
    "bare_except",
    "eval_exec",
    "syntax_error",
]
RULE_TYPES: tuple[str, ...] = get_args(RuleType)

# error: must not ship (leaks, arbitrary code, stops the process, not code at all).
# warning: worth fixing but harmless at run time.
# Keyed by RuleType: mypy checks every name against the one list above.
_SEVERITIES: dict[RuleType, Severity] = {
    "hardcoded_secret": "error",
    "debugger_call": "error",
    "syntax_error": "error",
    "eval_exec": "error",
    "print_statement": "warning",
    "long_function": "warning",
    "bare_except": "warning",
}
DEFAULT_SEVERITIES: Mapping[str, Severity] = MappingProxyType({rule: level for rule, level in _SEVERITIES.items()})


@dataclass(frozen=True)
class AuditSettings:
    """Request limits, rule parameters and severities for the audit workflow."""

    max_files: int = 50
    # Measured in UTF-8 bytes of each file's content.
    max_file_bytes: int = 256 * 1024
    # Optional cap on the sum of all file sizes. None: only max_files x max_file_bytes applies.
    # Parsing costs roughly 0.4-2 s of CPU per dense 256 KiB file; set this to bound request time.
    max_total_bytes: int | None = None
    # CPU seconds one run may use (this thread's CPU time), checked before each file is parsed
    # and after its rules ran; None: unbounded. A run can overshoot by one file's parse.
    max_cpu_seconds: float | None = None
    # Longest file path, in characters: every finding repeats it, and it is stored.
    max_path_length: int = 255
    # A function whose body spans more lines than this is a long_function.
    max_function_lines: int = 50
    # Per file and rule, findings beyond this are folded into one summary finding, so a
    # hostile file cannot turn into tens of thousands of violations (response and DB size).
    max_findings_per_rule: int = 20
    # Per run: what one answer (and one stored row) reports, per rule and in all; the rest is
    # counted in `violation_counts` and flagged `truncated`. Bounds a response near 100 KB.
    max_reported_per_rule: int = 50
    max_reported_total: int = 200
    # Longest finding message, in characters (messages quote names from the code).
    max_message_length: int = 200
    severities: Mapping[str, Severity] = field(default_factory=lambda: DEFAULT_SEVERITIES)

    def __post_init__(self) -> None:
        """Reject limits below 1 and misspelt rules; rules left out keep their default severity."""
        if (
            min(
                self.max_files,
                self.max_file_bytes,
                self.max_function_lines,
                self.max_findings_per_rule,
                self.max_reported_per_rule,
                self.max_reported_total,
                self.max_message_length,
                self.max_path_length,
            )
            < 1
        ):
            raise ValueError("audit limits must be >= 1")
        if self.max_cpu_seconds is not None and not self.max_cpu_seconds > 0:
            raise ValueError("max_cpu_seconds must be > 0 or None")
        if self.max_total_bytes is not None and self.max_total_bytes < 1:
            raise ValueError("max_total_bytes must be >= 1 or None")
        unknown = set(self.severities) - set(RULE_TYPES)
        if unknown:
            raise ValueError(f"unknown rules in severities: {', '.join(sorted(unknown))}")
        table = {**DEFAULT_SEVERITIES, **self.severities}
        if any(value not in ("error", "warning") for value in table.values()):
            raise ValueError("severities must be 'error' or 'warning'")
        # Read-only copy: the settings object is shared by every request.
        object.__setattr__(self, "severities", MappingProxyType(table))


DEFAULT_AUDIT_SETTINGS = AuditSettings()
