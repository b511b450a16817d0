"""Struggle detection: decide whether a learner is struggling and recommend lessons."""

from .catalog import CATALOG_FILE, CatalogSource, Lesson, LessonDict, load_catalog_file
from .graph import StruggleContext, build_struggle_graph, get_struggle_graph, run_struggle
from .settings import DEFAULT_STRUGGLE_SETTINGS, StruggleSettings
from .types import (
    STRUGGLE_LABELS,
    Recommendation,
    RecommendationDict,
    SignalsDict,
    StruggleInput,
    StruggleLabel,
    StruggleResult,
    StruggleResultDict,
    StruggleSignals,
)

__all__ = [
    "CATALOG_FILE",
    "DEFAULT_STRUGGLE_SETTINGS",
    "CatalogSource",
    "Lesson",
    "LessonDict",
    "Recommendation",
    "RecommendationDict",
    "SignalsDict",
    "StruggleContext",
    "StruggleInput",
    "StruggleLabel",
    "STRUGGLE_LABELS",
    "StruggleResult",
    "StruggleResultDict",
    "StruggleSettings",
    "StruggleSignals",
    "build_struggle_graph",
    "get_struggle_graph",
    "load_catalog_file",
    "run_struggle",
]
