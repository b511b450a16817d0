"""Internal helpers for aura.metrics.multiproc: file names, a strict .db reader, the archive.

Nothing here imports prometheus_client, so importing it can never fix
``prometheus_client.values.ValueClass`` before PROMETHEUS_MULTIPROC_DIR is set.

Archive file (``aura-archive.json``), format version 1, is one JSON object
(Python's dialect: NaN/Infinity literals allowed, as gauge values may be such)::

    {"format": "aura-metrics-archive", "version": 1,
     "absorbed": ["<identifier>", ...],          # workers whose .db files are folded in
     "stats": {"merges": int, "merged_files": int, "damaged_files": int,
               "merge_duration": {"buckets": [["0.001", n], ..., ["+Inf", n]],  # not cumulative
                                  "sum": float}},
     "groups": [{"type": "counter|histogram|summary|gauge", "mode": "<gauge mode or ''>",
                 "id": "<dead identifier for gauge mode 'all', else ''>",
                 "values": [["<mmap key, exactly as in the .db file>", value, timestamp], ...]}]}

Groups hold the raw per-file values (histogram buckets not cumulative), so the
collector can feed them to MultiProcessCollector._accumulate_metrics like a file.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field

ARCHIVE_NAME = "aura-archive.json"
CORRUPT_ARCHIVE_NAME = "aura-archive.json.corrupt"
ARCHIVE_FORMAT = "aura-metrics-archive"
ARCHIVE_VERSION = 1
TMP_PREFIX = ".aura-archive."
PROBE_PREFIX = ".aura-probe."
TMP_SUFFIX = ".tmp"
LOCK_NAME = ".aura-metrics.lock"
GATE_NAME = ".aura-metrics.gate"
MARKER_NAME = ".aura-metrics-dir"

GAUGE_MODES = frozenset((
    "all", "liveall", "min", "livemin", "max", "livemax",
    "sum", "livesum", "mostrecent", "livemostrecent",
))
LIVE_GAUGE_MODES = frozenset(m for m in GAUGE_MODES if m.startswith("live"))
PLAIN_TYPES = frozenset(("counter", "histogram", "summary"))

# Merge-duration histogram bounds (seconds); a merge normally takes milliseconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)

_TMP_RE = re.compile(r"^\.aura-(?:archive|probe)\..+\.tmp$")
_INT = struct.Struct("i")
_TWO_DOUBLES = struct.Struct("dd")
_FIRST_READ = 4096


class DamagedFileError(Exception):
    """A metric .db file or the archive cannot be parsed."""


def parse_db_name(name: str) -> tuple[str, str, str] | None:
    """Return (type, gauge mode or '', identifier) for a prometheus_client file name, else None."""
    if not name.endswith(".db") or name.startswith("."):
        return None
    parts = name[:-3].split("_")
    if len(parts) == 2 and parts[0] in PLAIN_TYPES and parts[1]:
        return parts[0], "", parts[1]
    if len(parts) == 3 and parts[0] == "gauge" and parts[1] in GAUGE_MODES and parts[2]:
        return "gauge", parts[1], parts[2]
    return None


def is_temp_name(name: str) -> bool:
    """True for temporary files this package creates (archive writes, write probes)."""
    return bool(_TMP_RE.match(name))


def is_owned_name(name: str) -> bool:
    """True for every file name this package (or prometheus_client) creates in the directory."""
    return (
        parse_db_name(name) is not None
        or name in (ARCHIVE_NAME, CORRUPT_ARCHIVE_NAME, LOCK_NAME, GATE_NAME, MARKER_NAME)
        or is_temp_name(name)
    )


def read_db_file(path: str) -> list[tuple[str, float, float]]:
    """Read all (key, value, timestamp) entries of an MmapedDict file, raising DamagedFileError.

    Same layout as prometheus_client.mmap_dict, but every length is bounds-checked, so
    a truncated or random file fails loudly instead of yielding garbage or nothing.
    """
    with open(path, "rb") as f:
        data = f.read(_FIRST_READ)
        if len(data) < 8:
            raise DamagedFileError(f"{len(data)} bytes, shorter than the 8-byte header")
        used = _INT.unpack_from(data, 0)[0]
        if used == 0:
            # A file the writer has just created and not yet initialised (stock reads it as empty).
            return []
        if used < 8:
            raise DamagedFileError(f"invalid used-size {used} in header")
        if used > len(data):
            data += f.read(used - len(data))
            if used > len(data):
                raise DamagedFileError(f"header says {used} bytes used but file has {len(data)}")
    out = []
    pos = 8
    while pos < used:
        if pos + 4 > used:
            raise DamagedFileError(f"entry header at {pos} runs past used-size {used}")
        encoded_len = _INT.unpack_from(data, pos)[0]
        if encoded_len <= 0:
            raise DamagedFileError(f"invalid key length {encoded_len} at {pos}")
        pos += 4
        padded_len = encoded_len + (8 - (encoded_len + 4) % 8)
        if pos + padded_len + 16 > used:
            raise DamagedFileError(f"entry at {pos - 4} runs past used-size {used}")
        try:
            key = data[pos:pos + encoded_len].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DamagedFileError(f"key at {pos} is not UTF-8") from e
        pos += padded_len
        value, timestamp = _TWO_DOUBLES.unpack_from(data, pos)
        pos += 16
        out.append((key, value, timestamp))
    return out


def parse_key(key: str) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """Parse an mmap key into (metric_name, sample_name, sorted label items, help), strictly."""
    try:
        metric_name, name, labels, help_text = json.loads(key)
    except (ValueError, TypeError) as e:
        raise DamagedFileError(f"unparseable key {key[:80]!r}") from e
    if not (isinstance(metric_name, str) and isinstance(name, str) and isinstance(help_text, str)
            and isinstance(labels, dict)
            and all(isinstance(v, str) for v in labels.values())):
        raise DamagedFileError(f"malformed key {key[:80]!r}")
    return metric_name, name, tuple(sorted(labels.items())), help_text


def _le_string(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(bound)


@dataclass
class Archive:
    """In-memory form of the archive: folded dead-worker values plus merge bookkeeping."""

    absorbed: set[str] = field(default_factory=set)
    # (type, mode, id) -> mmap key -> [value, timestamp]
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = field(default_factory=dict)
    merges: int = 0
    merged_files: int = 0
    damaged_files: int = 0
    duration_counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0

    def fold(self, typ: str, mode: str, identifier: str, rows: list[tuple[str, float, float]]) -> None:
        """Fold one dead worker file's rows in, using the same rules as _accumulate_metrics."""
        if typ == "gauge":
            if mode in LIVE_GAUGE_MODES:
                return  # the worker is dead; stock mark_process_dead drops these too
            group_key = (typ, mode, identifier if mode == "all" else "")
        else:
            group_key = (typ, "", "")
        group = self.groups.setdefault(group_key, {})
        for key, value, timestamp in rows:
            cur = group.get(key)
            if cur is None:
                group[key] = [value, timestamp if typ == "gauge" else 0.0]
            elif typ != "gauge" or mode == "sum":
                cur[0] += value
            elif mode == "min":
                if value < cur[0]:
                    cur[0] = value
            elif mode == "max":
                if value > cur[0]:
                    cur[0] = value
            elif mode == "mostrecent":
                if cur[1] < timestamp:
                    cur[0], cur[1] = value, timestamp
            else:  # "all": one entry per dead identifier, last write wins like the stock reader
                cur[0], cur[1] = value, timestamp

    def observe_duration(self, seconds: float) -> None:
        """Record one merge duration in the fixed-bucket histogram."""
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.duration_counts[i] += 1
                break
        self.duration_sum += seconds

    def to_bytes(self) -> bytes:
        """Serialise to the version-1 JSON format described in the module docstring."""
        doc = {
            "format": ARCHIVE_FORMAT,
            "version": ARCHIVE_VERSION,
            "absorbed": sorted(self.absorbed),
            "stats": {
                "merges": self.merges,
                "merged_files": self.merged_files,
                "damaged_files": self.damaged_files,
                "merge_duration": {
                    "buckets": [[_le_string(b), n]
                                for b, n in zip(DURATION_BUCKETS, self.duration_counts, strict=True)],
                    "sum": self.duration_sum,
                },
            },
            "groups": [
                {"type": t, "mode": m, "id": i, "values": [[k, v[0], v[1]] for k, v in values.items()]}
                for (t, m, i), values in sorted(self.groups.items())
                if values
            ],
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Archive:
        """Parse an archive, raising DamagedFileError on anything unexpected."""
        try:
            doc = json.loads(data)
            if doc.get("format") != ARCHIVE_FORMAT or doc.get("version") != ARCHIVE_VERSION:
                raise DamagedFileError(f"not a version-{ARCHIVE_VERSION} archive")
            archive = cls(absorbed={str(i) for i in doc["absorbed"]})
            stats = doc["stats"]
            archive.merges = int(stats["merges"])
            archive.merged_files = int(stats["merged_files"])
            archive.damaged_files = int(stats["damaged_files"])
            archive.duration_sum = float(stats["merge_duration"]["sum"])
            for le, n in stats["merge_duration"]["buckets"]:
                # Tolerate changed bounds: count into the first current bound >= the stored one.
                bound = float(le)
                idx = next(i for i, b in enumerate(DURATION_BUCKETS) if bound <= b)
                archive.duration_counts[idx] += int(n)
            for g in doc["groups"]:
                typ, mode, ident = str(g["type"]), str(g["mode"]), str(g["id"])
                if typ not in PLAIN_TYPES and not (typ == "gauge" and mode in GAUGE_MODES):
                    raise DamagedFileError(f"unknown group type {typ!r}/{mode!r}")
                archive.groups[(typ, mode, ident)] = {
                    str(k): [float(v), float(ts)] for k, v, ts in g["values"]
                }
            return archive
        except DamagedFileError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, StopIteration) as e:
            raise DamagedFileError(f"malformed archive: {e!r}") from e
