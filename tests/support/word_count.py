"""A third workflow, declared in the test suite only: it counts the words of a text.

Everything the API serves of it - routes, OpenAPI, the listing's filters, the metrics - must
follow from this module and one registry entry (`WORKFLOWS.plus(WORD_COUNT)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import marshmallow as ma

from aura.fields import UtcDateTime
from aura.services.workflows import Workflow


class WordCountInputSchema(ma.Schema):
    """A text to count the words of."""

    text = ma.fields.String(required=True)


class WordCountResultSchema(ma.Schema):
    """How many words, and whether that is long."""

    id = ma.fields.String(required=True)
    words = ma.fields.Integer(required=True)
    length = ma.fields.String(required=True)
    created_at = UtcDateTime(required=True)


@dataclass(frozen=True)
class WordCount:
    """The result of one run."""

    words: int

    def to_dict(self) -> dict:
        """The stored shape."""
        return {"words": self.words, "length": "long" if self.words > 3 else "short"}


def _run(data, _settings, on_record):
    result = WordCount(len(data["text"].split()))
    on_record(result)
    return result


WORD_COUNT = Workflow(
    name="word_count",
    summary="Count the words of a text.",
    input_schema=WordCountInputSchema,
    result_schema=WordCountResultSchema,
    run=_run,
    verdict_key="length",
    verdicts=("short", "long"),
)
