"""The one JSON error shape every API error has, asserted the same way everywhere."""

from __future__ import annotations

from collections.abc import Mapping

# The headers every answer carries, errors included.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def assert_error(
    response,
    status: int,
    code: str | None = None,
    *,
    extra: set[str] = frozenset(),
    headers: Mapping[str, str] | None = None,
) -> dict:
    """`status` with the JSON error shape: `error` (equal to `code` when given) and `message`, at
    most `details` besides (and the `extra` keys, e.g. /readyz's checks), and the given `headers`.

    `response` is a Flask test response or a `requests` response; returns the body.
    """
    text = response.text[:300]
    assert response.status_code == status, (response.status_code, text)
    content_type = response.headers["Content-Type"]
    assert content_type.split(";")[0].strip() == "application/json", content_type
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str), body
    assert set(body) <= {"error", "message", "details"} | set(extra), body
    if code is not None:
        assert body["error"] == code, body
    for name, value in (headers or {}).items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    return body
