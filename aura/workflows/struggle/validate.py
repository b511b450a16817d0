"""Validation and normalisation of struggle-detection input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from ..errors import WorkflowInputError
from .settings import StruggleSettings
from .types import StruggleRequest

DEFAULT_WINDOW_SECONDS = 300


def _is_int(value: object) -> TypeGuard[int]:
    """True for real integers; bool is an int subclass but never a count."""
    return isinstance(value, int) and not isinstance(value, bool)


def _exercise_id(raw: Mapping[str, Any], settings: StruggleSettings) -> str:
    """Return the stripped exercise id, rejecting missing, blank or oversized ids."""
    value = raw.get("exercise_id")
    if not isinstance(value, str) or not value.strip():
        raise WorkflowInputError("exercise_id", "must be a non-empty string")
    if len(value.strip()) > settings.max_name_length:
        raise WorkflowInputError("exercise_id", f"must be at most {settings.max_name_length} characters")
    return value.strip()


def _edit_frequency(raw: Mapping[str, Any]) -> float:
    """Return edits per minute as a finite float >= 0."""
    value = raw.get("edit_frequency")
    if not (_is_int(value) or isinstance(value, float)):
        raise WorkflowInputError("edit_frequency", "must be a number")
    if not math.isfinite(value) or value < 0:
        raise WorkflowInputError("edit_frequency", "must be a finite number >= 0")
    return float(value)


def _error_count(raw: Mapping[str, Any]) -> int:
    """Return the error count as an int >= 0."""
    value = raw.get("error_count")
    if not _is_int(value) or value < 0:
        raise WorkflowInputError("error_count", "must be an integer >= 0")
    return value


def _window_seconds(raw: Mapping[str, Any]) -> int:
    """Return the window length in seconds (default 300), an int > 0."""
    value = raw.get("window_seconds")
    if value is None:
        return DEFAULT_WINDOW_SECONDS
    if not _is_int(value) or value <= 0:
        raise WorkflowInputError("window_seconds", "must be an integer > 0")
    return value


def _error_types(raw: Mapping[str, Any], settings: StruggleSettings) -> tuple[tuple[str, ...], dict[str, int]]:
    """Strip, drop blanks and dedupe error types case-insensitively, counting repeats."""
    value = raw.get("error_types")
    if value is None:
        return (), {}
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise WorkflowInputError("error_types", "must be a list of strings")
    if len(value) > settings.max_error_types:
        raise WorkflowInputError("error_types", f"must have at most {settings.max_error_types} entries")
    counts: dict[str, int] = {}
    # Maps the casefolded name to the first spelling seen, so "nameerror" counts as "NameError".
    spelling: dict[str, str] = {}
    for item in value:
        if not isinstance(item, str):
            raise WorkflowInputError("error_types", "must be a list of strings")
        name = item.strip()
        if not name:
            continue
        if len(name) > settings.max_name_length:
            limit = settings.max_name_length
            raise WorkflowInputError("error_types", f"entries must be at most {limit} characters")
        key = spelling.setdefault(name.casefold(), name)
        counts[key] = counts.get(key, 0) + 1
    return tuple(counts), counts


def _topic(raw: Mapping[str, Any], settings: StruggleSettings) -> str | None:
    """Return the topic stripped and lowercased, or None when absent or blank."""
    value = raw.get("topic")
    if value is None:
        return None
    if not isinstance(value, str):
        raise WorkflowInputError("topic", "must be a string")
    topic = value.strip().lower()
    if len(topic) > settings.max_name_length:
        raise WorkflowInputError("topic", f"must be at most {settings.max_name_length} characters")
    return topic or None


def normalise_request(raw: Any, settings: StruggleSettings) -> StruggleRequest:
    """Validate raw input and return the normalised request, or raise WorkflowInputError."""
    if not isinstance(raw, Mapping):
        raise WorkflowInputError("body", "must be an object")
    exercise_id = _exercise_id(raw, settings)
    edit_frequency = _edit_frequency(raw)
    error_count = _error_count(raw)
    window_seconds = _window_seconds(raw)
    error_types, counts = _error_types(raw, settings)
    return StruggleRequest(
        exercise_id=exercise_id,
        edit_frequency=edit_frequency,
        error_count=error_count,
        window_seconds=window_seconds,
        error_types=error_types,
        error_type_counts=counts,
        topic=_topic(raw, settings),
    )
