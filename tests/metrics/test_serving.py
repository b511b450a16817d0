"""The metrics-serving code in process: a scrape's body and headers (exposition), the
prometheus_client compatibility guard (_compat) and the Gunicorn hooks (gunicorn), with stand-in
servers and workers - no Gunicorn, no subprocess."""

from __future__ import annotations

import gc
import gzip
import os
from importlib import metadata
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, Counter, Histogram, mmap_dict
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.mmap_dict import mmap_key

from aura.metrics import _compat, exposition, inflight
from aura.metrics import gunicorn as hooks
from aura.metrics.directory import Claim
from aura.metrics.fileformat import parse_key
from aura.metrics.locking import MetricsDirectoryError

# ---------------------------------------------------------------------------- exposition


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZip", True),
        ("  gzip  ", True),
        ("x-gzip", True),
        ("*", True),
        ("br, deflate", False),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0.001", True),
        ("gzip;q=0", False),
        ("gzip; q=0", False),
        ("gzip;Q=0", False),
        ("gzip;q=abc", False),
        ("gzip;q=0=1", False),  # malformed weight: not an acceptance
        ("gzip;level=1;q=0", False),  # the weight is found among other parameters
        ("gzip;q=0.5;level=1", True),
        ("*;q=0", False),
        ("gzip;q=0, *", False),  # an explicit refusal of gzip beats the wildcard
        ("x-gzip;q=0, *", False),
        ("x-gzip, *;q=0", True),
        (", ,gzip", True),  # empty members are skipped
        ("gzip, ;q=0", True),  # an empty coding's weight applies to nothing
    ],
)
def test_accepts_gzip(header, accepted):
    assert exposition.accepts_gzip(header) is accepted


@pytest.fixture
def no_instance(monkeypatch):
    monkeypatch.setattr(exposition, "_instance", None)


class _Families:
    """A collector standing in for the instance's process metrics."""

    def __init__(self, name="aura_test_instance_metric"):
        self.name = name

    def collect(self):
        yield GaugeMetricFamily(self.name, "Stand-in.", value=7)


def _counter_file(directory, identifier="1-1", value=3.0):
    path = directory / f"counter_{identifier}.db"
    d = mmap_dict.MmapedDict(str(path))
    try:
        d.write_value(mmap_key("aura_test_hits", "aura_test_hits_total", [], [], "Hits."), value, 0.0)
    finally:
        d.close()


def test_render_without_a_directory_serves_this_process_registry(no_instance):
    body, headers = exposition.render("", None, None)
    assert headers == {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
        "Cache-Control": "no-store",
        "Vary": "Accept, Accept-Encoding",
    }
    from prometheus_client.exposition import generate_latest

    names = {
        line.split(" ")[2] for line in generate_latest(REGISTRY).decode().splitlines() if line.startswith("# TYPE")
    }
    assert names and names == {line.split(" ")[2] for line in body.decode().splitlines() if line.startswith("# TYPE")}


def test_render_merges_the_directory_and_negotiates_openmetrics(metrics_dir, no_instance):
    _counter_file(metrics_dir, "1-1", 3.0)
    _counter_file(metrics_dir, "2-1", 4.0)
    body, headers = exposition.render(str(metrics_dir), "application/openmetrics-text; version=1.0.0", "")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert "Content-Encoding" not in headers
    text = body.decode()
    assert "aura_test_hits_total 7.0" in text and text.endswith("# EOF\n")
    body, headers = exposition.render(str(metrics_dir), None, None)
    assert headers["Content-Type"].startswith("text/plain")
    assert "aura_test_hits_total 7.0" in body.decode() and "# EOF" not in body.decode()


def test_render_gzips_at_level_one_when_accepted(metrics_dir, no_instance):
    _counter_file(metrics_dir)
    plain, _ = exposition.render(str(metrics_dir), None, None)
    body, headers = exposition.render(str(metrics_dir), None, "gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert gzip.decompress(body) == plain
    assert body[8] == 4  # the gzip header's XFL byte: 4 is "fastest" (level 1)


def test_a_scrape_of_the_instance_directory_adds_the_instance_collectors(metrics_dir, no_instance):
    _counter_file(metrics_dir)
    exposition.serve_instance(Claim(str(metrics_dir), str(metrics_dir), os.getpid()), lambda: [_Families()])
    body, _ = exposition.render(str(metrics_dir), None, None)
    assert "aura_test_instance_metric 7.0" in body.decode()
    assert "aura_test_hits_total 3.0" in body.decode()


def test_a_scrape_of_another_directory_adds_nothing_and_is_not_refused(metrics_dir, tmp_path, no_instance):
    other = tmp_path / "other"
    other.mkdir()
    exposition.serve_instance(Claim(str(other), str(other), os.getpid(), error="full"), lambda: [_Families()])
    _counter_file(metrics_dir)
    body, _ = exposition.render(str(metrics_dir), None, None)
    assert "aura_test_instance_metric" not in body.decode()
    assert "aura_test_hits_total 3.0" in body.decode()


def test_a_scrape_of_a_directory_unusable_at_start_is_refused(metrics_dir, no_instance):
    _counter_file(metrics_dir)
    exposition.serve_instance(
        Claim(str(metrics_dir), str(metrics_dir), os.getpid(), error="No space left on device"), lambda: []
    )
    with pytest.raises(MetricsDirectoryError, match="unusable at start-up: No space left on device"):
        exposition.render(str(metrics_dir), None, None)


# ---------------------------------------------------------------------------- _compat


def test_installed_version_is_the_distributions():
    assert _compat.installed_version() == metadata.version("prometheus-client")


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("0.18.0", (0, 18, 0)),
        ("10.20.30", (10, 20, 30)),
        ("0.26.0rc1", None),
        ("0.26", None),
        ("v0.26.0", None),
        ("0.26.0.1", None),
        ("0.26.0+local", None),
    ],
)
def test_release(version, release):
    assert _compat._release(version) == release


def test_code_names_include_nested_code():
    def outer(x):
        def inner():
            return x.alpha

        return [y.beta for y in x.gamma], inner

    names = _compat._code_names(outer.__code__)
    assert {"alpha", "beta", "gamma"} <= names


def test_a_missing_method_misses_every_name_it_was_to_set(monkeypatch):
    monkeypatch.delattr(Histogram, "_prepare_buckets")
    assert _compat.missing_names() == ["Histogram._upper_bounds"]


def test_a_missing_attribute_is_named(monkeypatch):
    monkeypatch.delattr(mmap_dict.MmapedDict, "read_value")
    assert _compat.missing_names() == ["MmapedDict.read_value"]


def test_private_names_are_the_private_ones_declared():
    assert "read_value" not in _compat.PRIVATE_NAMES  # public: not tracked
    assert {"_INITIAL_MMAP_SIZE", "_init_value", "_m", "_upper_bounds", "_labelnames", "_type"} <= _compat.PRIVATE_NAMES


def test_new_metric_carries_a_gauges_mode_only():
    gauge = _compat.new_metric("g", "A gauge.", "gauge", "livemax")
    assert (gauge.name, gauge.documentation, gauge.type, gauge._multiprocess_mode) == (
        "g",
        "A gauge.",
        "gauge",
        "livemax",
    )
    counter = _compat.new_metric("c", "A counter.", "counter", "livemax")
    assert counter.type == "counter" and not hasattr(counter, "_multiprocess_mode")


def test_stored_values_and_upper_bounds():
    counter = Counter("aura_test_c", "C.", registry=None)
    assert _compat.stored_values(counter) == (counter._value,)
    histogram = Histogram("aura_test_h", "H.", buckets=(0.5, 2.0), registry=None)
    assert _compat.stored_values(histogram) == (histogram._sum, *histogram._buckets)
    assert len(_compat.stored_values(histogram)) == 4
    assert _compat.upper_bounds(histogram) == (0.5, 2.0, float("inf"))


def test_nothing_private_is_touched_when_the_internals_are_not_used(monkeypatch):
    monkeypatch.setattr(_compat, "problem", lambda version=None: "prometheus-client 9.9.9 is not supported")
    counter = Counter("aura_test_c", "C.", ["a"], registry=None)
    histogram = Histogram("aura_test_h", "H.", ["a"], registry=None)
    assert _compat.stored_values(counter.labels("x")) == ()
    assert _compat.upper_bounds(histogram) == ()
    assert _compat.sample_rows(counter, ("x",), 1.0) == []
    assert _compat.sample_rows(histogram, ("x",), 1.0) == []


def test_sample_rows_of_a_counter():
    counter = Counter("aura_test_req", "Requests.", ["method", "status"], registry=None)
    [(typ, (key, amount, ts))] = _compat.sample_rows(counter, ("GET", "502"), 3.5)
    assert (typ, amount, ts) == ("counter", 1.0, 0.0)
    assert key == mmap_key("aura_test_req", "aura_test_req_total", ["method", "status"], ["GET", "502"], "Requests.")


@pytest.mark.parametrize(("value", "bound"), [(0.1, "0.5"), (0.5, "0.5"), (0.7, "2.0"), (2.0, "2.0"), (99.0, "+Inf")])
def test_sample_rows_of_a_histogram(value, bound):
    histogram = Histogram("aura_test_lat", "Latency.", ["method"], buckets=(0.5, 2.0), registry=None)
    rows = _compat.sample_rows(histogram, ("GET",), value)
    assert rows == [
        ("histogram", (mmap_key("aura_test_lat", "aura_test_lat_sum", ["method"], ["GET"], "Latency."), value, 0.0)),
        (
            "histogram",
            (
                mmap_key("aura_test_lat", "aura_test_lat_bucket", ["method", "le"], ["GET", bound], "Latency."),
                1.0,
                0.0,
            ),
        ),
    ]


def test_reserve_creates_the_file_at_full_size_once(tmp_path):
    path = tmp_path / "counter_1-1.db"
    _compat._reserve(str(path), 8192)
    assert path.stat().st_size == 8192
    assert [p.name for p in tmp_path.iterdir()] == ["counter_1-1.db"]  # no temporary left
    path.write_bytes(b"mine")
    _compat._reserve(str(path), 8192)
    assert path.read_bytes() == b"mine"  # an existing file is this process's own: left alone


def test_the_reserving_dict_grows_by_doubling_and_keeps_its_mapping(tmp_path):
    path = tmp_path / "counter_1-1.db"
    d = _compat.ReservingMmapedDict(str(path))
    try:
        assert path.stat().st_size == mmap_dict._INITIAL_MMAP_SIZE
        assert path.stat().st_blocks * 512 >= mmap_dict._INITIAL_MMAP_SIZE  # reserved, not sparse
        assert d.mapping is d._m
        sizes = []
        for i in range(200):
            d.write_value("k" * 1000 + str(i), float(i), 0.0)
            assert d.mapping is d._m
            assert path.stat().st_blocks * 512 >= path.stat().st_size  # each growth reserved before mapped
            sizes.append(path.stat().st_size)
        assert sizes[-1] > mmap_dict._INITIAL_MMAP_SIZE
        assert all(size // mmap_dict._INITIAL_MMAP_SIZE in (1, 2, 4, 8, 16) for size in sizes)
        assert path.stat().st_blocks * 512 >= path.stat().st_size  # reserved, not sparse
        assert d.read_value("k" * 1000 + "199") == (199.0, 0.0)
    finally:
        d.close()


def test_the_reserving_dict_reads_without_reserving(tmp_path):
    path = tmp_path / "counter_1-1.db"
    d = _compat.ReservingMmapedDict(str(path))
    d.write_value("a", 1.0, 0.0)
    d.close()
    size = path.stat().st_size
    _compat.ReservingMmapedDict(str(path), read_mode=True).close()
    assert path.stat().st_size == size and [p.name for p in tmp_path.iterdir()] == ["counter_1-1.db"]
    with pytest.raises(FileNotFoundError):  # a reader creates nothing
        _compat.ReservingMmapedDict(str(tmp_path / "counter_2-1.db"), read_mode=True)
    assert [p.name for p in tmp_path.iterdir()] == ["counter_1-1.db"]


# ---------------------------------------------------------------------------- gunicorn hooks


class _Log:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __getattr__(self, level):
        return lambda message, *args, **kwargs: self.calls.append((level, message % args if args else message))


def _server(workers=None, listeners=()):
    return SimpleNamespace(log=_Log(), WORKERS=workers or {}, LISTENERS=list(listeners))


def _worker(pid=4242, age=3, aborted=False, **extra):
    return SimpleNamespace(pid=pid, age=age, aborted=aborted, **extra)


def _metrics(tmp_path, problem=None, error=None, **kwargs):
    return hooks.GunicornMetrics(Claim(str(tmp_path), str(tmp_path), os.getpid(), error=error), problem, **kwargs)


def _samples(counter):
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in counter.collect()
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_exit_key():
    assert parse_key(hooks._exit_key("crash")) == (
        "gunicorn_worker_exits",
        "gunicorn_worker_exits_total",
        (("reason", "crash"),),
        "Workers that ended, by reason.",
    )


def test_construction(tmp_path):
    metrics = _metrics(tmp_path, problem="old", metrics_port=9100, auth_token="s3cret")
    assert (metrics.problem, metrics.metrics_port, metrics.auth_token) == ("old", 9100, "s3cret")
    assert metrics.master_pid == os.getpid() and metrics.metrics_host == "127.0.0.1"
    assert metrics.listen_fds == [] and metrics.listener is None and metrics.aborted is False
    assert metrics.timed_out == set()
    assert _metrics(tmp_path, metrics_host="0.0.0.0").metrics_host == "0.0.0.0"
    [exits] = metrics.exits.describe()
    assert (exits.name, exits.documentation) == ("gunicorn_worker_exits", "Workers that ended, by reason.")
    [collections] = metrics.gc_collections.describe()
    assert (collections.name, collections.documentation) == (
        "python_gc_collections",
        "Garbage collections by generation, summed over workers.",
    )
    metrics.gc_collections.labels("0").inc()
    metrics.exits.labels("crash").inc()
    assert _samples(metrics.exits) == {(("reason", "crash"),): 1.0}


@pytest.fixture
def start_recorder(monkeypatch):
    calls: dict = {}
    claim = Claim("/root/of/claim", "/root/of/claim/instance-1", 1)

    def claim_directory(root):
        calls["root"] = root
        return claim

    monkeypatch.setattr(hooks, "claim_directory", claim_directory)
    monkeypatch.setattr(hooks, "install_value_class", lambda: "a problem")
    monkeypatch.setattr(hooks, "serve_instance", lambda c, collectors: calls.update(served=(c, collectors)))
    monkeypatch.setattr(hooks, "serve_in_workers", lambda: calls.update(workers=True))
    for name in (hooks.ROOT_VARIABLE, "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.setenv(name, "")  # recorded first, so what start() sets is undone after the test
        monkeypatch.delenv(name)
    return calls, claim


def test_start_claims_the_requested_root_and_points_the_workers_at_it(start_recorder):
    calls, claim = start_recorder
    metrics = hooks.GunicornMetrics.start("/default", 9100, "tok", "10.0.0.1", requested_root="/requested")
    assert calls["root"] == "/requested"
    assert os.environ[hooks.ROOT_VARIABLE] == "/root/of/claim"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == "/root/of/claim/instance-1"
    assert metrics.claim is claim and metrics.problem == "a problem"
    assert (metrics.metrics_port, metrics.auth_token, metrics.metrics_host) == (9100, "tok", "10.0.0.1")
    served_claim, collectors = calls["served"]
    assert served_claim is claim and collectors == metrics.collectors
    assert calls["workers"] is True


def test_start_prefers_the_kept_root_then_the_default(start_recorder, monkeypatch):
    calls, _ = start_recorder
    metrics = hooks.GunicornMetrics.start("/default")
    assert calls["root"] == "/default"
    assert (metrics.metrics_port, metrics.auth_token, metrics.metrics_host) == (0, "", "127.0.0.1")
    monkeypatch.setenv(hooks.ROOT_VARIABLE, "/kept")
    hooks.GunicornMetrics.start("/default", requested_root="/requested")
    assert calls["root"] == "/kept"


def test_collectors_read_the_master_and_its_sockets(tmp_path):
    metrics = _metrics(tmp_path)
    metrics.listen_fds = [5, 6]
    [collector] = metrics.collectors()
    assert isinstance(collector, hooks.InstanceCollector)
    assert collector.master_pid == os.getpid() and collector.listen_fds == [5, 6]


def test_on_starting_says_where_metrics_go(tmp_path):
    server = _server()
    _metrics(tmp_path).on_starting(server)
    assert server.log.calls == [("info", f"prometheus multiprocess directory: {tmp_path}")]
    server = _server()
    _metrics(tmp_path, problem="prometheus-client 9 is odd", error="read-only").on_starting(server)
    assert [level for level, _ in server.log.calls] == ["error", "warning"]
    assert "read-only" in server.log.calls[0][1] and server.log.calls[1][1].startswith("prometheus-client 9 is odd;")


class _Listener:
    started: list = []

    def __init__(self, host, port, render, auth_token):
        self.args = (host, port, render, auth_token)
        self.address = (host, port)
        self.closed = False

    def start(self):
        _Listener.started.append(self)
        return self

    def close_inherited(self):
        self.closed = True


def test_when_ready_starts_the_listener_once(tmp_path, monkeypatch, metrics_dir, no_instance):
    monkeypatch.setattr(hooks, "MetricsListener", _Listener)
    _Listener.started = []
    metrics = hooks.GunicornMetrics(
        Claim(str(metrics_dir), str(metrics_dir), os.getpid()), None, 9100, "tok", "10.1.2.3"
    )
    server = _server(listeners=[SimpleNamespace(fileno=lambda: 11), SimpleNamespace(fileno=lambda: 12)])
    metrics.when_ready(server)
    assert metrics.listen_fds == [11, 12]
    [listener] = _Listener.started
    assert metrics.listener is listener
    host, port, render, token = listener.args
    assert (host, port, token) == ("10.1.2.3", 9100, "tok")
    _counter_file(metrics_dir)
    body, headers = render("application/openmetrics-text", "gzip")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip" and b"aura_test_hits_total 3.0" in gzip.decompress(body)
    assert server.log.calls == [("info", "metrics listener on 10.1.2.3:9100")]
    metrics.when_ready(server)
    assert len(_Listener.started) == 1


def test_when_ready_without_a_port_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "MetricsListener", _Listener)
    _Listener.started = []
    metrics = _metrics(tmp_path)
    server = _server(listeners=[SimpleNamespace(fileno=lambda: 11)])
    metrics.when_ready(server)
    assert metrics.listen_fds == [11] and _Listener.started == [] and metrics.listener is None


def test_a_listener_that_cannot_bind_does_not_stop_the_server(tmp_path, monkeypatch):
    class Busy(_Listener):
        def start(self):
            raise OSError("address in use")

    monkeypatch.setattr(hooks, "MetricsListener", Busy)
    metrics = _metrics(tmp_path, metrics_port=9100)
    server = _server()
    metrics.when_ready(server)
    assert metrics.listener is None
    assert server.log.calls == [("error", "metrics listener not started on 127.0.0.1:9100: address in use")]


@pytest.fixture
def merges(monkeypatch):
    """merge_all_dead stood in for: the calls, and the extra rows of each dead worker given."""
    calls: list = []
    dead: list = []

    def merge_all_dead(directory, live, *, extra_rows):
        calls.append((directory, live))
        return {"merged": [identifier for identifier, *_ in dead], "extra": [extra_rows(*d) for d in dead]}

    monkeypatch.setattr(hooks, "merge_all_dead", merge_all_dead)
    return calls, dead


def test_child_exit_with_the_stock_classes_only_marks_the_worker_dead(tmp_path, monkeypatch, merges):
    marked = []
    monkeypatch.setattr(hooks, "mark_process_dead", lambda pid, path: marked.append((pid, path)))
    server = _server()
    _metrics(tmp_path, problem="old").child_exit(server, _worker(pid=77))
    assert marked == [(77, str(tmp_path))] and merges[0] == [] and server.log.calls == []


def _request_rows(method, endpoint, status, seconds):
    return [("counter", (f"{method} {endpoint} {status}", seconds, 0.0))]


def test_child_exit_merges_every_dead_worker_with_the_live_ones_named(tmp_path, merges):
    calls, dead = merges
    metrics = _metrics(tmp_path)
    running = [inflight.Running("GET", "/a", 1.5), inflight.Running("POST", "/b", 2.0)]
    dead.append(("77-3", [], running))
    server = _server(workers={10: SimpleNamespace(age=1), 11: SimpleNamespace(age=2)})
    metrics.child_exit(server, _worker(pid=77, age=3), _request_rows)
    assert calls == [(str(tmp_path), ["10-1", "11-2"])]
    assert server.log.calls == [
        (
            "debug",
            "metrics merge after worker 77: "
            + str(
                {
                    "merged": ["77-3"],
                    "extra": [
                        [
                            ("counter", ("GET /a 502", 1.5, 0.0)),
                            ("counter", ("POST /b 502", 2.0, 0.0)),
                            ("counter", (hooks._exit_key("crash"), 1.0, 0.0)),
                        ]
                    ],
                }
            ),
        )
    ]


def test_a_worker_the_master_aborted_ends_its_requests_with_504_and_counts_a_timeout(tmp_path, merges):
    _, dead = merges
    metrics = _metrics(tmp_path)
    dead.append(("77-3", [], [inflight.Running("GET", "/slow", 30.0)]))
    dead.append(("78-1", [], []))
    server = _server()
    metrics.child_exit(server, _worker(pid=77, age=3, aborted=True), _request_rows)
    assert metrics.timed_out == set()  # used once, then forgotten
    [(_, message)] = server.log.calls
    assert repr(("counter", ("GET /slow 504", 30.0, 0.0))) in message
    assert repr(("counter", (hooks._exit_key("timeout"), 1.0, 0.0))) in message
    assert repr(("counter", (hooks._exit_key("crash"), 1.0, 0.0))) in message  # 78-1: not aborted


def test_death_rows(tmp_path):
    metrics = _metrics(tmp_path)
    counted = [(hooks._exit_key("max_requests"), 1.0, 0.0)]
    zeroes = [(hooks._exit_key(reason), 0.0, 0.0) for reason in hooks.EXIT_REASONS]
    other = [(mmap_key("aura_x", "aura_x_total", [], [], "X."), 5.0, 0.0)]
    running = [inflight.Running("GET", "/a", 1.0)]
    assert metrics._death_rows("1-1", counted, running, None) == []
    assert metrics._death_rows("1-1", zeroes + other, [], None) == [("counter", (hooks._exit_key("crash"), 1.0, 0.0))]
    metrics.timed_out.add("1-1")
    metrics.timed_out.add("2-1")
    assert metrics._death_rows("1-1", counted, running, _request_rows) == [("counter", ("GET /a 504", 1.0, 0.0))]
    assert metrics.timed_out == {"2-1"}
    assert metrics._death_rows("1-1", [], running, _request_rows) == [
        ("counter", ("GET /a 502", 1.0, 0.0)),
        ("counter", (hooks._exit_key("crash"), 1.0, 0.0)),
    ]


def test_child_exit_stamps_the_dead_workers_inflight_file(tmp_path, monkeypatch, merges):
    stamped = []
    monkeypatch.setattr(inflight, "stamp_ended", lambda path: stamped.append(path))
    _metrics(tmp_path).child_exit(_server(), _worker(pid=77, age=3))
    assert stamped == [os.path.join(str(tmp_path), inflight.file_name("77-3"))]


@pytest.mark.parametrize("error", [FileNotFoundError, ValueError])
def test_a_missing_or_damaged_inflight_file_does_not_stop_the_merge(tmp_path, monkeypatch, merges, error):
    def stamp_ended(path):
        raise error(path)

    monkeypatch.setattr(inflight, "stamp_ended", stamp_ended)
    server = _server()
    _metrics(tmp_path).child_exit(server, _worker(pid=77, age=3))
    assert len(merges[0]) == 1 and [level for level, _ in server.log.calls] == ["debug"]


def test_a_failed_merge_is_logged_and_the_master_goes_on(tmp_path, monkeypatch):
    def merge_all_dead(*args, **kwargs):
        raise OSError("disk")

    monkeypatch.setattr(hooks, "merge_all_dead", merge_all_dead)
    server = _server()
    _metrics(tmp_path).child_exit(server, _worker(pid=77))
    assert server.log.calls == [("exception", "could not merge metrics of worker 77")]


@pytest.fixture
def fork_recorder(monkeypatch):
    calls: dict = {"threads": [], "identifiers": [], "opened": []}

    class Thread:
        def __init__(self, target, name, daemon):
            calls["threads"].append((target, name, daemon))

        def start(self):
            calls["started"] = True

    monkeypatch.setattr(hooks.threading, "Thread", Thread)
    monkeypatch.setattr(hooks, "use_worker_identifier", lambda i, path: calls["identifiers"].append((i, path)))
    monkeypatch.setattr(inflight, "open_for_worker", lambda path, i, slots: calls["opened"].append((path, i, slots)))
    return calls


def test_post_fork_makes_the_worker_count_in_its_own_files(tmp_path, fork_recorder):
    metrics = _metrics(tmp_path)
    listener = _Listener("h", 1, None, "")
    metrics.listener = listener
    worker = _worker(pid=77, age=3, sockets=[SimpleNamespace(fileno=lambda: 9)], cfg=SimpleNamespace(threads=4))
    metrics.post_fork(_server(), worker)
    assert listener.closed and metrics.listener is None
    assert metrics.listen_fds == [9]
    assert fork_recorder["identifiers"] == [("77-3", str(tmp_path))]
    assert fork_recorder["opened"] == [(str(tmp_path), "77-3", 4)]
    assert _samples(metrics.exits) == {(("reason", r),): 0.0 for r in hooks.EXIT_REASONS}
    assert len(metrics._gc_base) == len(gc.get_stats()) and metrics._gc_counted == [0] * len(gc.get_stats())
    [(target, name, daemon)] = fork_recorder["threads"]
    assert target == metrics._gc_loop and name == "aura-gc-sampler" and daemon is True
    assert fork_recorder["started"] is True


def test_post_fork_with_the_stock_classes_only_takes_the_sockets(tmp_path, fork_recorder):
    metrics = _metrics(tmp_path, problem="old")
    metrics.post_fork(_server(), _worker(sockets=[SimpleNamespace(fileno=lambda: 9)]))
    assert metrics.listen_fds == [9]
    assert fork_recorder == {"threads": [], "identifiers": [], "opened": []}
    assert _samples(metrics.exits) == {}


def test_post_fork_in_a_degraded_directory_opens_no_inflight_file(tmp_path, fork_recorder):
    metrics = _metrics(tmp_path, error="full")
    metrics.post_fork(_server(), _worker(sockets=[], cfg=SimpleNamespace(threads=4)))
    assert fork_recorder["opened"] == [] and fork_recorder["identifiers"] == [("4242-3", str(tmp_path))]
    assert fork_recorder["started"] is True


def test_post_fork_survives_an_inflight_file_it_cannot_create(tmp_path, fork_recorder, monkeypatch):
    def open_for_worker(path, identifier, slots):
        raise OSError("full")

    monkeypatch.setattr(inflight, "open_for_worker", open_for_worker)
    metrics = _metrics(tmp_path)
    metrics.post_fork(_server(), _worker(sockets=[], cfg=SimpleNamespace(threads=1)))
    assert fork_recorder["started"] is True
    assert _samples(metrics.exits) == {(("reason", r),): 0.0 for r in hooks.EXIT_REASONS}


def test_post_worker_init_runs_the_worker_start_hooks(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(hooks, "run_worker_start", lambda: ran.append(True))
    _metrics(tmp_path).post_worker_init(_worker())
    assert ran == [True]


def _exit_reason(metrics, worker, exc=None):
    metrics._gc_base = [s["collections"] for s in gc.get_stats()]
    metrics._gc_counted = [0] * len(metrics._gc_base)
    if exc is None:
        metrics.worker_exit(_server(), worker)
    else:
        try:
            raise exc
        except BaseException:  # noqa: BLE001 - the hook reads sys.exc_info()
            metrics.worker_exit(_server(), worker)
    return {labels: value for labels, value in _samples(metrics.exits).items() if value}


def _exiting(nr=0, max_requests=100, pid=None):
    return SimpleNamespace(pid=os.getpid() if pid is None else pid, nr=nr, max_requests=max_requests)


@pytest.mark.parametrize(
    ("worker", "exc", "aborted", "reason"),
    [
        (_exiting(), None, False, "shutdown"),
        (_exiting(), SystemExit(0), False, "shutdown"),
        (_exiting(), SystemExit(None), False, "shutdown"),
        (_exiting(), SystemExit(1), False, "crash"),
        (_exiting(nr=100, max_requests=100), SystemExit(1), False, "crash"),
        (_exiting(nr=100, max_requests=100), None, False, "max_requests"),
        (_exiting(nr=101, max_requests=100), None, False, "max_requests"),
        (_exiting(nr=99, max_requests=100), None, False, "shutdown"),
        (_exiting(), SystemExit(1), True, "timeout"),
        (_exiting(), None, True, "timeout"),
    ],
)
def test_worker_exit_counts_why_the_worker_ends(tmp_path, worker, exc, aborted, reason):
    metrics = _metrics(tmp_path)
    if aborted:
        metrics.worker_abort(worker)
    assert _exit_reason(metrics, worker, exc) == {(("reason", reason),): 1.0}


def test_worker_exit_counts_nothing_in_the_master_or_with_the_stock_classes(tmp_path):
    assert _exit_reason(_metrics(tmp_path), _exiting(pid=os.getpid() + 1)) == {}
    assert _exit_reason(_metrics(tmp_path, problem="old"), _exiting()) == {}


def test_worker_exit_writes_the_collections_since_fork(tmp_path, monkeypatch):
    metrics = _metrics(tmp_path)
    metrics._gc_base = [0, 0, 0]
    metrics._gc_counted = [0, 0, 0]
    monkeypatch.setattr(hooks.gc, "get_stats", lambda: [{"collections": 4}, {"collections": 0}, {"collections": 1}])
    metrics.worker_exit(_server(), _exiting())
    assert _samples(metrics.gc_collections) == {(("generation", "0"),): 4.0, (("generation", "2"),): 1.0}


def test_sync_gc_adds_only_the_new_collections(tmp_path, monkeypatch):
    metrics = _metrics(tmp_path)
    stats = [[12, 20, 30], [15, 20, 31], [15, 22, 31], [15, 22, 31]]
    metrics._gc_base = [10, 20, 30]
    metrics._gc_counted = [0, 0, 0]
    seen = []
    for counts in stats:
        monkeypatch.setattr(hooks.gc, "get_stats", lambda counts=counts: [{"collections": c} for c in counts])
        metrics.sync_gc()
        seen.append(_samples(metrics.gc_collections))
    assert seen == [
        {(("generation", "0"),): 2.0},
        {(("generation", "0"),): 5.0, (("generation", "2"),): 1.0},
        {(("generation", "0"),): 5.0, (("generation", "1"),): 2.0, (("generation", "2"),): 1.0},
        {(("generation", "0"),): 5.0, (("generation", "1"),): 2.0, (("generation", "2"),): 1.0},
    ]
    assert metrics._gc_counted == [5, 2, 1]


def test_the_gc_sampler_samples_every_second_and_survives_a_failed_sample(tmp_path, monkeypatch):
    metrics = _metrics(tmp_path)
    sleeps: list[float] = []
    samples: list[int] = []

    class Stop(Exception):
        pass

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise Stop

    def sync_gc():
        samples.append(len(sleeps))
        if len(samples) == 1:
            raise RuntimeError("one bad sample")

    monkeypatch.setattr(hooks.time, "sleep", sleep)
    monkeypatch.setattr(metrics, "sync_gc", sync_gc)
    with pytest.raises(Stop):
        metrics._gc_loop()
    assert sleeps == [1.0, 1.0, 1.0] and samples == [1, 2]


def test_the_gc_sampler_stops_in_a_forked_child(tmp_path, monkeypatch):
    metrics = _metrics(tmp_path)
    pids = iter([100, 100, 101])
    sleeps: list[float] = []
    monkeypatch.setattr(hooks.os, "getpid", lambda: next(pids))
    monkeypatch.setattr(hooks.time, "sleep", sleeps.append)
    monkeypatch.setattr(metrics, "sync_gc", lambda: None)
    metrics._gc_loop()
    assert sleeps == [1.0]
