"""Ranking of catalog lessons against the learner's error types and topic."""

from __future__ import annotations

from collections.abc import Sequence

from .catalog import Lesson
from .settings import StruggleSettings
from .types import Recommendation, StruggleRequest


def _join(items: Sequence[str]) -> str:
    """Join words as 'a', 'a and b' or 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _times(count: int) -> str:
    """Say how often an error was seen, in words a learner reads easily."""
    return "once" if count == 1 else f"{count} times"


def _reason(matched: Sequence[str], topic_match: bool, request: StruggleRequest) -> str:
    """Explain in one sentence why a lesson was picked."""
    parts = []
    if matched:
        seen = [f"{name} (seen {_times(request.error_type_counts.get(name, 1))})" for name in matched]
        parts.append(f"addresses {_join(seen)}")
    if topic_match:
        parts.append(f"practises {request.topic}, this exercise's topic")
    sentence = "; ".join(parts)
    return sentence[:1].upper() + sentence[1:]


def rank_lessons(
    catalog: Sequence[Lesson], request: StruggleRequest, settings: StruggleSettings
) -> tuple[Recommendation, ...]:
    """Return the best matching lessons, most relevant first, at most max_recommendations."""
    scored: list[tuple[int, str, Recommendation]] = []
    for lesson in catalog:
        lesson_types = {name.casefold() for name in lesson.error_types}
        # Learner order, so the reason lists errors the way the learner reported them.
        matched = [name for name in request.error_types if name.casefold() in lesson_types]
        topic_match = request.topic is not None and lesson.topic.casefold() == request.topic
        relevance = settings.error_type_match_points * len(matched) + (
            settings.topic_match_points if topic_match else 0
        )
        if relevance <= 0:
            continue
        reason = _reason(matched, topic_match, request)
        scored.append((relevance, lesson.lesson_id, Recommendation(lesson.lesson_id, lesson.title, reason)))
    # Highest relevance first; equal relevance falls back to lesson_id so output is stable.
    scored.sort(key=lambda item: (-item[0], item[1]))
    return tuple(item[2] for item in scored[: settings.max_recommendations])
