"""Signals and score: the deterministic formula behind a struggle decision."""

from __future__ import annotations

from .settings import StruggleSettings
from .types import StruggleRequest, StruggleScore, StruggleSignals

# Scores are rounded before comparing so 0.49999999999 from float noise cannot flip a decision.
SCORE_DECIMALS = 4


def compute_signals(request: StruggleRequest, settings: StruggleSettings) -> StruggleSignals:
    """Turn raw rates into two signals in 0..1, each saturating at its threshold."""
    error_rate = request.error_count / (request.window_seconds / 60)
    return StruggleSignals(
        request=request,
        error_rate_per_minute=error_rate,
        edit_signal=min(request.edit_frequency / settings.edit_frequency_threshold, 1.0),
        error_signal=min(error_rate / settings.error_rate_threshold, 1.0),
    )


def score_signals(signals: StruggleSignals, settings: StruggleSettings) -> StruggleScore:
    """Weight the signals into a score in 0..1 and compare it with the threshold."""
    edit_part = settings.edit_weight * signals.edit_signal
    error_part = settings.error_weight * signals.error_signal
    score = round(edit_part + error_part, SCORE_DECIMALS)
    struggling = score >= settings.score_threshold
    explanation = (
        f"score {score:.4g} = {settings.edit_weight:g} x edit signal {signals.edit_signal:.4g}"
        f" ({signals.request.edit_frequency:.4g} edits/min of {settings.edit_frequency_threshold:g})"
        f" + {settings.error_weight:g} x error signal {signals.error_signal:.4g}"
        f" ({signals.error_rate_per_minute:.4g} errors/min of {settings.error_rate_threshold:g});"
        f" {'at or above' if struggling else 'below'} threshold {settings.score_threshold:g}"
    )
    return StruggleScore(
        score=score,
        threshold=settings.score_threshold,
        struggling=struggling,
        explanation=explanation,
    )
