"""aura.metrics.exemplars: the latest request per bucket kept per worker, merged newest-first across
workers and the archive, shown in OpenMetrics only."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

import aura.metrics as multiproc
from aura.metrics import exemplars, values
from aura.metrics.collector import AuraMultiProcessCollector
from aura.metrics.fileformat import ARCHIVE_NAME, DamagedFileError, is_owned_name

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
