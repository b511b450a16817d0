"""The score formula, the worked examples of docs/workflows.md and the threshold boundary."""

from __future__ import annotations

import pytest

from aura.workflows import StruggleSettings, run_struggle


def _run(catalog, edit_frequency, error_count, window_seconds=300, **settings):
    data = {
        "exercise_id": "ex",
        "edit_frequency": edit_frequency,
        "error_count": error_count,
        "window_seconds": window_seconds,
    }
    return run_struggle(data, catalog=catalog, settings=StruggleSettings(**settings))


@pytest.mark.parametrize(
    ("edit_frequency", "error_count", "window_seconds", "score", "result"),
    [
        # The worked examples in docs/workflows.md.
        (5, 6, 300, 0.56, "struggling"),
        (3, 2, 300, 0.24, "not_struggling"),
        (25, 0, 300, 0.4, "not_struggling"),
        (0, 10, 300, 0.6, "struggling"),
        (12, 8, 120, 1.0, "struggling"),
        # Exactly on the threshold counts as struggling; just below does not.
        (5, 5, 300, 0.5, "struggling"),
        (4.99, 5, 300, 0.4996, "not_struggling"),
        (0, 0, 300, 0.0, "not_struggling"),
    ],
)
def test_score_and_decision(catalog, edit_frequency, error_count, window_seconds, score, result):
    outcome = _run(catalog, edit_frequency, error_count, window_seconds)
    assert (outcome.score, outcome.result) == (score, result)


def test_signals_explain_the_score(catalog):
    signals = _run(catalog, 5, 6).to_dict()["signals"]
    assert signals["error_rate_per_minute"] == 1.2
    assert (signals["edit_signal"], signals["error_signal"]) == (0.5, 0.6)
    assert signals["threshold"] == 0.5
    assert signals["explanation"] == (
        "score 0.56 = 0.4 x edit signal 0.5 (5 edits/min of 10) + 0.6 x error signal 0.6"
        " (1.2 errors/min of 2); at or above threshold 0.5"
    )


def test_signals_saturate_at_one(catalog):
    signals = _run(catalog, 1000, 1000, 60).signals
    assert (signals.edit_signal, signals.error_signal) == (1.0, 1.0)


def test_fast_typing_alone_is_not_struggling(catalog):
    # With default weights the edit signal can add at most 0.4 < 0.5.
    assert _run(catalog, 10_000, 0).result == "not_struggling"


def test_window_changes_the_error_rate(catalog):
    # 4 errors in 2 minutes is 2/min (saturated); the same 4 in 10 minutes is 0.4/min.
    assert _run(catalog, 0, 4, 120).score == 0.6
    assert _run(catalog, 0, 4, 600).score == 0.12


def test_custom_threshold_and_weights(catalog):
    outcome = _run(catalog, 5, 5, score_threshold=0.6, edit_weight=0.5, error_weight=0.5)
    assert (outcome.score, outcome.result) == (0.5, "not_struggling")
    outcome = _run(catalog, 6, 6, score_threshold=0.6, edit_weight=0.5, error_weight=0.5)
    assert (outcome.score, outcome.result) == (0.6, "struggling")


@pytest.mark.parametrize(
    "bad",
    [
        {"edit_weight": 0.5, "error_weight": 0.6},
        {"edit_weight": -0.1, "error_weight": 1.1},
        {"score_threshold": 0},
        {"score_threshold": 1.5},
        {"edit_frequency_threshold": 0},
        {"error_rate_threshold": -1},
        {"error_type_match_points": 1, "topic_match_points": 1},
        {"max_recommendations": -1},
    ],
)
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        StruggleSettings(**bad)


TOPIC_POINTS = "error_type_match_points must exceed topic_match_points >= 0"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"edit_frequency_threshold": -1}, "signal thresholds must be > 0"),
        ({"error_rate_threshold": 0}, "signal thresholds must be > 0"),
        ({"edit_weight": 1.1, "error_weight": -0.1}, "weights must be >= 0"),
        ({"edit_weight": 0.5, "error_weight": 0.6}, "edit_weight + error_weight must equal 1"),
        ({"score_threshold": 1.01}, "score_threshold must be in (0, 1]"),
        ({"error_type_match_points": 2, "topic_match_points": 3}, TOPIC_POINTS),
        ({"topic_match_points": -1}, TOPIC_POINTS),
        ({"max_error_types": -1}, "limits must be non-negative"),
        ({"max_name_length": 0}, "limits must be non-negative"),
    ],
)
def test_invalid_settings_say_why(bad, message):
    with pytest.raises(ValueError) as info:
        StruggleSettings(**bad)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "edge",
    [
        {"edit_frequency_threshold": 0.5, "error_rate_threshold": 0.5},
        {"edit_weight": 0.0, "error_weight": 1.0},
        {"edit_weight": 1.0, "error_weight": 0.0},
        {"score_threshold": 1.0},
        {"topic_match_points": 0},
        {"max_recommendations": 0, "max_error_types": 0, "max_name_length": 1},
    ],
)
def test_settings_on_the_edge_are_accepted(edge):
    settings = StruggleSettings(**edge)
    assert all(getattr(settings, name) == value for name, value in edge.items())


def test_the_explanation_says_below_when_not_struggling(catalog):
    assert _run(catalog, 3, 2).explanation == (
        "score 0.24 = 0.4 x edit signal 0.3 (3 edits/min of 10) + 0.6 x error signal 0.2"
        " (0.4 errors/min of 2); below threshold 0.5"
    )


def test_to_dict_is_the_whole_result(catalog):
    # 1 error in 7 minutes: 0.142857... errors/min, rounded to four decimals in the output.
    data = {
        "exercise_id": "ex",
        "edit_frequency": 2.5,
        "error_count": 1,
        "window_seconds": 420,
        "error_types": ["KeyError", "keyerror"],
        "topic": "Dicts",
    }
    outcome = run_struggle(data, catalog=catalog)
    assert outcome.to_dict() == {
        "result": "not_struggling",
        "score": 0.1429,
        "signals": {
            "edit_frequency": 2.5,
            "error_count": 1,
            "window_seconds": 420,
            "error_rate_per_minute": 0.1429,
            "edit_signal": 0.25,
            "error_signal": 0.0714,
            "error_types": ["KeyError"],
            "error_type_counts": {"KeyError": 2},
            "topic": "dicts",
            "threshold": 0.5,
            "explanation": outcome.explanation,
        },
        "recommendations": [],
    }
