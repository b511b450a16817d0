"""Struggle detection: is a learner struggling on an exercise, and which lessons would help."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
from marshmallow import validate
from sqlalchemy import select

from aura.config import Settings
from aura.extensions import db
from aura.fields import NOT_BLANK, StrictFloat, StrictInteger, UtcDateTime
from aura.instrumentation import recorder
from aura.models import Lesson as LessonRow
from aura.services.workflows.definition import Result, Workflow
from aura.workflows import STRUGGLE_LABELS, Lesson, StruggleSettings, run_struggle
from aura.workflows.struggle.graph import WORKFLOW


class StruggleInputSchema(ma.Schema):
    """What the editor reports about a learner's recent activity on one exercise."""

    # Blank ids are refused by the workflow (it strips them): the document says so with a pattern.
    exercise_id = ma.fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            validate.Regexp(NOT_BLANK, error="must be a non-empty string"),
        ],
    )
    edit_frequency = StrictFloat(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=10_000),
        metadata={"description": "Edits per minute over the window"},
    )
    error_count = StrictInteger(
        required=True, validate=validate.Range(min=0, max=1_000_000), metadata={"description": "Errors in the window"}
    )
    window_seconds = StrictInteger(load_default=300, validate=validate.Range(min=1, max=86_400))
    error_types = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"example": ["NameError", "SyntaxError"]},
    )
    topic = ma.fields.String(validate=validate.Length(max=100), allow_none=True)


class RecommendationSchema(ma.Schema):
    """A recommended lesson and why."""

    lesson_id = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)


class StruggleResultSchema(ma.Schema):
    """The struggle decision with its evidence."""

    id = ma.fields.String(required=True)
    result = ma.fields.String(required=True, validate=validate.OneOf(list(STRUGGLE_LABELS)))
    score = ma.fields.Float(required=True)
    signals = ma.fields.Dict(required=True, metadata={"description": "Why: each signal and the threshold"})
    recommendations = ma.fields.List(ma.fields.Nested(RecommendationSchema), required=True)
    created_at = UtcDateTime(required=True)


def struggle_settings(settings: Settings) -> StruggleSettings:
    """Struggle thresholds from the configuration."""
    return StruggleSettings(score_threshold=settings.struggle_score_threshold)


def _catalog() -> list[Lesson]:
    rows = db.session.scalars(select(LessonRow).order_by(LessonRow.lesson_id))
    return [
        Lesson.from_mapping(
            {"lesson_id": r.lesson_id, "title": r.title, "topic": r.topic, "error_types": r.error_types}
        )
        for r in rows
    ]


def _run(data: Any, settings: Settings, on_record: Callable[[Result], None]) -> object:
    return run_struggle(data, catalog=_catalog, settings=struggle_settings(settings), on_record=on_record)


def _record_metrics(stored: Mapping[str, Any]) -> None:
    signals = stored["signals"]
    recorder.struggle_result(
        stored["result"], signals["edit_frequency"], signals["error_count"], len(stored["recommendations"])
    )


STRUGGLE = Workflow(
    name=WORKFLOW,
    summary="Decide whether a learner is struggling on an exercise, and recommend lessons if so.",
    input_schema=StruggleInputSchema,
    result_schema=StruggleResultSchema,
    run=_run,
    verdict_key="result",
    verdicts=STRUGGLE_LABELS,
    record_metrics=_record_metrics,
)
