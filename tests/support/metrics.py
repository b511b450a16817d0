"""Read metric samples from the registry or a /metrics body, and compare snapshots."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


def _key(name: str, labels: dict) -> Key:
    return name, tuple(sorted(labels.items()))


def registry_samples() -> dict[Key, float]:
    """Every sample of this process's registry (excluding *_created timestamps)."""
    out = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[_key(s.name, s.labels)] = s.value
    return out


def parse_exposition(text: str) -> dict[Key, float]:
    """Every sample of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[_key(s.name, s.labels)] = s.value
    return out


def delta(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    """Samples that changed, with how much (histogram buckets included)."""
    changed = {}
    for key, value in after.items():
        diff = value - before.get(key, 0.0)
        if diff:
            changed[key] = diff
    return changed


def counters_moved(before, after, prefixes=("auth_", "user_", "tokens_")) -> Counter:
    """`name{labels}` -> increase, for counters whose name starts with one of the prefixes."""
    moved = Counter()
    for (name, labels), diff in delta(before, after).items():
        if name.startswith(prefixes) and name.endswith("_total"):
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            moved[f"{name}{{{label_text}}}"] += diff
    return moved


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get(_key(name, labels), 0.0)


def default_metrics_root() -> Path:
    """gunicorn.conf.py's root when PROMETHEUS_MULTIPROC_DIR is unset: one per user. An instance
    takes the root when it is free, else ``instance-<pid>`` inside it - and other instances on
    the machine (parallel tests, other runs) may take or free the root at any time."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return Path(base) / f"aura-metrics-{os.getuid()}"
