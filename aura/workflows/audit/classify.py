"""Turning located findings into violations and an overall audit status."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from .settings import AuditSettings
from .types import AuditStatus, Finding, SourceFile, Violation


def locate(source: SourceFile, findings: Sequence[Finding], settings: AuditSettings) -> list[Violation]:
    """Attach the file path and the configured severity to each finding (message bounded)."""
    limit = settings.max_message_length
    return [
        Violation(
            f.type,
            source.path,
            f.line,
            f.message if len(f.message) <= limit else f.message[: limit - 1] + "\u2026",
            settings.severities[f.type],
        )
        for f in findings
    ]


def report(
    listed: Sequence[Violation], new: Sequence[Violation], settings: AuditSettings
) -> tuple[tuple[Violation, ...], bool]:
    """Add new violations to those listed, within the per-rule and total caps of one run;
    True when one was left out."""
    kept = list(listed)
    per_type = Counter(v.type for v in kept)
    left_out = False
    for violation in new:
        if len(kept) >= settings.max_reported_total or per_type[violation.type] >= settings.max_reported_per_rule:
            left_out = True
            continue
        kept.append(violation)
        per_type[violation.type] += 1
    return tuple(kept), left_out


def status_of_counts(counts: Mapping[str, int], settings: AuditSettings) -> AuditStatus:
    """The run's status over every finding, listed or not: pass without findings, fail if any
    rule that found something is an error, else remediation_required."""
    found = [t for t, n in counts.items() if n]
    if not found:
        return "pass"
    if any(settings.severities[t] == "error" for t in found):
        return "fail"
    return "remediation_required"
