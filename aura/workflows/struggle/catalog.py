"""The Lesson type and loading of the bundled lesson catalog (lessons.json)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

# Lives next to the package so the lead's migration can seed the lessons table from it.
CATALOG_FILE = Path(__file__).resolve().parent.parent / "lessons.json"


class LessonDict(TypedDict):
    """JSON shape of one lesson, as stored in lessons.json."""

    lesson_id: str
    title: str
    topic: str
    error_types: list[str]


@dataclass(frozen=True)
class Lesson:
    """One lesson the struggle workflow can recommend."""

    lesson_id: str
    title: str
    topic: str
    error_types: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Lesson:
        """Build a Lesson from a lessons.json entry or a database row mapping."""
        for key in ("lesson_id", "title", "topic"):
            value = raw.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"lesson {key} must be a non-empty string, got {value!r}")
        error_types = raw.get("error_types", [])
        if isinstance(error_types, str) or not all(isinstance(e, str) for e in error_types):
            raise ValueError(f"lesson {raw['lesson_id']!r}: error_types must be a list of strings")
        return cls(
            lesson_id=raw["lesson_id"].strip(),
            title=raw["title"].strip(),
            # Topics are compared lowercased, like the learner's topic after validation.
            topic=raw["topic"].strip().lower(),
            error_types=tuple(e.strip() for e in error_types if e.strip()),
        )

    def to_dict(self) -> LessonDict:
        """Return the JSON shape (used to seed the lessons table)."""
        return {
            "lesson_id": self.lesson_id,
            "title": self.title,
            "topic": self.topic,
            "error_types": list(self.error_types),
        }


# run_struggle accepts the lessons themselves or a loader called only when recommending.
CatalogSource = Sequence[Lesson] | Callable[[], Sequence[Lesson]]


def load_catalog_file(path: Path | str | None = None) -> list[Lesson]:
    """Load and validate the lesson catalog from lessons.json (or the given path)."""
    with open(path or CATALOG_FILE, encoding="utf-8") as handle:
        entries = json.load(handle)
    if not isinstance(entries, list):
        raise ValueError("lesson catalog must be a JSON list")
    lessons = [Lesson.from_mapping(entry) for entry in entries]
    ids = [lesson.lesson_id for lesson in lessons]
    if len(ids) != len(set(ids)):
        raise ValueError("lesson catalog has duplicate lesson_id values")
    return lessons
