"""Render the metrics of this process or of every Gunicorn worker, per scrape."""

from __future__ import annotations

import gzip

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder


def _registry(multiproc_dir: str):
    """A fresh registry per scrape over all workers' files, or this process's registry."""
    if not multiproc_dir:
        return REGISTRY
    from aura.metrics.multiproc import AuraMultiProcessCollector

    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, multiproc_dir)
    return registry


def render(
    multiproc_dir: str, accept: str | None, accept_encoding: str | None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers for a scrape: text or OpenMetrics by Accept, gzip when accepted."""
    encoder, content_type = choose_encoder(accept)
    body = encoder(_registry(multiproc_dir))
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    if accept_encoding and "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=1)  # level 1: most of the gain, little CPU
        headers["Content-Encoding"] = "gzip"
    return body, headers
