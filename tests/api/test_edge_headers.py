"""The edge's one pass over response headers (aura.api.edge.response_headers): Retry-After."""

from __future__ import annotations

import pytest

from aura.api.edge import response_headers


def _retry_after(status: str, headers: list[tuple[str, str]]) -> list[str]:
    return [
        value for name, value in response_headers(status, headers, "rid", auth=False) if name.lower() == "retry-after"
    ]


def test_a_503_keeps_the_views_own_retry_after_once():
    # /metrics answers 503 with Retry-After: 15 (a scrape interval) on the app port as on the listener
    assert _retry_after("503 SERVICE UNAVAILABLE", [("Retry-After", "15")]) == ["15"]
    assert _retry_after("503 SERVICE UNAVAILABLE", [("retry-after", "15")]) == ["15"]


def test_a_503_without_one_gets_a_short_hint():
    assert _retry_after("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json")]) == ["5"]


def test_a_429_keeps_the_limiters():
    assert _retry_after("429 TOO MANY REQUESTS", [("Retry-After", "37")]) == ["37"]


@pytest.mark.parametrize("status", ["200 OK", "201 CREATED", "400 BAD REQUEST", "500 INTERNAL SERVER ERROR"])
def test_no_retry_after_where_it_means_nothing(status):
    assert _retry_after(status, [("Retry-After", "15")]) == []
