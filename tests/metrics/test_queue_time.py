"""Queue time from a proxy's X-Request-Start, and the HTTP metrics middleware's bookkeeping, in process."""

from __future__ import annotations

import itertools

import pytest

from aura.instrumentation import http, recorder
from aura.instrumentation.environ import INFLIGHT_SLOT_KEY, ROUTE_KEY, TRACE_ID_KEY, UNMATCHED
from aura.instrumentation.http import HttpMetricsMiddleware, queue_seconds

NOW = 1_700_000_010.0


@pytest.mark.parametrize(
    ("header", "waited"),
    [
        ("t=1700000000.0", 10.0),  # nginx: seconds with ms
        ("t=1700000000000", 10.0),  # Heroku: ms
        ("t=1700000000000000", 10.0),  # µs
        ("1700000000.0", 10.0),  # no t= prefix
        ("  t=1700000000.0 \t", 10.0),  # surrounding blanks
        ("t=1700000010", 0.0),  # exactly now
        ("t=1700000009.5", 0.5),  # under a second, not rounded away
        ("t=1700000010.5", 0.0),  # half a second in the future: clock skew
        ("t=1700000011", 0.0),  # one second in the future: still skew
        ("t=1699913610", 86400.0),  # one day exactly
    ],
)
def test_queue_seconds_reads_seconds_ms_and_us(header, waited):
    assert queue_seconds(header, NOW) == waited


@pytest.mark.parametrize(
    "header",
    ["", "t=", "t=abc", "x=1700000000", "T=1700000000", "t=1700000011.5", "t=1699913609.5", "t=0"],
)
def test_queue_seconds_ignores_what_no_proxy_would_send(header):
    assert queue_seconds(header, NOW) is None


def test_the_unit_is_told_by_magnitude_at_its_bounds():
    # 1e11 is seconds (not > 1e11); 1e14 is ms (not > 1e14); just above each is the next unit.
    assert queue_seconds("t=100000000000", 1e11 + 5) == 5.0
    assert queue_seconds("t=100000000001", 100000000.001 + 5) == pytest.approx(5.0)
    assert queue_seconds("t=100000000000000", 1e11 + 5) == 5.0
    assert queue_seconds("t=100000000000001", 100000000.000001 + 5) == pytest.approx(5.0)


class _Recorder:
    """Stands in for the recorder's functions; remembers every call."""

    def __init__(self, slot: int = 7):
        self.slot = slot
        self.calls: list[tuple] = []
        self.made: list[tuple[str, str, str]] = []

    def started(self, start, method):
        self.calls.append(("started", start, method))
        return self.slot

    def ended(self, slot, seconds):
        self.calls.append(("ended", slot, seconds))

    def queued(self, seconds):
        self.calls.append(("queued", seconds))

    def http_recorder(self, method, endpoint, status):
        self.made.append((method, endpoint, status))

        def record(seconds, trace_id):
            self.calls.append(("record", method, endpoint, status, seconds, trace_id))

        return record


@pytest.fixture
def rec(monkeypatch):
    fake = _Recorder()
    monkeypatch.setattr(recorder, "request_started", fake.started)
    monkeypatch.setattr(recorder, "request_ended", fake.ended)
    monkeypatch.setattr(recorder, "request_queued", fake.queued)
    monkeypatch.setattr(recorder, "http_recorder", fake.http_recorder)
    ticks = itertools.cycle([100.0, 102.5])  # each request: started at 100, ended 2.5 s later
    monkeypatch.setattr(http, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(http, "time", lambda: NOW)
    return fake


def _app(status="404 NOT FOUND", route=None, body=(b"x",), raises=None, statuses=None):
    def app(environ, start_response):
        if route is not None:
            environ[ROUTE_KEY] = route
        for s in [status] if statuses is None else statuses:
            start_response(s, [("Content-Type", "text/plain")], None)
        if raises is not None:
            raise raises
        return list(body)

    return app


def _call(middleware, **environ):
    seen = []
    result = middleware(dict(environ), lambda status, headers, exc_info=None: seen.append((status, headers, exc_info)))
    return result, seen


def test_a_request_is_started_ended_and_recorded_once_with_its_labels(rec):
    middleware = HttpMetricsMiddleware(_app(route="/api/v1/things/<id>"))
    environ = {"REQUEST_METHOD": "POST", TRACE_ID_KEY: "abc"}
    seen = []
    result = middleware(environ, lambda status, headers, exc_info=None: seen.append((status, headers, exc_info)))
    assert result == [b"x"]
    assert seen == [("404 NOT FOUND", [("Content-Type", "text/plain")], None)]
    assert environ[INFLIGHT_SLOT_KEY] == 7
    assert rec.calls == [
        ("started", 100.0, "POST"),
        ("ended", 7, 2.5),
        ("record", "POST", "/api/v1/things/<id>", "404", 2.5, "abc"),
    ]


def test_non_standard_or_missing_methods_fold_into_one_label(rec):
    middleware = HttpMetricsMiddleware(_app(status="200 OK", route="/r"))
    _call(middleware, REQUEST_METHOD="BREW")
    _call(middleware)
    _call(middleware, REQUEST_METHOD="PATCH")
    assert rec.made == [("OTHER", "/r", "200"), ("PATCH", "/r", "200")]
    assert [c[2] for c in rec.calls if c[0] == "started"] == ["OTHER", "OTHER", "PATCH"]
    assert [c[5] for c in rec.calls if c[0] == "record"] == ["", "", ""]  # no trace id: empty exemplar


def test_one_recorder_per_label_set(rec):
    middleware = HttpMetricsMiddleware(_app(status="200 OK", route="/r"))
    _call(middleware, REQUEST_METHOD="GET")
    _call(middleware, REQUEST_METHOD="GET")
    assert rec.made == [("GET", "/r", "200")]
    assert len([c for c in rec.calls if c[0] == "record"]) == 2


def test_the_last_status_line_counts_and_none_is_a_500(rec):
    middleware = HttpMetricsMiddleware(_app(statuses=["200 OK", "503 SERVICE UNAVAILABLE"]))
    _call(middleware, REQUEST_METHOD="GET")
    with pytest.raises(ValueError):
        _call(HttpMetricsMiddleware(_app(statuses=[], raises=ValueError("x"))), REQUEST_METHOD="GET")
    assert rec.made == [("GET", UNMATCHED, "503"), ("GET", UNMATCHED, "500")]
    assert [c[0] for c in rec.calls].count("ended") == 2


@pytest.mark.parametrize("exc", [SystemExit(1), KeyboardInterrupt()])
def test_a_worker_aborted_in_a_request_records_nothing(rec, exc):
    with pytest.raises(type(exc)):
        _call(HttpMetricsMiddleware(_app(raises=exc)), REQUEST_METHOD="GET")
    assert rec.calls == [("started", 100.0, "GET")]
    assert rec.made == []


def test_an_abort_without_an_inflight_slot_is_still_recorded(rec):
    rec.slot = -1
    with pytest.raises(SystemExit):
        _call(HttpMetricsMiddleware(_app(status="200 OK", raises=SystemExit(1))), REQUEST_METHOD="GET")
    assert rec.calls[1:] == [("ended", -1, 2.5), ("record", "GET", UNMATCHED, "200", 2.5, "")]


def test_an_abort_in_slot_zero_records_nothing(rec):
    rec.slot = 0
    with pytest.raises(SystemExit):
        _call(HttpMetricsMiddleware(_app(raises=SystemExit(1))), REQUEST_METHOD="GET")
    assert rec.made == []


def test_queue_time_is_recorded_only_from_a_trusted_proxy_and_when_sane(rec):
    trusted = HttpMetricsMiddleware(_app(route="/r"), trust_request_start=True)
    _call(trusted, REQUEST_METHOD="GET", HTTP_X_REQUEST_START="t=1700000004.0")
    _call(trusted, REQUEST_METHOD="GET", HTTP_X_REQUEST_START="garbage")
    _call(trusted, REQUEST_METHOD="GET")
    _call(HttpMetricsMiddleware(_app(route="/r")), REQUEST_METHOD="GET", HTTP_X_REQUEST_START="t=1700000004.0")
    assert [c for c in rec.calls if c[0] == "queued"] == [("queued", 6.0)]


class _Rule:
    def __init__(self, rule):
        self.rule = rule


class _UrlMap:
    def __init__(self, result=None, error=None):
        self.result, self.error, self.asked = result, error, []

    def bind_to_environ(self, environ):
        return self

    def match(self, method, return_rule):
        self.asked.append((method, return_rule))
        if self.error is not None:
            raise self.error
        return self.result, {}


class _MethodNotAllowed:
    valid_methods = ["PUT", "GET"]


def test_a_405_is_labelled_with_the_rule_of_its_path(rec):
    from aura.instrumentation.environ import ROUTING_ERROR_KEY

    url_map = _UrlMap(result=_Rule("/api/v1/things"))
    middleware = HttpMetricsMiddleware(_app(status="405 METHOD NOT ALLOWED"), url_map=url_map)
    _call(middleware, REQUEST_METHOD="POST", **{ROUTING_ERROR_KEY: _MethodNotAllowed()})
    assert url_map.asked == [("PUT", True)]
    assert rec.made == [("POST", "/api/v1/things", "405")]


def test_without_a_url_map_or_when_matching_fails_the_label_is_unmatched(rec):
    from aura.instrumentation.environ import ROUTING_ERROR_KEY

    error = {ROUTING_ERROR_KEY: _MethodNotAllowed()}
    _call(HttpMetricsMiddleware(_app(status="405 METHOD NOT ALLOWED")), REQUEST_METHOD="POST", **error)
    failing = _UrlMap(error=LookupError("no"))
    _call(HttpMetricsMiddleware(_app(status="405 METHOD NOT ALLOWED"), url_map=failing), REQUEST_METHOD="POST", **error)
    assert rec.made == [("POST", UNMATCHED, "405"), ("POST", UNMATCHED, "405")]


def test_the_apps_exc_info_reaches_the_server(rec):
    error = (ValueError, ValueError("x"), None)

    def app(environ, start_response):
        start_response("500 INTERNAL SERVER ERROR", [], error)
        return []

    _, seen = _call(HttpMetricsMiddleware(app), REQUEST_METHOD="GET")
    assert seen == [("500 INTERNAL SERVER ERROR", [], error)]
