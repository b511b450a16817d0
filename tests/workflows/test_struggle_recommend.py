"""Lesson ranking: error-type matches outweigh topic, ties by lesson_id, at most three."""

from __future__ import annotations

from aura.workflows import Lesson, StruggleSettings, run_struggle

CATALOG = [
    Lesson("z-topic-only", "Loops again", "loops", ()),
    Lesson("b-one-error", "Names", "variables", ("NameError",)),
    Lesson("a-one-error", "Names too", "functions", ("NameError",)),
    Lesson("c-error-and-topic", "Loop indices", "loops", ("IndexError",)),
    Lesson("d-two-errors", "Names and types", "functions", ("NameError", "TypeError")),
    Lesson("e-unrelated", "Files", "files", ("FileNotFoundError",)),
]
STRUGGLING = {"exercise_id": "ex", "edit_frequency": 10, "error_count": 20}


def _ids(result):
    return [r.lesson_id for r in result.recommendations]


def test_ranking_order_and_ties():
    settings = StruggleSettings(max_recommendations=10)
    data = {**STRUGGLING, "error_types": ["NameError", "TypeError", "IndexError"], "topic": "loops"}
    result = run_struggle(data, catalog=CATALOG, settings=settings)
    # d: 2+2=4; c: 2+1=3; a, b: 2 each (a before b by lesson_id); z: topic only 1; e: no match.
    assert _ids(result) == ["d-two-errors", "c-error-and-topic", "a-one-error", "b-one-error", "z-topic-only"]


def test_at_most_three_by_default():
    data = {**STRUGGLING, "error_types": ["NameError", "TypeError", "IndexError"], "topic": "loops"}
    assert _ids(run_struggle(data, catalog=CATALOG)) == ["d-two-errors", "c-error-and-topic", "a-one-error"]


def test_error_match_beats_topic_match():
    data = {**STRUGGLING, "error_types": ["NameError"], "topic": "loops"}
    ids = _ids(run_struggle(data, catalog=CATALOG, settings=StruggleSettings(max_recommendations=10)))
    assert ids.index("b-one-error") < ids.index("z-topic-only")


def test_matching_is_case_insensitive():
    data = {**STRUGGLING, "error_types": ["indexerror"], "topic": "LOOPS"}
    assert _ids(run_struggle(data, catalog=CATALOG))[0] == "c-error-and-topic"


def test_reasons_are_human_readable():
    errors = ["NameError", "NameError", "NameError", "TypeError"]
    data = {**STRUGGLING, "error_types": errors, "topic": "functions"}
    (first, *_) = run_struggle(data, catalog=CATALOG).recommendations
    assert first.lesson_id == "d-two-errors"
    assert first.reason == (
        "Addresses NameError (seen 3 times) and TypeError (seen once); practises functions, this exercise's topic"
    )
    topic_only = run_struggle({**STRUGGLING, "topic": "loops"}, catalog=CATALOG).recommendations[-1]
    assert topic_only.reason == "Practises loops, this exercise's topic"


def test_no_match_gives_no_recommendations():
    result = run_struggle({**STRUGGLING, "error_types": ["KeyError"], "topic": "dicts"}, catalog=CATALOG)
    assert result.result == "struggling"
    assert result.recommendations == ()


def test_not_struggling_gives_no_recommendations_and_skips_the_catalog():
    calls = []

    def catalog():
        calls.append(1)
        return CATALOG

    data = {"exercise_id": "ex", "edit_frequency": 1, "error_count": 0, "error_types": ["NameError"]}
    result = run_struggle(data, catalog=catalog)
    assert (result.result, result.recommendations, calls) == ("not_struggling", (), [])


def test_callable_catalog_is_used_when_struggling():
    result = run_struggle({**STRUGGLING, "error_types": ["TypeError"]}, catalog=lambda: CATALOG)
    assert _ids(result) == ["d-two-errors"]


def test_bundled_catalog_recommends_for_common_errors(catalog):
    for error_type in (
        "SyntaxError",
        "NameError",
        "TypeError",
        "IndexError",
        "KeyError",
        "AttributeError",
        "IndentationError",
        "ValueError",
        "ZeroDivisionError",
        "ImportError",
    ):
        result = run_struggle({**STRUGGLING, "error_types": [error_type]}, catalog=catalog)
        assert 1 <= len(result.recommendations) <= 3, error_type
        assert all(error_type in r.reason for r in result.recommendations)


def test_reasons_list_one_two_or_three_errors():
    lesson = Lesson("all", "All three", "misc", ("NameError", "TypeError", "IndexError"))
    settings = StruggleSettings(max_recommendations=1)

    def reason(errors):
        data = {**STRUGGLING, "error_types": errors}
        return run_struggle(data, catalog=[lesson], settings=settings).recommendations[0].reason

    assert reason(["TypeError"]) == "Addresses TypeError (seen once)"
    assert reason(["IndexError", "NameError", "IndexError", "TypeError"]) == (
        "Addresses IndexError (seen 2 times), NameError (seen once) and TypeError (seen once)"
    )


def test_recommendations_carry_the_lesson_title():
    result = run_struggle({**STRUGGLING, "error_types": ["TypeError"]}, catalog=CATALOG)
    assert [r.to_dict() for r in result.recommendations] == [
        {
            "lesson_id": "d-two-errors",
            "title": "Names and types",
            "reason": "Addresses TypeError (seen once)",
        }
    ]
