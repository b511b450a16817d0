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


def test_the_edge_set_is_added_once_after_the_apps_headers():
    given = [("Content-Type", "application/json"), ("x-request-id", "spoofed"), ("X-Content-Type-Options", "none")]
    assert response_headers("200 OK", given, "rid", auth=False) == [
        ("Content-Type", "application/json"),
        ("X-Request-ID", "rid"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]


def test_a_views_own_frame_and_referrer_policies_are_kept():
    given = [("x-frame-options", "SAMEORIGIN"), ("Referrer-Policy", "same-origin"), ("Cache-Control", "max-age=60")]
    assert response_headers("200 OK", given, "rid", auth=False) == [
        *given,
        ("X-Request-ID", "rid"),
        ("X-Content-Type-Options", "nosniff"),
    ]


def test_auth_responses_are_never_cached_whatever_the_view_said():
    given = [("Cache-Control", "max-age=60"), ("pragma", "x"), ("Retry-After", "9")]
    assert response_headers("429 TOO MANY REQUESTS", given, "rid", auth=True) == [
        ("Retry-After", "9"),
        ("X-Request-ID", "rid"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]


def test_the_middleware_sends_the_requests_id_and_marks_auth_paths():
    from aura.api.edge import EdgeMiddleware
    from aura.infra.logs import REQUEST_ID_KEY, request_context

    seen = {}

    def app(environ, start_response):
        seen["context"] = request_context()
        start_response("200 OK", [("Cache-Control", "max-age=5")], None)
        return [b"ok"]

    def call(path, trusted, sent="proxy-9"):
        answers = []
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_X_REQUEST_ID": sent}
        body = EdgeMiddleware(app, trust_request_id=trusted)(environ, lambda s, h, e=None: answers.append((s, h, e)))
        return body, answers, environ

    body, answers, environ = call("/api/v1/auth/login", True)
    assert body == [b"ok"]
    assert environ[REQUEST_ID_KEY] == "proxy-9" == seen["context"]["request_id"]
    ((status, headers, exc_info),) = answers
    assert (status, exc_info) == ("200 OK", None)
    assert ("X-Request-ID", "proxy-9") in headers
    assert ("Cache-Control", "no-store") in headers and ("Cache-Control", "max-age=5") not in headers
    _, answers, environ = call("/api/v1/auth", False)  # not under the auth prefix; id not trusted
    headers = answers[0][1]
    assert ("Cache-Control", "max-age=5") in headers and ("Pragma", "no-cache") not in headers
    assert ("X-Request-ID", environ[REQUEST_ID_KEY]) in headers and environ[REQUEST_ID_KEY] != "proxy-9"
    _, answers, _ = call("", False)  # no path at all
    assert ("Cache-Control", "max-age=5") in answers[0][1]


def test_the_middleware_passes_exc_info_and_needs_no_path():
    from aura.api.edge import EdgeMiddleware

    error = (ValueError, ValueError("x"), None)

    def app(environ, start_response):
        start_response("500 INTERNAL SERVER ERROR", [("Cache-Control", "max-age=5")], error)
        return []

    answers = []
    EdgeMiddleware(app, trust_request_id=False)({}, lambda s, h, e=None: answers.append((s, h, e)))
    ((status, headers, exc_info),) = answers
    assert exc_info is error
    assert ("Cache-Control", "max-age=5") in headers
