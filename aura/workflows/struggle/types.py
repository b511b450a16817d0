"""Typed shapes crossing the struggle workflow's boundary, and its graph state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict, get_args

StruggleLabel = Literal["struggling", "not_struggling"]
STRUGGLE_LABELS: tuple[str, ...] = get_args(StruggleLabel)


class StruggleInput(TypedDict):
    """Request body accepted by run_struggle (validated again by the validate node)."""

    exercise_id: str
    edit_frequency: float
    error_count: int
    window_seconds: NotRequired[int]
    error_types: NotRequired[list[str]]
    topic: NotRequired[str | None]


class SignalsDict(TypedDict):
    """JSON shape of the signals: the inputs and intermediate numbers behind the score."""

    edit_frequency: float
    error_count: int
    window_seconds: int
    error_rate_per_minute: float
    edit_signal: float
    error_signal: float
    error_types: list[str]
    error_type_counts: dict[str, int]
    topic: str | None
    threshold: float
    explanation: str


class RecommendationDict(TypedDict):
    """JSON shape of one recommended lesson."""

    lesson_id: str
    title: str
    reason: str


class StruggleResultDict(TypedDict):
    """JSON shape of a struggle result (the web layer adds `id`)."""

    result: StruggleLabel
    score: float
    signals: SignalsDict
    recommendations: list[RecommendationDict]


@dataclass(frozen=True)
class StruggleRequest:
    """Validated, normalised input."""

    exercise_id: str
    edit_frequency: float
    error_count: int
    window_seconds: int
    # Deduplicated (case-insensitively), first spelling kept, in first-seen order.
    error_types: tuple[str, ...] = ()
    # How often each error type appeared in the raw list, keyed like error_types.
    error_type_counts: Mapping[str, int] = field(default_factory=dict)
    topic: str | None = None


@dataclass(frozen=True)
class StruggleSignals:
    """Numbers derived from the request that feed the score."""

    request: StruggleRequest
    error_rate_per_minute: float
    # Each signal is its raw rate divided by its threshold, capped at 1.0.
    edit_signal: float
    error_signal: float


@dataclass(frozen=True)
class StruggleScore:
    """The weighted score and the decision taken from it."""

    score: float
    threshold: float
    struggling: bool
    explanation: str


@dataclass(frozen=True)
class Recommendation:
    """A lesson picked for the learner, with a human-readable reason."""

    lesson_id: str
    title: str
    reason: str

    def to_dict(self) -> RecommendationDict:
        """Return the JSON shape."""
        return {"lesson_id": self.lesson_id, "title": self.title, "reason": self.reason}


def _round(value: float) -> float:
    """Round for output; four decimals keep JSON readable and comparisons stable."""
    return round(value, 4)


@dataclass(frozen=True)
class StruggleResult:
    """Outcome of one struggle-detection run."""

    result: StruggleLabel
    score: float
    signals: StruggleSignals
    threshold: float
    explanation: str
    recommendations: tuple[Recommendation, ...] = ()

    def to_dict(self) -> StruggleResultDict:
        """Return the JSON-serialisable shape."""
        request = self.signals.request
        return {
            "result": self.result,
            "score": self.score,
            "signals": {
                "edit_frequency": request.edit_frequency,
                "error_count": request.error_count,
                "window_seconds": request.window_seconds,
                "error_rate_per_minute": _round(self.signals.error_rate_per_minute),
                "edit_signal": _round(self.signals.edit_signal),
                "error_signal": _round(self.signals.error_signal),
                "error_types": list(request.error_types),
                "error_type_counts": dict(request.error_type_counts),
                "topic": request.topic,
                "threshold": self.threshold,
                "explanation": self.explanation,
            },
            "recommendations": [r.to_dict() for r in self.recommendations],
        }


class StruggleState(TypedDict, total=False):
    """LangGraph state: each node reads what earlier nodes wrote and adds its own key."""

    raw: Mapping[str, Any]
    request: StruggleRequest
    signals: StruggleSignals
    score: StruggleScore
    recommendations: tuple[Recommendation, ...]
    result: StruggleResult
