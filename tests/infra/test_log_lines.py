"""The log module's pieces in process: access lines, formatters, the record context, request ids."""

from __future__ import annotations

import datetime
import json
import logging
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from aura.infra import logs
from aura.infra.logs import (
    DATE_FORMAT,
    REQUEST_ID_KEY,
    TEXT_FORMAT,
    GunicornLogger,
    TextAccessLogger,
    assign_request_id,
    configure_logging,
    formatter,
    handling,
    request_context,
)
from aura.instrumentation.environ import ROUTE_KEY, TRACE_ID_KEY

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def _environ(**extra):
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/v1/things?token=secret#frag",
        "PATH_INFO": "/api/v1/things",
        "QUERY_STRING": "token=secret",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.9",
        "HTTP_REFERER": "https://example.org/page?cursor=abc#top",
    }
    environ.update(extra)
    return environ


def _resp(status="404 NOT FOUND"):
    return SimpleNamespace(status=status, headers=[], sent=12)


ELAPSED = datetime.timedelta(seconds=1, microseconds=234567)


def _config(**settings):
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_text_access_atoms_carry_no_query_strings():
    logger = TextAccessLogger(_config())
    atoms = logger.atoms(_resp(), SimpleNamespace(headers=[]), _environ(), ELAPSED)
    assert atoms["r"] == "GET /api/v1/things HTTP/1.1"
    assert atoms["f"] == "https://example.org/page"
    assert atoms["q"] == "-"
    assert atoms["s"] == "404"  # Gunicorn's own atoms stay


def test_text_access_atoms_fall_back_to_the_path_and_dashes():
    logger = TextAccessLogger(_config())
    environ = {"RAW_URI": "", "PATH_INFO": "/p#x", "REQUEST_METHOD": "PUT", "SERVER_PROTOCOL": "HTTP/1.0"}
    atoms = logger.atoms(_resp(), SimpleNamespace(headers=[]), environ, ELAPSED)
    assert atoms["r"] == "PUT /p HTTP/1.0"
    assert atoms["f"] == "-"
    environ = {"RAW_URI": "", "REQUEST_METHOD": "PUT", "SERVER_PROTOCOL": "HTTP/1.0"}
    assert logger.atoms(_resp(), SimpleNamespace(headers=[]), environ, ELAPSED)["r"] == "PUT  HTTP/1.0"


def test_text_access_atoms_prefer_the_raw_uri_to_the_decoded_path():
    logger = TextAccessLogger(_config())
    environ = _environ(RAW_URI="/api/v1/th%69ngs?token=secret")
    atoms = logger.atoms(_resp(), SimpleNamespace(headers=[]), environ, ELAPSED)
    assert atoms["r"] == "GET /api/v1/th%69ngs HTTP/1.1"


@pytest.mark.parametrize(
    ("url", "bare"),
    [("/a?b=1?c=2", "/a"), ("/a#b#c", "/a"), ("/a#f?x", "/a"), ("/a?x#f", "/a"), ("/a", "/a"), ("", ""), ("-", "-")],
)
def test_without_query_keeps_the_path_only(url, bare):
    assert logs._without_query(url) == bare


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _gunicorn_logger(**settings):
    logger = GunicornLogger(_config(**settings))
    records = _Records()
    logger.access_log.addHandler(records)
    return logger, records


def test_json_access_line_fields(request):
    logger, records = _gunicorn_logger(accesslog="-")
    request.addfinalizer(lambda: logger.access_log.removeHandler(records))
    environ = _environ(**{REQUEST_ID_KEY: "rid-1", TRACE_ID_KEY: TRACE, ROUTE_KEY: "/api/v1/things"})
    logger.access(_resp("404 NOT FOUND"), None, environ, ELAPSED)
    (record,) = records.records
    assert record.getMessage() == "GET /api/v1/things 404"
    assert {name: getattr(record, name) for name in ("request_id", "trace_id", "method", "route", "path")} == {
        "request_id": "rid-1",
        "trace_id": TRACE,
        "method": "GET",
        "route": "/api/v1/things",
        "path": "/api/v1/things",
    }
    assert record.status == 404
    assert record.duration_seconds == 1.234567
    assert record.remote_addr == "10.0.0.9"
    line = json.loads(logs.json_formatter().format(record))
    assert line["status"] == 404 and line["logger"] == "gunicorn.access" and line["level"] == "INFO"


def test_json_access_line_defaults_and_an_int_status(request):
    logger, records = _gunicorn_logger(accesslog="-")
    request.addfinalizer(lambda: logger.access_log.removeHandler(records))
    logger.access(_resp(204), None, {}, datetime.timedelta(microseconds=1234567))
    (record,) = records.records
    assert record.getMessage() == "- - 204"
    assert (record.request_id, record.trace_id, record.method, record.route, record.path, record.remote_addr) == (
        "-",
        "-",
        "-",
        "unmatched",
        "-",
        "-",
    )
    assert record.status == 204 and record.duration_seconds == 1.234567


def test_no_access_line_without_an_access_log(request):
    logger, records = _gunicorn_logger()
    request.addfinalizer(lambda: logger.access_log.removeHandler(records))
    logger.access(_resp(), None, _environ(), ELAPSED)
    assert records.records == []


def test_gunicorn_handlers_get_the_json_formatter():
    logger = GunicornLogger(_config(accesslog="-"))
    handlers = logger.error_log.handlers + logger.access_log.handlers
    assert logger.error_log.handlers and logger.access_log.handlers
    for handler in handlers:
        assert isinstance(handler.formatter, type(logs.json_formatter()))


def _record(**extra):
    record = logging.LogRecord("aura.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_name_time_level_logger_and_message():
    record = _record(request_id="r1")
    record.created = 0.0
    line = json.loads(formatter("json").format(record))
    assert line["level"] == "WARNING"
    assert line["logger"] == "aura.x"
    assert line["message"] == "hello you"
    assert line["request_id"] == "r1"
    assert line["time"] == datetime.datetime.fromtimestamp(0.0).astimezone().strftime(DATE_FORMAT)
    assert not {"asctime", "levelname", "name"} & set(line)


def test_text_lines_use_the_text_format():
    text = formatter("text")
    assert text._fmt == TEXT_FORMAT and text.datefmt == DATE_FORMAT
    assert formatter("anything").__class__ is logging.Formatter


def test_records_outside_a_request_read_dashes():
    record = _record(route="/kept")
    assert logs._ContextDefaults().filter(record) is True
    assert (record.request_id, record.trace_id, record.method, record.route, record.path) == (
        "-",
        "-",
        "-",
        "/kept",
        "-",
    )


def test_request_context_outside_and_inside_a_request():
    assert request_context() == {}
    environ = {"PATH_INFO": "caf\xc3\xa9//x", "REQUEST_METHOD": "POST", REQUEST_ID_KEY: "rid", TRACE_ID_KEY: "tid"}
    seen = []

    def app(env, start_response):
        seen.append(request_context())
        return [b"ok"]

    assert handling(app, environ, None) == [b"ok"]
    assert seen == [
        {"request_id": "rid", "trace_id": "tid", "method": "POST", "route": "unmatched", "path": "/café//x"}
    ]
    assert request_context() == {}  # reset after the call
    seen.clear()
    handling(app, {}, None)
    assert seen == [{"request_id": "-", "trace_id": "-", "method": "-", "route": "unmatched", "path": "/"}]


def test_the_context_is_reset_when_the_app_raises():
    def app(env, start_response):
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        handling(app, {"REQUEST_METHOD": "GET"}, None)
    assert request_context() == {}


def test_request_ids_trusted_plain_or_fresh():
    environ = {"HTTP_X_REQUEST_ID": "proxy-1", "HTTP_TRACEPARENT": TRACEPARENT}
    assert assign_request_id(environ, True) == "proxy-1"
    assert (environ[REQUEST_ID_KEY], environ[TRACE_ID_KEY]) == ("proxy-1", TRACE)
    for trusted, sent in (
        (False, "proxy-1"),
        (True, "bad id with spaces"),
        (True, ""),
        (True, "x" * 129),
        (True, "id\n"),
    ):
        environ = {"HTTP_X_REQUEST_ID": sent, "HTTP_TRACEPARENT": TRACEPARENT}
        rid = assign_request_id(environ, trusted)
        assert len(rid) == 32 and int(rid, 16) >= 0
        assert environ[REQUEST_ID_KEY] == rid
        assert environ[TRACE_ID_KEY] == (TRACE if trusted else rid)
    environ = {"HTTP_X_REQUEST_ID": "x" * 128}
    assert assign_request_id(environ, True) == "x" * 128
    assert environ[TRACE_ID_KEY] == "x" * 128
    assert assign_request_id({}, True) != assign_request_id({}, True)


@pytest.fixture
def clean_root(monkeypatch):
    """The root logger, its handlers emptied for the test (pytest adds its own at call time)."""
    root = logging.getLogger()
    level = root.level
    factory = logging.getLogRecordFactory()

    def empty():
        monkeypatch.setattr(root, "handlers", [])
        logging.setLogRecordFactory(logging.LogRecord)  # as in a fresh process
        return root

    yield empty
    logging.setLogRecordFactory(factory)
    root.setLevel(level)


def test_configure_logging_installs_one_handler_and_reconfigures_it(clean_root):
    root = clean_root()
    configure_logging("WARNING", "json")
    (handler,) = root.handlers
    assert root.level == logging.WARNING
    assert isinstance(handler.formatter, type(logs.json_formatter()))
    assert [type(f) for f in handler.filters] == [logs._ContextDefaults]
    configure_logging("DEBUG", "text")
    assert root.handlers == [handler]
    assert root.level == logging.DEBUG
    assert handler.formatter._fmt == TEXT_FORMAT
    assert len(handler.filters) == 1


def test_configure_logging_leaves_a_hosts_handlers_alone(clean_root):
    root = clean_root()
    theirs = logging.NullHandler()
    root.handlers.append(theirs)
    root.setLevel(logging.ERROR)
    configure_logging("DEBUG", "json")
    assert root.handlers == [theirs]
    assert root.level == logging.ERROR
    assert theirs.formatter is None


def test_the_record_factory_is_installed_once_and_adds_the_context(clean_root):
    clean_root()
    configure_logging("INFO", "text")
    factory = logging.getLogRecordFactory()
    configure_logging("INFO", "text")
    assert logging.getLogRecordFactory() is factory
    seen = []

    def app(env, start_response):
        seen.append(logging.getLogger("aura.t").makeRecord("aura.t", logging.INFO, "f", 1, "m", (), None))
        return []

    handling(app, {REQUEST_ID_KEY: "rid", "PATH_INFO": "/a", ROUTE_KEY: "/a"}, None)
    assert (seen[0].request_id, seen[0].route, seen[0].path, seen[0].method) == ("rid", "/a", "/a", "-")
    assert (seen[0].name, seen[0].getMessage(), seen[0].levelno) == ("aura.t", "m", logging.INFO)
    outside = logging.getLogger("aura.t").makeRecord("aura.t", logging.INFO, "f", 1, "m", (), None)
    assert not hasattr(outside, "request_id")


def test_paths_are_read_leniently_and_start_with_one_slash():
    seen = []

    def app(env, start_response):
        seen.append(request_context()["path"])
        return []

    for path in ("//Xy", "/caf\xff", "/\u20ac"):  # a stray byte; a code point no WSGI server sends
        handling(app, {"PATH_INFO": path}, None)
    assert seen == ["/Xy", "/caf\ufffd", "/?"]


@pytest.mark.parametrize("padding", ["X", "\f", "\x0b", "\n"])
def test_a_traceparent_with_more_than_blanks_around_it_is_refused(padding):
    from aura.infra.logs import trace_id_of

    assert trace_id_of(TRACEPARENT + padding) is None
    assert trace_id_of(padding + TRACEPARENT) is None
    assert trace_id_of(" \t" + TRACEPARENT + "\t ") == TRACE
