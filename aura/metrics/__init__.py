"""Aura's metrics: record through `aura.metrics.<function>` (see `recording`), never label sets.

The recording functions are loaded on first use, not when this package is imported: Gunicorn's
master imports `aura.metrics.multiproc` from its hooks, and must not create metric values (and
so metric files of its own) by importing `definitions` as a side effect.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    recording = importlib.import_module("aura.metrics.recording")
    value = getattr(recording, name)
    globals()[name] = value  # later lookups are plain module attributes
    return value
