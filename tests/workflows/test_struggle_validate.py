"""Normalisation and rejection of struggle-detection input (the validate node)."""

from __future__ import annotations

import math

import pytest

from aura.workflows import StruggleSettings, WorkflowInputError, run_struggle
from aura.workflows.struggle.validate import normalise_request

SETTINGS = StruggleSettings()
BASE = {"exercise_id": "ex-1", "edit_frequency": 2, "error_count": 1}


def test_normalises_fields():
    request = normalise_request(
        {
            **BASE,
            "exercise_id": "  ex-1 ",
            "error_types": [" NameError", "nameerror", "", "   ", "TypeError", "NameError "],
            "topic": "  Loops ",
        },
        SETTINGS,
    )
    assert request.exercise_id == "ex-1"
    assert request.edit_frequency == 2.0 and isinstance(request.edit_frequency, float)
    assert request.error_types == ("NameError", "TypeError")
    assert dict(request.error_type_counts) == {"NameError": 3, "TypeError": 1}
    assert request.topic == "loops"
    assert request.window_seconds == 300


@pytest.mark.parametrize("topic", [None, "", "   "])
def test_missing_or_blank_topic_is_none(topic):
    assert normalise_request({**BASE, "topic": topic}, SETTINGS).topic is None


def test_optional_fields_may_be_absent_or_null():
    request = normalise_request({**BASE, "error_types": None, "window_seconds": None}, SETTINGS)
    assert (request.error_types, request.window_seconds, request.topic) == ((), 300, None)


def test_extra_keys_are_ignored():
    assert normalise_request({**BASE, "id": "x", "user": 1}, SETTINGS).exercise_id == "ex-1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"exercise_id": None}, "exercise_id"),
        ({"exercise_id": "  "}, "exercise_id"),
        ({"exercise_id": 12}, "exercise_id"),
        ({"exercise_id": "x" * 101}, "exercise_id"),
        ({"edit_frequency": -0.1}, "edit_frequency"),
        ({"edit_frequency": math.nan}, "edit_frequency"),
        ({"edit_frequency": math.inf}, "edit_frequency"),
        ({"edit_frequency": "3"}, "edit_frequency"),
        ({"edit_frequency": True}, "edit_frequency"),
        ({"edit_frequency": None}, "edit_frequency"),
        ({"error_count": -1}, "error_count"),
        ({"error_count": 1.5}, "error_count"),
        ({"error_count": False}, "error_count"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": -60}, "window_seconds"),
        ({"window_seconds": 30.0}, "window_seconds"),
        ({"error_types": "NameError"}, "error_types"),
        ({"error_types": ["NameError", 3]}, "error_types"),
        ({"error_types": ["E"] * 51}, "error_types"),
        ({"error_types": ["E" * 101]}, "error_types"),
        ({"topic": 5}, "topic"),
        ({"topic": "t" * 101}, "topic"),
    ],
)
def test_impossible_values_are_rejected(change, field):
    with pytest.raises(WorkflowInputError) as info:
        normalise_request({**BASE, **change}, SETTINGS)
    assert info.value.field == field


def test_non_mapping_body_is_rejected(catalog):
    with pytest.raises(WorkflowInputError):
        run_struggle(["not", "a", "mapping"], catalog=catalog)


def test_zero_counts_are_valid(catalog):
    result = run_struggle({"exercise_id": "e", "edit_frequency": 0, "error_count": 0}, catalog=catalog)
    assert (result.result, result.score) == ("not_struggling", 0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exercise_id": None}, "exercise_id: must be a non-empty string"),
        ({"exercise_id": "x" * 101}, "exercise_id: must be at most 100 characters"),
        ({"edit_frequency": "3"}, "edit_frequency: must be a number"),
        ({"edit_frequency": -1}, "edit_frequency: must be a finite number >= 0"),
        ({"error_count": 1.5}, "error_count: must be an integer >= 0"),
        ({"window_seconds": 0}, "window_seconds: must be an integer > 0"),
        ({"error_types": "NameError"}, "error_types: must be a list of strings"),
        ({"error_types": ["NameError", 3]}, "error_types: must be a list of strings"),
        ({"error_types": ["E"] * 51}, "error_types: must have at most 50 entries"),
        ({"error_types": ["E" * 101]}, "error_types: entries must be at most 100 characters"),
        ({"topic": 5}, "topic: must be a string"),
        ({"topic": "t" * 101}, "topic: must be at most 100 characters"),
    ],
)
def test_rejections_say_what_is_wrong(change, message):
    # The message is the API's 422 field detail, so it is pinned word for word.
    with pytest.raises(WorkflowInputError) as info:
        normalise_request({**BASE, **change}, SETTINGS)
    assert str(info.value) == message
    assert info.value.details == {info.value.field: [message.split(": ", 1)[1]]}


def test_a_non_mapping_body_is_blamed_on_the_body():
    with pytest.raises(WorkflowInputError) as info:
        normalise_request(["not", "a", "mapping"], SETTINGS)
    assert (info.value.field, info.value.message) == ("body", "must be an object")


@pytest.mark.parametrize("error_types", [{"NameError": 1}, 5, {"NameError"}])
def test_error_types_must_be_a_list_or_tuple(error_types):
    with pytest.raises(WorkflowInputError) as info:
        normalise_request({**BASE, "error_types": error_types}, SETTINGS)
    assert info.value.field == "error_types"


def test_every_limit_is_inclusive():
    request = normalise_request(
        {
            **BASE,
            "exercise_id": "x" * 100,
            "window_seconds": 1,
            "error_types": [f"E{i}" for i in range(49)] + ["N" * 100],
            "topic": "t" * 100,
        },
        SETTINGS,
    )
    assert (len(request.exercise_id), request.window_seconds, len(request.error_types)) == (100, 1, 50)
    assert (request.error_types[-1], request.topic) == ("N" * 100, "t" * 100)
    assert normalise_request({**BASE, "error_types": ("NameError",)}, SETTINGS).error_types == ("NameError",)
