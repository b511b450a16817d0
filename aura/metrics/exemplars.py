"""Exemplars across workers: the latest request per histogram bucket (and counter), with its trace id.

prometheus_client keeps no exemplars in multiprocess mode. Aura's workers keep theirs as they
keep their values: in a file of their own, ``.aura-exemplars.<identifier>``, one record per
sample (a histogram bucket's or a counter's value-file key), overwritten by each request that
lands there. A scrape merges the live workers' files with the archive's exemplars (the master
folds a dead worker's into it, ``archive.py``), the newest timestamp winning per sample, and
attaches them to the merged samples (``attach``). Only the OpenMetrics exposition shows them; the
text format has no exemplars and stays as it was.

The file (native byte order, 8-byte aligned)::

    header   magic "AURAEXM1" (8 bytes), used size (uint32), reserved (uint32)
    entries  key length (uint32), key (UTF-8, NUL-padded to 8-byte alignment), record
    record   value (double), timestamp (double, seconds since the epoch), trace id length
             (uint32), trace id (64 bytes, NUL-padded), CRC-32 of the fields before it (uint32)

Only the worker writes its file, under the value lock. A new entry is written whole before the
header's used size grows to include it, so a reader never sees part of an entry. A record is
one 88-byte copy; a reader that raced it finds a checksum that does not match and skips that
sample for this scrape. A record never written has length 0.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from .fileformat import EXEMPLARS_PREFIX, VALUE_TMP_PREFIX, DamagedFileError, created_in_place, extend, parse_key

MAGIC = b"AURAEXM1"
HEADER = struct.Struct("=8sII")  # magic, used, reserved
_USED = struct.Struct("=I")
_KEY_LENGTH = struct.Struct("=I")
_BODY = struct.Struct("=ddI64s")  # value, timestamp, trace id length, trace id: what the checksum covers
_CHECKSUM = struct.Struct("=I")
RECORD = struct.Struct("=ddI64sI")  # the body, then its CRC-32
MAX_TRACE_ID = 64  # bytes; a longer id gets no exemplar (OpenMetrics allows 128 characters of labels)
LABEL = "trace_id"
INITIAL_SIZE = 64 * 1024
MAX_SIZE = 1 << 30


class Stored(NamedTuple):
    """One sample's exemplar: the trace id of the latest request, its value and when it ended."""

    trace_id: str
    value: float
    timestamp: float


def file_name(identifier: str) -> str:
    """The exemplar file of one worker lifetime."""
    return EXEMPLARS_PREFIX + identifier


def _entry_size(encoded_key: bytes) -> int:
    head = _KEY_LENGTH.size + len(encoded_key)
    return head + (-head % 8) + RECORD.size


def encode_record(trace_id: bytes, value: float, timestamp: float) -> bytes:
    """The 88 bytes of a record (``trace_id`` at most MAX_TRACE_ID bytes)."""
    body = _BODY.pack(value, timestamp, len(trace_id), trace_id)
    return body + _CHECKSUM.pack(zlib.crc32(body))


def _decode_record(data: bytes | mmap.mmap, position: int) -> Stored | None:
    value, timestamp, length, padded, checksum = RECORD.unpack_from(data, position)
    if length == 0 or length > MAX_TRACE_ID:
        return None  # never written (or not a record: the checksum would not match either)
    if zlib.crc32(data[position : position + _BODY.size]) != checksum:
        return None  # a write in progress while this was read
    try:
        return Stored(padded[:length].decode("ascii"), value, timestamp)
    except UnicodeDecodeError:
        return None


def _used(data: bytes | mmap.mmap) -> int:
    """The used size a file's header gives, checked against what was read."""
    if len(data) < HEADER.size:
        raise DamagedFileError(f"{len(data)} bytes, shorter than the exemplar header")
    magic, used, _ = HEADER.unpack_from(data, 0)
    if magic != MAGIC or not HEADER.size <= used <= len(data):
        raise DamagedFileError("not an exemplar file")
    return int(used)


def _entries(data: bytes | mmap.mmap, used: int) -> Iterator[tuple[str, int]]:
    """(key, position of its record) of every entry, raising DamagedFileError on a bad layout."""
    position = HEADER.size
    while position < used:
        if position + _KEY_LENGTH.size > used:
            raise DamagedFileError(f"exemplar entry at {position} runs past the used size {used}")
        length = _KEY_LENGTH.unpack_from(data, position)[0]
        head = _KEY_LENGTH.size + length
        end = position + head + (-head % 8) + RECORD.size
        if length == 0 or end > used:
            raise DamagedFileError(f"exemplar entry at {position} runs past the used size {used}")
        try:
            key = data[position + _KEY_LENGTH.size : position + head].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DamagedFileError(f"exemplar key at {position} is not UTF-8") from e
        yield key, end - RECORD.size
        position = end


def parse(data: bytes) -> dict[str, Stored]:
    """Every written record of a whole file by key, raising DamagedFileError on a bad layout."""
    found = ((key, _decode_record(data, position)) for key, position in _entries(data, _used(data)))
    return {key: stored for key, stored in found if stored is not None}


def read(path: str) -> dict[str, Stored]:
    """The records of one worker's file (FileNotFoundError if it has gone)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size > MAX_SIZE:
            raise DamagedFileError(f"an exemplar file over {MAX_SIZE} bytes")
        return parse(f.read())


class ExemplarFile:
    """A worker's exemplar file, open for writing: ``position(key)`` once, then ``write`` per request."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            with created_in_place(path, VALUE_TMP_PREFIX) as fd:
                extend(fd, INITIAL_SIZE)
                os.pwrite(fd, HEADER.pack(MAGIC, HEADER.size, 0), 0)
        self._file = open(path, "r+b")  # noqa: SIM115 - kept open with the mapping, closed by close()
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.mapping = mmap.mmap(self._file.fileno(), self._size)
            self._end = _used(self.mapping)  # this process's own file, reopened: its entries stay
            self._records = dict(_entries(self.mapping, self._end))
        except BaseException:
            self._file.close()
            raise

    def position(self, key: str) -> int:
        """Where the record of ``key`` is, adding an empty entry if new (OSError if there is no room)."""
        found = self._records.get(key)
        if found is not None:
            return found
        encoded = key.encode("utf-8")
        size = _entry_size(encoded)
        needed = self._end + size
        if needed > self._size:
            capacity = self._size
            while needed > capacity:
                capacity *= 2
            if capacity > MAX_SIZE:
                raise OSError(f"the exemplar file would grow past {MAX_SIZE} bytes")
            extend(self._file.fileno(), capacity)
            grown = mmap.mmap(self._file.fileno(), capacity)  # before the old one goes: a failure keeps it
            self.mapping.close()
            self.mapping = grown
            self._size = capacity
        start = self._end
        self.mapping[start : start + size] = (
            _KEY_LENGTH.pack(len(encoded))
            + encoded.ljust(size - _KEY_LENGTH.size - RECORD.size, b"\0")
            + bytes(RECORD.size)
        )
        self._end = needed
        self.mapping[8:12] = _USED.pack(needed)  # the entry is whole before readers may see it
        position = self._records[key] = needed - RECORD.size
        return position

    def write(self, position: int, trace_id: bytes, value: float, timestamp: float) -> None:
        """Replace one record (one copy of its bytes)."""
        self.mapping[position : position + RECORD.size] = encode_record(trace_id, value, timestamp)

    def close(self) -> None:
        try:
            self.mapping.close()
        finally:
            self._file.close()


def newest(into: dict[str, Stored], more: Iterable[tuple[str, Stored]]) -> None:
    """Merge ``more`` into ``into``: per key, the exemplar with the latest timestamp stays."""
    for key, stored in more:
        current = into.get(key)
        if current is None or stored.timestamp > current.timestamp:
            into[key] = stored


_parsed: dict[str, tuple[str, str, tuple[tuple[str, str], ...], str]] = {}  # keys repeat every scrape
_PARSED_MAX = 100_000


def _parse_key(key: str) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    parsed = _parsed.get(key)
    if parsed is None:
        parsed = parse_key(key)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = parsed
    return parsed


def attach(metrics: Iterable[Metric], exemplars: dict[str, Stored]) -> Iterator[Metric]:
    """The merged families, their bucket and counter samples carrying the exemplars stored for them."""
    if not exemplars:
        yield from metrics
        return
    chosen: dict[tuple[str, str, tuple[tuple[str, str], ...]], Stored] = {}
    for key, stored in exemplars.items():
        try:
            metric_name, sample_name, labels, _ = _parse_key(key)
        except DamagedFileError:
            continue  # a damaged key names no sample: nothing to attach it to
        current = chosen.get((metric_name, sample_name, labels))
        # Two keys of one sample (a reload changed the help text): the newest still wins.
        if current is None or stored.timestamp > current.timestamp:
            chosen[metric_name, sample_name, labels] = stored
    by_metric: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Exemplar]] = {}
    for (metric_name, sample_name, labels), stored in chosen.items():
        by_metric.setdefault(metric_name, {})[sample_name, labels] = Exemplar(
            {LABEL: stored.trace_id}, stored.value, stored.timestamp
        )
    for metric in metrics:
        found = by_metric.get(metric.name)
        if found is not None and metric.type in ("histogram", "counter"):
            suffix = "_bucket" if metric.type == "histogram" else "_total"
            samples = []
            for sample in metric.samples:
                exemplar = (
                    found.get((sample.name, tuple(sorted(sample.labels.items()))))
                    if sample.name.endswith(suffix)
                    else None
                )
                samples.append(sample if exemplar is None else sample._replace(exemplar=exemplar))
            metric.samples = samples
        yield metric
