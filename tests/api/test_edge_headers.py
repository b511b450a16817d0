"""The edge's one pass over response headers (aura.api.edge.response_headers): Retry-After.

Flask-Limiter adds its headers, Retry-After included, to every response while rate limits are
on; so the edge keeps a Retry-After on a 429 only, and on a 503 replaces whatever is there with
its short hint (a client told to come back at the end of an hour-long limit window would not).
"""

from __future__ import annotations

import pytest

from aura.api.edge import response_headers


def _retry_after(status: str, headers: list[tuple[str, str]]) -> list[str]:
    return [
        value for name, value in response_headers(status, headers, "rid", auth=False) if name.lower() == "retry-after"
    ]


@pytest.mark.parametrize("given", [[], [("Retry-After", "3600")], [("retry-after", "15")]])
def test_a_503_says_five_seconds_whatever_came_before(given):
    assert _retry_after("503 SERVICE UNAVAILABLE", given) == ["5"]


def test_a_429_keeps_the_limiters():
    assert _retry_after("429 TOO MANY REQUESTS", [("Retry-After", "37")]) == ["37"]


@pytest.mark.parametrize("status", ["200 OK", "201 CREATED", "400 BAD REQUEST", "500 INTERNAL SERVER ERROR"])
def test_no_retry_after_where_it_means_nothing(status):
    assert _retry_after(status, [("Retry-After", "3600")]) == []
