"""aura.metrics.fileformat: the names of a metrics directory, the value-file layout, its damage errors."""

from __future__ import annotations

import errno
import json
import os
import struct

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from aura.metrics import fileformat as ff
from aura.metrics.fileformat import DamagedFileError


def _entry(key: bytes, value: float, timestamp: float) -> bytes:
    """One value-file entry as prometheus_client writes it: length, key padded to 8, two doubles."""
    return struct.pack("i", len(key)) + key + b" " * (8 - (len(key) + 4) % 8) + struct.pack("dd", value, timestamp)


def _value_file(path, entries: bytes, *, used: int | None = None, size: int | None = None) -> str:
    """A value file: the used size (default: header and entries), 4 bytes of padding, the entries."""
    data = struct.pack("i", 8 + len(entries) if used is None else used) + bytes(4) + entries
    path.write_bytes(data.ljust(len(data) if size is None else size, b"\0"))
    return str(path)


# --------------------------------------------------------------------------- names


def test_worker_identifiers_are_plain_file_name_parts():
    for good in ("1", "12-3", "a.b-C9", "x" * 128):
        ff.check_identifier(good)  # no error
    for bad in ("", "_1", "1_2", "-1", ".1", "1/2", "x" * 129, "é", "1-1\n", "1\n-1"):
        with pytest.raises(ValueError, match=r"invalid worker identifier .*use \[A-Za-z0-9\.-\], no '_'"):
            ff.check_identifier(bad)
    with pytest.raises(ValueError, match="invalid worker identifier 12"):
        ff.check_identifier(12)  # type: ignore[arg-type]


def test_value_file_names_are_prometheus_clients():
    assert ff.value_file_name("counter", "", "12-3") == "counter_12-3.db"
    assert ff.value_file_name("histogram", "ignored", "12-3") == "histogram_12-3.db"
    assert ff.value_file_name("gauge", "livesum", "12-3") == "gauge_livesum_12-3.db"


def test_value_file_names_parse_back_and_nothing_else_does():
    for typ, mode in [("counter", ""), ("histogram", ""), ("summary", "")] + [("gauge", m) for m in ff.GAUGE_MODES]:
        assert ff.parse_db_name(ff.value_file_name(typ, mode, "12-3")) == (typ, mode, "12-3")
    assert ff.parse_db_name("counter_7.db") == ("counter", "", "7")
    for other in (
        "counter_12-3.txt",  # not .db
        "counter_12-3.dbx",
        "counter_12-3",
        ".counter_12-3.db",  # hidden
        "counter_.db",  # no identifier
        "counter.db",
        "foo_12-3.db",  # no such type
        "gauge_12-3.db",  # a gauge without its mode
        "gauge_all.db",
        "gauge_bogus_12-3.db",  # no such mode
        "gauge_livesum_.db",
        "counter_all_12-3.db",  # only gauges have a mode
        "counter_12_3.db",  # an identifier with '_' (stock would split it)
        "gauge_all_1_2.db",
    ):
        assert ff.parse_db_name(other) is None, other


def test_in_flight_and_exemplar_names_give_their_worker():
    assert ff.parse_inflight_name(".aura-inflight.12-3") == "12-3"
    assert ff.parse_exemplars_name(".aura-exemplars.12-3") == "12-3"
    for name in (
        ".aura-inflight.",
        ".aura-inflight._1",
        ".aura-exemplars.12-3",
        "counter_12-3.db",
        ".aura-inflight.1\n",
    ):
        assert ff.parse_inflight_name(name) is None, name
    for name in (
        ".aura-exemplars.",
        ".aura-exemplars.-1",
        ".aura-inflight.12-3",
        "x.aura-exemplars.1",
        ".aura-exemplars.1\n",
    ):
        assert ff.parse_exemplars_name(name) is None, name


def test_temporary_names():
    for name in (".aura-archive.abc.tmp", ".aura-probe.x.tmp", ".aura-value.1.tmp"):
        assert ff.is_temp_name(name) is True
    for name in (
        ".aura-archive.abc",
        ".aura-archive..tmp",
        "aura-value.1.tmp",
        ".aura-other.1.tmp",
        ".aura-value.1.tmp\n",
    ):
        assert ff.is_temp_name(name) is False


def test_owned_names_are_every_kind_the_package_writes_and_only_those():
    owned = [
        "counter_1-1.db",
        "gauge_livesum_1-1.db",
        *sorted(ff.FIXED_NAMES),
        ".aura-archive.x.tmp",
        ".aura-labels.client_id",
        ".aura-inflight.1-1",
        ".aura-exemplars.1-1",
    ]
    for name in owned:
        assert ff.is_owned_name(name) is True, name
    for name in (
        "notes.txt",
        "counter_1-1.db.bak",
        ".aura-labels.",
        ".aura-inflight.",
        "instance-1",
        "x.db",
        ".aura-labels.x\n",
    ):
        assert ff.is_owned_name(name) is False, name


# --------------------------------------------------------------------------- the value-file layout


def test_entry_size_is_what_prometheus_client_takes_per_entry(tmp_path):
    path = str(tmp_path / "counter_1.db")
    d = MmapedDict(path)
    try:
        keys = ["a", "ab", "abc", "abcd", "abcde", "x" * 8, "x" * 11, "x" * 12, "ééé", mmap_key("m", "m", [], [], "h")]
        for key in keys:
            before = d._used
            d.write_value(key, 1.0, 0.0)
            assert ff.entry_size(key) == d._used - before, key
    finally:
        d.close()


def test_read_db_file_reads_what_prometheus_client_writes(tmp_path):
    path = str(tmp_path / "counter_1.db")
    keys = ["k" * n for n in range(1, 18)] + ["é", mmap_key("m", "m_total", ["a"], ["b"], "Help.")]
    d = MmapedDict(path)
    try:
        for i, key in enumerate(keys):
            d.write_value(key, i + 0.5, 1000.0 + i)
    finally:
        d.close()
    assert ff.read_db_file(path) == [(key, i + 0.5, 1000.0 + i) for i, key in enumerate(keys)]


def test_read_db_file_reads_past_its_first_block(tmp_path):
    keys = [f"key-{i:04d}" for i in range(300)]  # 300 entries of 32 bytes: well past the first 4096
    entries = b"".join(_entry(k.encode(), float(i), 0.0) for i, k in enumerate(keys))
    assert len(entries) > 4096
    exact = _value_file(tmp_path / "exact.db", entries)  # the file ends where its used size does
    assert os.path.getsize(exact) == 8 + len(entries)
    assert ff.read_db_file(exact) == [(k, float(i), 0.0) for i, k in enumerate(keys)]
    longer = _value_file(tmp_path / "longer.db", entries, size=1 << 16)  # mapped files are longer
    assert ff.read_db_file(longer) == ff.read_db_file(exact)


def test_read_db_file_empty_and_uninitialised_files(tmp_path):
    assert ff.read_db_file(_value_file(tmp_path / "a.db", b"")) == []  # used = 8: the header only
    assert ff.read_db_file(_value_file(tmp_path / "b.db", b"", used=0)) == []  # just created, not initialised
    assert ff.read_db_file(_value_file(tmp_path / "c.db", _entry(b"k", 1.0, 0.0), used=0)) == []
    (tmp_path / "d.db").write_bytes(bytes(8))
    assert ff.read_db_file(str(tmp_path / "d.db")) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "0 bytes, shorter than the 8-byte header"),
        (bytes(7), "7 bytes, shorter than the 8-byte header"),
        (struct.pack("i", 4) + bytes(4), "invalid used-size 4 in header"),
        (struct.pack("i", 7) + bytes(100), "invalid used-size 7 in header"),
        (struct.pack("i", -8) + bytes(100), "invalid used-size -8 in header"),
        (struct.pack("i", 5000) + bytes(4092), "header says 5000 bytes used but file has 4096"),
        (struct.pack("i", 5000) + bytes(4996 - 1), "header says 5000 bytes used but file has 4999"),
        (struct.pack("i", 10) + bytes(100), "entry header at 8 runs past used-size 10"),
        (struct.pack("i", 11) + bytes(100), "entry header at 8 runs past used-size 11"),
        (struct.pack("i", 12) + bytes(100), "invalid key length 0 at 8"),
        (struct.pack("i", 32) + bytes(4) + struct.pack("i", 0) + bytes(100), "invalid key length 0 at 8"),
        (struct.pack("i", 32) + bytes(4) + struct.pack("i", -3) + bytes(100), "invalid key length -3 at 8"),
    ],
)
def test_read_db_file_refuses_damaged_headers(tmp_path, data, message):
    path = tmp_path / "counter_1.db"
    path.write_bytes(data)
    with pytest.raises(DamagedFileError, match=f"^{message}$"):
        ff.read_db_file(str(path))


def test_read_db_file_refuses_entries_that_run_past_the_used_size(tmp_path):
    good = _entry(b"abc", 1.0, 0.0)  # 24 bytes
    assert ff.read_db_file(_value_file(tmp_path / "ok.db", good)) == [("abc", 1.0, 0.0)]
    for cut in (1, 8, 16):
        path = _value_file(tmp_path / f"cut{cut}.db", good + good, used=8 + 48 - cut, size=200)
        with pytest.raises(DamagedFileError, match="^entry at 32 runs past used-size "):
            ff.read_db_file(path)
    long_key = struct.pack("i", 500) + bytes(100)  # a key length beyond the used size
    with pytest.raises(DamagedFileError, match="^entry at 8 runs past used-size 112$"):
        ff.read_db_file(_value_file(tmp_path / "long.db", long_key))


def test_read_db_file_refuses_a_key_that_is_not_utf8(tmp_path):
    path = _value_file(tmp_path / "bad.db", _entry(b"ok", 1.0, 0.0) + _entry(b"\xff\xfe", 1.0, 0.0))
    with pytest.raises(DamagedFileError, match="^key at 36 is not UTF-8$"):
        ff.read_db_file(path)


def test_parse_key_gives_sorted_labels_and_refuses_anything_else():
    key = json.dumps(["m", "m_total", {"z": "1", "a": "2"}, "Help."])
    assert ff.parse_key(key) == ("m", "m_total", (("a", "2"), ("z", "1")), "Help.")
    assert ff.parse_key(mmap_key("m", "m", [], [], "")) == ("m", "m", (), "")
    for bad in ("", "not json", "5", "null", json.dumps(["m", "m", {}]), json.dumps(["m", "m", {}, "h", "x"])):
        with pytest.raises(DamagedFileError, match="^unparseable key "):
            ff.parse_key(bad)
    for bad in (
        [1, "m", {}, "h"],
        ["m", 1, {}, "h"],
        ["m", "m", {}, 1],
        ["m", "m", [], "h"],
        ["m", "m", ["a"], "h"],
        ["m", "m", {"a": 1}, "h"],
        ["m", "m", {"a": "1", "b": None}, "h"],
    ):
        with pytest.raises(DamagedFileError, match="^malformed key "):
            ff.parse_key(json.dumps(bad))


def test_damaged_key_messages_quote_at_most_80_characters():
    long = "x" * 200
    with pytest.raises(DamagedFileError) as unparseable:
        ff.parse_key(long)
    assert str(unparseable.value) == f"unparseable key {'x' * 80!r}"
    malformed = json.dumps(["m" * 100, 1, {}, "h"])
    with pytest.raises(DamagedFileError) as caught:
        ff.parse_key(malformed)
    assert str(caught.value) == f"malformed key {malformed[:80]!r}"


# --------------------------------------------------------------------------- files


def _skip_unless_blocks_can_be_reserved(directory) -> None:
    fd = os.open(directory / "probe", os.O_RDWR | os.O_CREAT)
    try:
        os.posix_fallocate(fd, 0, 1)
    except OSError as e:
        pytest.skip(f"this filesystem reserves no blocks ({e})")
    finally:
        os.close(fd)
        os.unlink(directory / "probe")


def test_extend_reserves_the_blocks_and_never_shrinks(tmp_path):
    _skip_unless_blocks_can_be_reserved(tmp_path)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        ff.extend(fd, 4096)
        assert os.fstat(fd).st_size == 4096
        assert os.fstat(fd).st_blocks * 512 >= 4096  # reserved, not sparse
        ff.extend(fd, 100)
        assert os.fstat(fd).st_size == 4096
    finally:
        os.close(fd)


def test_extend_falls_back_to_a_sparse_file_where_blocks_cannot_be_reserved(tmp_path, monkeypatch):
    for code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        calls = []

        def cannot(fd, offset, size, code=code, calls=calls):
            calls.append((offset, size))
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "posix_fallocate", cannot)
        path = tmp_path / f"f{code}"
        path.write_bytes(bytes(10))
        fd = os.open(path, os.O_RDWR)
        try:
            ff.allocate(fd, 3000)  # no room reserved, and no error
            assert os.fstat(fd).st_size == 10
            ff.extend(fd, 3000)
            assert os.fstat(fd).st_size == 3000
            ff.extend(fd, 50)  # never shrinks
            assert os.fstat(fd).st_size == 3000
        finally:
            os.close(fd)
        assert calls == [(0, 3000), (0, 3000), (0, 50)]


def test_allocate_reports_a_full_filesystem(tmp_path, monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(OSError) as caught:
            ff.allocate(fd, 4096)
        assert caught.value.errno == errno.ENOSPC
        with pytest.raises(OSError):
            ff.extend(fd, 4096)
        assert os.fstat(fd).st_size == 0  # not extended sparse behind the error
    finally:
        os.close(fd)


def test_allocate_reserves_from_the_start_of_the_file(tmp_path):
    _skip_unless_blocks_can_be_reserved(tmp_path)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        ff.allocate(fd, 12345)
        assert os.fstat(fd).st_size == 12345
    finally:
        os.close(fd)


def test_unlink_says_whether_the_file_is_gone(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert ff.unlink(str(path)) is True and not path.exists()
    assert ff.unlink(str(path)) is True  # already gone
    (tmp_path / "d").mkdir()
    assert ff.unlink(str(tmp_path / "d")) is False  # cannot be deleted (a directory): said, and logged
    assert (tmp_path / "d").is_dir()
