"""aura.metrics.exemplars: the latest request per bucket kept per worker, merged newest-first across
workers and the archive, shown in OpenMetrics only."""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

import aura.metrics as multiproc
from aura.metrics import exemplars, values
from aura.metrics.collector import AuraMultiProcessCollector
from aura.metrics.fileformat import ARCHIVE_NAME, DamagedFileError, is_owned_name, is_temp_name

SLOW, FAST, LATER = "a" * 32, "b" * 32, "c" * 32
_EXEMPLAR = re.compile(r' # \{trace_id="([^"]*)"\} (\S+) (\S+)$', re.MULTILINE)


def _recorder(directory, identifier: str, *, counter_exemplars: bool = False):
    """A request recorder of a worker named ``identifier`` (this process takes that identity)."""
    values.set_identifier(identifier, str(directory))
    registry = CollectorRegistry()
    count = Counter("req", "Requests.", ["m"], registry=registry).labels("GET")
    hist = Histogram("req_s", "Durations.", ["m"], buckets=(0.1, 1.0), registry=registry).labels("GET")
    return values.request_recorder(count, hist, counter_exemplars=counter_exemplars)


def _registry(directory) -> CollectorRegistry:
    registry = CollectorRegistry()
    AuraMultiProcessCollector(registry, str(directory), self_metrics=False)
    return registry


def _exemplars(directory) -> dict[str, tuple[str, float]]:
    """Sample line (without value) -> (trace id, exemplar value), from the OpenMetrics exposition."""
    out = {}
    for line in openmetrics_latest(_registry(directory)).decode().splitlines():
        match = _EXEMPLAR.search(line)
        if match:
            out[line.split(" ")[0]] = (match.group(1), float(match.group(2)))
    return out


def test_the_latest_request_of_each_bucket_is_its_exemplar(worker):
    record = _recorder(worker, "4242-1")
    record(0.05, SLOW)
    record(0.5, FAST)
    record(0.07, LATER)  # same bucket as the first: replaces it
    record(5.0)  # no trace id: counted, no exemplar
    assert _exemplars(worker) == {
        'req_s_bucket{le="0.1",m="GET"}': (LATER, 0.07),
        'req_s_bucket{le="1.0",m="GET"}': (FAST, 0.5),
    }
    stored = exemplars.read(str(worker / exemplars.file_name("4242-1")))
    assert sorted(s.trace_id for s in stored.values()) == [FAST, LATER]
    assert all(abs(s.timestamp - time.time()) < 60 for s in stored.values())


def test_counters_carry_one_only_when_asked(worker):
    _recorder(worker, "4242-2")(0.05, SLOW)
    assert 'req_total{m="GET"}' not in _exemplars(worker)
    _recorder(worker, "4242-3", counter_exemplars=True)(0.05, FAST)  # a 5xx series
    assert _exemplars(worker)['req_total{m="GET"}'] == (FAST, 1.0)


def test_an_id_too_long_for_an_exemplar_is_left_out_and_the_request_still_counts(worker):
    record = _recorder(worker, "4242-4")
    record(0.05, "x" * (exemplars.MAX_TRACE_ID + 1))
    assert _exemplars(worker) == {}
    text = text_latest(_registry(worker)).decode()
    assert 'req_s_bucket{le="0.1",m="GET"} 1.0' in text


def test_the_newest_wins_across_workers_and_the_archive(worker):
    _recorder(worker, "4242-5")(0.05, SLOW)
    time.sleep(0.01)
    _recorder(worker, "4242-6")(0.06, LATER)
    assert _exemplars(worker)['req_s_bucket{le="0.1",m="GET"}'] == (LATER, 0.06)
    values.set_identifier("4242-7", str(worker))  # the recorders' files close; both workers "die"
    multiproc.merge_dead_worker(str(worker), "4242-6")  # the newest now lives in the archive only
    assert not (worker / exemplars.file_name("4242-6")).exists()
    archive = json.loads((worker / ARCHIVE_NAME).read_text())
    assert [row[:3] for row in archive["exemplars"]] == [[row[0], LATER, 0.06] for row in archive["exemplars"]]
    assert _exemplars(worker)['req_s_bucket{le="0.1",m="GET"}'] == (LATER, 0.06)  # beats the older live one
    multiproc.merge_dead_worker(str(worker), "4242-5")  # an older exemplar folded later loses too
    assert _exemplars(worker)['req_s_bucket{le="0.1",m="GET"}'] == (LATER, 0.06)
    time.sleep(0.01)
    _recorder(worker, "4242-8")(0.01, FAST)  # a live worker's newer request beats the archive's
    assert _exemplars(worker)['req_s_bucket{le="0.1",m="GET"}'] == (FAST, 0.01)


def test_an_archive_without_exemplars_keeps_its_bytes():
    archive = multiproc.archive.Archive()
    assert b"exemplars" not in archive.to_bytes()
    archive.exemplars["k"] = exemplars.Stored(SLOW, 0.5, 1.0)
    assert multiproc.archive.Archive.from_bytes(archive.to_bytes()).exemplars == archive.exemplars


def test_the_text_format_is_unchanged_and_openmetrics_differs_only_by_exemplars(worker):
    record = _recorder(worker, "4242-9", counter_exemplars=True)
    for seconds, trace in ((0.05, SLOW), (0.5, FAST), (3.0, LATER)):
        record(seconds, trace)
    with_text, with_om = text_latest(_registry(worker)), openmetrics_latest(_registry(worker)).decode()
    values.set_identifier("4242-10", str(worker))  # closes the file, which the test then removes
    (worker / exemplars.file_name("4242-9")).unlink()
    assert text_latest(_registry(worker)) == with_text
    without_om = openmetrics_latest(_registry(worker)).decode()
    assert _EXEMPLAR.search(with_om) and not _EXEMPLAR.search(without_om)
    assert "\n".join(_EXEMPLAR.sub("", line) for line in with_om.splitlines()) == without_om.rstrip("\n")


def test_a_record_read_while_written_is_skipped_and_a_bad_file_is_damage(worker, caplog):
    record = _recorder(worker, "4242-11")
    record(0.05, SLOW)
    record(0.5, FAST)
    path = worker / exemplars.file_name("4242-11")
    data = bytearray(path.read_bytes())
    data[data.index(SLOW.encode()) + 3] ^= 1  # a torn record: its checksum does not match
    assert sorted(s.trace_id for s in exemplars.parse(bytes(data)).values()) == [FAST]
    with pytest.raises(DamagedFileError):
        exemplars.parse(b"NOTEXEMP" + bytes(8))
    values.set_identifier("4242-12", str(worker))
    path.write_bytes(b"NOTEXEMP" + bytes(64))
    caplog.set_level(logging.WARNING)
    assert _exemplars(worker) == {}  # skipped, and the values are still served
    assert 'req_s_bucket{le="1.0",m="GET"} 2.0' in text_latest(_registry(worker)).decode()
    assert "skipping damaged metrics file" in caplog.text


def test_a_file_grows_past_its_first_size_and_reopens(tmp_path):
    path = str(tmp_path / exemplars.file_name("1-1"))
    file = exemplars.ExemplarFile(path)
    keys = [json.dumps(["m", "m_bucket", {"le": str(i), "x": "y" * 40}, "h"]) for i in range(2000)]
    for i, key in enumerate(keys):
        file.write(file.position(key), f"{i:032x}".encode(), i / 10, 1000.0 + i)
    file.close()
    assert (tmp_path / exemplars.file_name("1-1")).stat().st_size > exemplars.INITIAL_SIZE
    reopened = exemplars.ExemplarFile(path)
    assert reopened.position(keys[7]) == file.position(keys[7])  # found again, not added
    reopened.write(reopened.position(keys[7]), b"77", 0.7, 5000.0)
    reopened.close()
    stored = exemplars.read(path)
    assert len(stored) == 2000 and stored[keys[7]] == exemplars.Stored("77", 0.7, 5000.0)
    assert stored[keys[1999]] == exemplars.Stored(f"{1999:032x}", 199.9, 2999.0)


def test_a_worker_that_cannot_keep_exemplars_still_counts_and_tries_again(worker, caplog, monkeypatch):
    monkeypatch.setattr(values, "RETRY_SECONDS", 0.0)  # try again at the next request
    blocker = worker / exemplars.file_name("4242-13")
    blocker.mkdir()  # the file cannot be created
    record = _recorder(worker, "4242-13")
    caplog.set_level(logging.WARNING, logger="aura.metrics")
    record(0.05, SLOW)
    record(0.06, FAST)
    assert caplog.text.count("exemplars are degraded") == 1  # said once, not per request
    assert "metrics are degraded" not in caplog.text  # the values' own warning stays free for them
    assert 'req_s_count{m="GET"} 2.0' in text_latest(_registry(worker)).decode()
    blocker.rmdir()
    record(0.07, LATER)
    assert "exemplars recovered" in caplog.text
    assert _exemplars(worker) == {'req_s_bucket{le="0.1",m="GET"}': (LATER, 0.07)}


def test_positions_kept_by_recorders_survive_the_file_growing(worker):
    values.set_identifier("4242-14", str(worker))
    registry = CollectorRegistry()
    count = Counter("grow", "Requests.", ["route"], registry=registry)
    hist = Histogram("grow_s", "Durations.", ["route"], buckets=(0.1, 1.0), registry=registry)
    first = values.request_recorder(count.labels("/first"), hist.labels("/first"))
    first(0.05, SLOW)  # its record's position is now kept by the recorder
    for n in range(400):  # other series: the file grows past its first size, remapped
        values.request_recorder(count.labels(f"/r{n}"), hist.labels(f"/r{n}"))(0.05, FAST)
    path = worker / exemplars.file_name("4242-14")
    assert path.stat().st_size > exemplars.INITIAL_SIZE
    first(0.06, LATER)
    found = _exemplars(worker)
    assert found['grow_s_bucket{le="0.1",route="/first"}'] == (LATER, 0.06)
    assert found['grow_s_bucket{le="0.1",route="/r399"}'] == (FAST, 0.05)
    assert len(found) == 401


def test_two_keys_of_one_sample_the_newest_wins():
    """A reload that changes a metric's help text leaves two keys for one sample."""
    old_key = json.dumps(["m", "m_bucket", {"le": "0.1"}, "zzz old help"], sort_keys=True)
    new_key = json.dumps(["m", "m_bucket", {"le": "0.1"}, "new help"], sort_keys=True)
    metric = multiproc.collector._compat.new_metric("m", "new help", "histogram", "")
    metric.add_sample("m_bucket", {"le": "0.1"}, 1.0)
    for kept in (
        {new_key: exemplars.Stored(LATER, 0.05, 2.0), old_key: exemplars.Stored(SLOW, 0.05, 1.0)},
        {old_key: exemplars.Stored(SLOW, 0.05, 1.0), new_key: exemplars.Stored(LATER, 0.05, 2.0)},
    ):
        [attached] = exemplars.attach([metric], kept)
        assert attached.samples[0].exemplar.labels == {"trace_id": LATER}
    tie = {new_key: exemplars.Stored(LATER, 0.05, 2.0), old_key: exemplars.Stored(SLOW, 0.05, 2.0)}
    [attached] = exemplars.attach([metric], tie)
    assert attached.samples[0].exemplar.labels == {"trace_id": LATER}  # a tie: the first met stays, as in newest()


def test_an_archive_from_before_exemplars_loads_merges_and_keeps_its_form(worker):
    old = (
        b'{"format":"aura-metrics-archive","version":1,"absorbed":["1-1"],"stats":{"merges":1,'
        b'"merged_files":1,"damaged_files":0,"merge_duration":{"buckets":[["0.001",1],["0.0025",0],'
        b'["0.005",0],["0.01",0],["0.025",0],["0.05",0],["0.1",0],["0.25",0],["0.5",0],["1.0",0],'
        b'["2.5",0],["5.0",0],["+Inf",0]],"sum":0.0005}},"groups":[{"type":"counter","mode":"","id":"",'
        b'"values":[["[\\"req\\", \\"req_total\\", {\\"m\\": \\"GET\\"}, \\"Requests.\\"]",5.0,0.0]]}]}'
    )
    assert multiproc.archive.Archive.from_bytes(old).to_bytes() == old  # read and written unchanged
    (worker / ARCHIVE_NAME).write_bytes(old)
    _recorder(worker, "4242-15")(0.05, SLOW)
    values.set_identifier("4242-16", str(worker))
    multiproc.merge_dead_worker(str(worker), "4242-15")
    merged = json.loads((worker / ARCHIVE_NAME).read_text())
    assert [row[1] for row in merged["exemplars"]] == [SLOW]
    assert 'req_total{m="GET"} 6.0' in text_latest(_registry(worker)).decode()  # 5 archived + 1


def test_exemplar_files_are_the_packages_own():
    assert is_owned_name(exemplars.file_name("4242-1"))
    assert not is_owned_name(".aura-exemplars.")


# --------------------------------------------------------------------------- the file format


def _trace(i: int) -> bytes:
    """Trace ids of 1 to 64 bytes (the bounds included), one letter each."""
    return bytes([97 + i % 26]) * (1, 64, 2, 63, 8, 33)[i % 6]


def test_records_round_trip_for_keys_of_every_length_and_trace_ids_of_1_to_64_bytes(tmp_path):
    path = str(tmp_path / exemplars.file_name("1-1"))
    file = exemplars.ExemplarFile(path)
    keys = ["k" * n for n in range(1, 20)] + ["é" * 3]
    for i, key in enumerate(keys):
        file.write(file.position(key), _trace(i), i + 0.5, 1000.0 + i)
    file.position("never written")  # an entry without a record yet: not an exemplar
    file.close()
    expected = {key: exemplars.Stored(_trace(i).decode(), i + 0.5, 1000.0 + i) for i, key in enumerate(keys)}
    assert exemplars.read(path) == expected
    reopened = exemplars.ExemplarFile(path)  # a worker's own file, reopened: every entry found again
    assert [reopened.position(key) for key in keys] == [file.position(key) for key in keys]
    reopened.close()
    assert exemplars.read(path) == expected


def test_a_new_file_is_its_header_and_room(tmp_path):
    path = tmp_path / exemplars.file_name("1-1")
    exemplars.ExemplarFile(str(path)).close()
    data = path.read_bytes()
    assert len(data) == exemplars.INITIAL_SIZE
    assert data[:16] == exemplars.MAGIC + struct.pack("=II", 16, 0) and data[16:] == bytes(len(data) - 16)
    assert exemplars.parse(data[:16]) == {} and exemplars.read(str(path)) == {}


def test_a_damaged_file_is_not_reopened_for_writing(tmp_path):
    path = tmp_path / exemplars.file_name("1-1")
    path.write_bytes(b"NOTEXEMP" + bytes(64))
    with pytest.raises(DamagedFileError, match="^not an exemplar file$"):
        exemplars.ExemplarFile(str(path))
    assert path.read_bytes() == b"NOTEXEMP" + bytes(64)  # left for the merge to count and discard


def test_the_file_doubles_only_when_an_entry_does_not_fit(tmp_path):
    path = tmp_path / exemplars.file_name("1-1")
    file = exemplars.ExemplarFile(str(path))
    keys = [f"{i:012d}" for i in range(630)]  # 630 entries of 104 bytes fill 65,536 after the header
    for i, key in enumerate(keys):
        file.write(file.position(key), b"t", float(i), 1.0)
    assert path.stat().st_size == exemplars.INITIAL_SIZE
    big = "x" * 65444  # an entry of 65,536 bytes: the file must be exactly twice as large
    file.write(file.position(big), b"u", 9.0, 2.0)
    assert path.stat().st_size == 2 * exemplars.INITIAL_SIZE
    file.write(file.position(keys[0]), b"v", 3.0, 4.0)  # a record written before the growth, again
    file.close()
    stored = exemplars.read(str(path))
    assert len(stored) == 631 and stored[big] == exemplars.Stored("u", 9.0, 2.0)
    assert stored[keys[0]] == exemplars.Stored("v", 3.0, 4.0) and stored[keys[629]] == exemplars.Stored("t", 629.0, 1.0)


def test_the_file_never_grows_past_its_bound_and_stays_usable(tmp_path, monkeypatch):
    monkeypatch.setattr(exemplars, "MAX_SIZE", 2 * exemplars.INITIAL_SIZE)
    path = tmp_path / exemplars.file_name("1-1")
    file = exemplars.ExemplarFile(str(path))
    file.write(file.position("a" * 12), b"a", 1.0, 1.0)  # 16 + 104 bytes used
    up_to_the_bound = "x" * 130860  # an entry of 130,952 bytes: the file grows to the bound exactly
    file.write(file.position(up_to_the_bound), b"x", 2.0, 2.0)
    assert path.stat().st_size == exemplars.MAX_SIZE
    for _ in range(2):
        with pytest.raises(OSError, match="^the exemplar file would grow past 131072 bytes$"):
            file.position("one more")
    assert path.stat().st_size == exemplars.MAX_SIZE
    file.write(file.position("a" * 12), b"b", 3.0, 3.0)  # what was there is still written
    file.close()
    assert exemplars.read(str(path)) == {
        "a" * 12: exemplars.Stored("b", 3.0, 3.0),
        up_to_the_bound: exemplars.Stored("x", 2.0, 2.0),
    }
    with open(path, "r+b") as f:
        f.truncate(exemplars.MAX_SIZE + 1)  # sparse: nothing is read
    with pytest.raises(DamagedFileError, match="^an exemplar file over 131072 bytes$"):
        exemplars.read(str(path))


def test_records_that_are_not_exemplars_are_skipped(tmp_path):
    path = str(tmp_path / exemplars.file_name("1-1"))
    file = exemplars.ExemplarFile(path)
    file.write(file.position("one byte"), b"a", 1.0, 1.0)
    file.write(file.position("too long"), b"x" * 65, 1.0, 1.0)  # a length over 64, checksum right
    file.write(file.position("not ascii"), "é".encode(), 1.0, 1.0)
    file.write(file.position("empty"), b"", 1.0, 1.0)
    file.close()
    assert exemplars.read(path) == {"one byte": exemplars.Stored("a", 1.0, 1.0)}


def _file(used: int, body: bytes) -> bytes:
    return exemplars.MAGIC + struct.pack("=II", used, 0) + body


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (exemplars.MAGIC + bytes(7), "15 bytes, shorter than the exemplar header"),
        (_file(8, bytes(200)), "not an exemplar file"),  # used below the header
        (_file(15, bytes(200)), "not an exemplar file"),
        (_file(217, bytes(200)), "not an exemplar file"),  # used past the end
        (b"AURAEXM2" + struct.pack("=II", 16, 0), "not an exemplar file"),
        (_file(18, bytes(200)), "exemplar entry at 16 runs past the used size 18"),
        (_file(18, bytes(2)), "exemplar entry at 16 runs past the used size 18"),  # ends inside a key length
        (_file(20, bytes(200)), "exemplar entry at 16 runs past the used size 20"),
        (_file(112, bytes(200)), "exemplar entry at 16 runs past the used size 112"),  # a key of length 0
        (_file(111, struct.pack("=I", 1) + b"k" + bytes(200)), "exemplar entry at 16 runs past the used size 111"),
        (_file(120, struct.pack("=I", 1) + b"\xff" + bytes(200)), "exemplar key at 16 is not UTF-8"),
    ],
)
def test_parse_refuses_a_damaged_layout(data, message):
    with pytest.raises(DamagedFileError, match=f"^{message}$"):
        exemplars.parse(data)


def test_a_file_that_ends_at_its_used_size_is_whole(tmp_path):
    path = tmp_path / exemplars.file_name("1-1")
    file = exemplars.ExemplarFile(str(path))
    file.write(file.position("k"), b"t", 1.0, 2.0)
    file.close()
    used = 16 + 8 + 88
    assert exemplars.parse(path.read_bytes()[:used]) == {"k": exemplars.Stored("t", 1.0, 2.0)}


def test_newest_keeps_the_latest_per_key_and_on_a_tie_the_one_already_there():
    into = {"a": exemplars.Stored("old", 1.0, 10.0), "b": exemplars.Stored("b", 1.0, 10.0)}
    more = [
        ("a", exemplars.Stored("new", 2.0, 11.0)),
        ("b", exemplars.Stored("older", 2.0, 9.0)),
        ("b", exemplars.Stored("tie", 3.0, 10.0)),
        ("c", exemplars.Stored("c", 0.5, 1.0)),
    ]
    exemplars.newest(into, more)
    assert into == {
        "a": exemplars.Stored("new", 2.0, 11.0),
        "b": exemplars.Stored("b", 1.0, 10.0),
        "c": exemplars.Stored("c", 0.5, 1.0),
    }


def _key(metric, sample, labels) -> str:
    return json.dumps([metric, sample, labels, "Help."])


def test_attach_puts_each_exemplar_on_its_bucket_or_counter_sample_and_nowhere_else():
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Exemplar

    hist = Metric("h", "Help.", "histogram")
    for le in ("0.1", "+Inf"):
        hist.add_sample("h_bucket", {"route": "/a", "le": le}, 1.0)  # labels not in sorted order
    hist.add_sample("h_sum", {"route": "/a"}, 0.5)
    counter = Metric("c", "Help.", "counter")
    counter.add_sample("c_total", {"m": "GET"}, 3.0)
    counter.add_sample("c_created", {"m": "GET"}, 1.0)
    other = Metric("o", "Help.", "histogram")  # no exemplar of its own
    other.add_sample("o_bucket", {"le": "+Inf"}, 1.0)
    gauge = Metric("g", "Help.", "gauge")
    gauge.add_sample("g_total", {}, 1.0)
    kept = {
        "not a key": exemplars.Stored("bad", 1.0, 1.0),  # damaged: attached nowhere, the rest still is
        _key("h", "h_bucket", {"le": "0.1", "route": "/a"}): exemplars.Stored("t1", 0.05, 100.0),
        _key("h", "h_sum", {"route": "/a"}): exemplars.Stored("t2", 0.5, 100.0),
        _key("c", "c_total", {"m": "GET"}): exemplars.Stored("t3", 1.0, 101.0),
        _key("c", "c_created", {"m": "GET"}): exemplars.Stored("t4", 1.0, 101.0),
        _key("g", "g_total", {}): exemplars.Stored("t5", 1.0, 101.0),
    }
    out = list(exemplars.attach([hist, counter, other, gauge], kept))
    assert out == [hist, counter, other, gauge]
    assert [s.exemplar for s in hist.samples] == [Exemplar({"trace_id": "t1"}, 0.05, 100.0), None, None]
    assert [s.exemplar for s in counter.samples] == [Exemplar({"trace_id": "t3"}, 1.0, 101.0), None]
    assert [s.exemplar for s in other.samples] == [None] and [s.exemplar for s in gauge.samples] == [None]


def test_attach_without_exemplars_passes_the_families_through():
    from prometheus_client.metrics_core import Metric

    hist = Metric("h", "Help.", "histogram")
    hist.add_sample("h_bucket", {"le": "+Inf"}, 1.0)
    samples = hist.samples
    assert list(exemplars.attach([hist], {})) == [hist] and hist.samples is samples


def test_the_parsed_key_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(exemplars, "_parsed", {})
    monkeypatch.setattr(exemplars, "_PARSED_MAX", 3)
    kept = {_key("h", "h_bucket", {"le": str(i)}): exemplars.Stored("t", 1.0, 1.0) for i in range(4)}
    list(exemplars.attach([], kept))
    assert 0 < len(exemplars._parsed) <= 3


def test_a_new_file_is_written_under_a_temporary_name_the_package_owns(tmp_path, monkeypatch):
    seen = []
    extend = exemplars.extend

    def listing(fd, size):
        seen.extend(os.listdir(tmp_path))  # what a crash at this point would leave
        extend(fd, size)

    monkeypatch.setattr(exemplars, "extend", listing)
    exemplars.ExemplarFile(str(tmp_path / exemplars.file_name("1-1"))).close()
    [temporary] = seen
    assert is_temp_name(temporary) and is_owned_name(temporary)  # deleted at the next start
    assert os.listdir(tmp_path) == [exemplars.file_name("1-1")]
