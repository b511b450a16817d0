"""A scrape's body and headers: every worker's metrics (or this process's), negotiated like prometheus_client."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .collector import register_collector
from .directory import Claim
from .locking import MetricsDirectoryError


@dataclass(frozen=True)
class _Instance:
    claim: Claim
    collectors: Callable[[], Iterable[Any]]


_instance: _Instance | None = None  # the Gunicorn instance this process belongs to (serve_instance)


def serve_instance(claim: Claim, collectors: Callable[[], Iterable[Any]]) -> None:
    """Make this process (and its forks) part of the instance of ``claim`` (``GunicornMetrics.start``).

    Its scrapes of ``claim.path`` then add ``collectors()`` (the whole instance's process
    metrics), or are refused when the directory was unusable at start-up.
    """
    global _instance
    _instance = _Instance(claim, collectors)


def _registry(multiproc_dir: str) -> CollectorRegistry:
    """A fresh registry per scrape over all workers' files, or this process's registry."""
    if not multiproc_dir:
        return REGISTRY
    own = _instance if _instance is not None and _instance.claim.path == multiproc_dir else None
    if own is not None and own.claim.error:
        # The directory was unusable at start (full, read-only, not a directory, a bad name):
        # workers count in memory only, and what the directory holds was never cleaned. A scrape
        # would be partial or stale - a healthy-looking target with no traffic - so none is served.
        raise MetricsDirectoryError(f"the metrics directory was unusable at start-up: {own.claim.error}")
    registry = CollectorRegistry()
    register_collector(registry, multiproc_dir)  # Aura's collector or, if internals are untested, stock
    if own is not None:
        for collector in own.collectors():
            registry.register(collector)
    return registry


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when ``Accept-Encoding`` gives gzip (or ``*``) a quality above 0 (RFC 9110, 12.5.3)."""
    qualities: dict[str, float] = {}
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a malformed weight is not an acceptance
        if coding:
            qualities[coding] = quality
    return qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0))) > 0


def render(multiproc_dir: str, accept: str | None, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """Body and headers for a scrape: text or OpenMetrics by Accept, gzip when accepted."""
    encoder, content_type = choose_encoder(accept or "")  # it treats None as "", typed str only
    body = encoder(_registry(multiproc_dir))
    headers = {"Content-Type": content_type, "Cache-Control": "no-store", "Vary": "Accept, Accept-Encoding"}
    if accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=1)  # level 1: most of the gain, little CPU
        headers["Content-Encoding"] = "gzip"
    return body, headers
