"""Tunable thresholds and weights for struggle detection."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StruggleSettings:
    """Thresholds, weights and limits for the struggle workflow (see docs/workflows.md)."""

    # Edits per minute at which the edit signal saturates at 1.0.
    edit_frequency_threshold: float = 10.0
    # Errors per minute at which the error signal saturates at 1.0.
    error_rate_threshold: float = 2.0
    # Weights of the two signals in the score; they must add up to 1 so the score stays in 0..1.
    edit_weight: float = 0.4
    error_weight: float = 0.6
    # A learner is struggling when the (rounded) score is >= this value.
    score_threshold: float = 0.5
    # Ranking points per matching error type and for a matching topic.
    error_type_match_points: int = 2
    topic_match_points: int = 1
    max_recommendations: int = 3
    # Input bounds: anything beyond is rejected as impossible rather than truncated.
    max_error_types: int = 50
    max_name_length: int = 100

    def __post_init__(self) -> None:
        """Reject settings that would make the score meaningless."""
        if self.edit_frequency_threshold <= 0 or self.error_rate_threshold <= 0:
            raise ValueError("signal thresholds must be > 0")
        if self.edit_weight < 0 or self.error_weight < 0:
            raise ValueError("weights must be >= 0")
        if not math.isclose(self.edit_weight + self.error_weight, 1.0):
            raise ValueError("edit_weight + error_weight must equal 1")
        if not 0 < self.score_threshold <= 1:
            raise ValueError("score_threshold must be in (0, 1]")
        if self.error_type_match_points <= self.topic_match_points or self.topic_match_points < 0:
            # The documented ranking promises an error-type match outweighs a topic match.
            raise ValueError("error_type_match_points must exceed topic_match_points >= 0")
        if self.max_recommendations < 0 or self.max_error_types < 0 or self.max_name_length < 1:
            raise ValueError("limits must be non-negative")


DEFAULT_STRUGGLE_SETTINGS = StruggleSettings()
