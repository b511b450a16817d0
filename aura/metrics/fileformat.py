"""What lies in a metrics directory: file names, and the layout of prometheus_client's .db files.

Every name this package creates or recognises, and the byte layout of a value file, are here
and nowhere else. Nothing here imports prometheus_client.

A value file (prometheus_client's ``MmapedDict``) is a 4-byte "used" size and 4 bytes of
padding, then entries: a 4-byte key length, the UTF-8 key padded so that the two doubles that
follow (value, timestamp) are 8-byte aligned. Keys are JSON: ``[metric, sample, labels, help]``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("aura.metrics")

# Files of the directory besides the value files (see docs/metrics.md, "The metrics directory").
ARCHIVE_NAME = "aura-archive.json"
CORRUPT_ARCHIVE_NAME = "aura-archive.json.corrupt"
LOCK_NAME = ".aura-metrics.lock"
GATE_NAME = ".aura-metrics.gate"
MARKER_NAME = ".aura-metrics-dir"
OWNER_NAME = ".aura-metrics.owner"  # flock held by the live Gunicorn instance using the directory
LABELS_PREFIX = ".aura-labels."  # instance-wide admitted label values, one file per label
INFLIGHT_PREFIX = ".aura-inflight."  # a worker's requests in flight (aura/metrics/inflight.py)
EXEMPLARS_PREFIX = ".aura-exemplars."  # a worker's exemplars (aura/metrics/exemplars.py)
INSTANCE_PREFIX = "instance-"  # sub-directory of a second live instance sharing a root
TMP_PREFIX = ".aura-archive."
PROBE_PREFIX = ".aura-probe."
VALUE_TMP_PREFIX = ".aura-value."  # a value file being created, renamed into place at full size
TMP_SUFFIX = ".tmp"
FIXED_NAMES = frozenset((ARCHIVE_NAME, CORRUPT_ARCHIVE_NAME, LOCK_NAME, GATE_NAME, MARKER_NAME, OWNER_NAME))

GAUGE_MODES = frozenset(
    (
        "all",
        "liveall",
        "min",
        "livemin",
        "max",
        "livemax",
        "sum",
        "livesum",
        "mostrecent",
        "livemostrecent",
    )
)
LIVE_GAUGE_MODES = frozenset(m for m in GAUGE_MODES if m.startswith("live"))
PLAIN_TYPES = frozenset(("counter", "histogram", "summary"))

HEADER_SIZE = 8
_IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,127}")
_TMP_RE = re.compile(r"\.aura-(?:archive|probe|value)\..+\.tmp")
_LABELS_RE = re.compile(r"\.aura-labels\.[A-Za-z0-9_]+")
_INFLIGHT_RE = re.compile(r"\.aura-inflight\.([A-Za-z0-9][A-Za-z0-9.-]{0,127})")
_EXEMPLARS_RE = re.compile(r"\.aura-exemplars\.([A-Za-z0-9][A-Za-z0-9.-]{0,127})")
_INT = struct.Struct("i")
VALUE = struct.Struct("dd")  # value, timestamp
_FIRST_READ = 4096


class DamagedFileError(Exception):
    """A metric .db file or the archive cannot be parsed."""


def check_identifier(identifier: str) -> None:
    """Refuse identifiers prometheus_client would split (``_``) or that are no plain file-name part."""
    if not isinstance(identifier, str) or not _IDENTIFIER_RE.fullmatch(identifier):
        raise ValueError(f"invalid worker identifier {identifier!r}: use [A-Za-z0-9.-], no '_'")


def value_file_name(typ: str, mode: str, identifier: str) -> str:
    """``<type>[_<gauge mode>]_<identifier>.db``, as prometheus_client names its files."""
    return f"gauge_{mode}_{identifier}.db" if typ == "gauge" else f"{typ}_{identifier}.db"


def parse_db_name(name: str) -> tuple[str, str, str] | None:
    """Return (type, gauge mode or '', identifier) for a value file name, else None."""
    if not name.endswith(".db") or name.startswith("."):
        return None
    parts = name[:-3].split("_")
    if len(parts) == 2 and parts[0] in PLAIN_TYPES and parts[1]:
        return parts[0], "", parts[1]
    if len(parts) == 3 and parts[0] == "gauge" and parts[1] in GAUGE_MODES and parts[2]:
        return "gauge", parts[1], parts[2]
    return None


def parse_inflight_name(name: str) -> str | None:
    """The worker identifier of an in-flight file name, else None."""
    match = _INFLIGHT_RE.fullmatch(name)
    return match.group(1) if match else None


def parse_exemplars_name(name: str) -> str | None:
    """The worker identifier of an exemplar file name, else None."""
    match = _EXEMPLARS_RE.fullmatch(name)
    return match.group(1) if match else None


def is_temp_name(name: str) -> bool:
    """True for temporary files this package creates (archive writes, write probes)."""
    return bool(_TMP_RE.fullmatch(name))


def is_owned_name(name: str) -> bool:
    """True for every file name this package (or prometheus_client) creates in the directory."""
    return (
        parse_db_name(name) is not None
        or name in FIXED_NAMES
        or is_temp_name(name)
        or bool(_LABELS_RE.fullmatch(name))
        or parse_inflight_name(name) is not None
        or parse_exemplars_name(name) is not None
    )


def entry_size(key: str) -> int:
    """Bytes one entry takes: length, key padded to 8-byte alignment, value and timestamp."""
    encoded = len(key.encode("utf-8"))
    return 4 + encoded + (8 - (encoded + 4) % 8) + VALUE.size


def allocate(fd: int, size: int) -> None:
    """Reserve the blocks of a file up to ``size`` bytes (extending it), where the filesystem can.

    A file extended with ftruncate is sparse: on a full filesystem (typically a size-limited
    tmpfs) the first write to a new page of its mapping kills the process with SIGBUS.
    posix_fallocate reserves the blocks first and fails with ENOSPC instead; on a filesystem
    that cannot reserve, the caller extends the file the old way.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise  # ENOSPC, EFBIG...: no room


def extend(fd: int, size: int) -> None:
    """Make a file at least ``size`` bytes: blocks reserved where the filesystem can, else sparse."""
    allocate(fd, size)
    if os.fstat(fd).st_size < size:
        os.ftruncate(fd, size)


@contextmanager
def created_in_place(path: str, prefix: str) -> Iterator[int]:
    """A new file, written under a temporary name beside ``path`` and renamed to it at the end.

    Readers see the old file or the complete new one, never a part. On an error the temporary
    is removed; temporaries left by a crash have owned names, deleted at the next start.
    """
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TMP_SUFFIX, dir=os.path.dirname(path))
    try:
        os.fchmod(fd, 0o644)  # workers may run as another user than the master
        yield fd
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)


def read_db_file(path: str) -> list[tuple[str, float, float]]:
    """Read all (key, value, timestamp) entries of a value file, raising DamagedFileError.

    Every length is bounds-checked, so a truncated or random file fails loudly instead of
    yielding garbage or nothing.
    """
    with open(path, "rb") as f:
        data = f.read(_FIRST_READ)
        if len(data) < HEADER_SIZE:
            raise DamagedFileError(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
        used = _INT.unpack_from(data, 0)[0]
        if used == 0:
            # A file the writer has just created and not yet initialised (stock reads it as empty).
            return []
        if used < HEADER_SIZE:
            raise DamagedFileError(f"invalid used-size {used} in header")
        if used > len(data):
            data += f.read(used - len(data))
            if used > len(data):
                raise DamagedFileError(f"header says {used} bytes used but file has {len(data)}")
    out = []
    pos = HEADER_SIZE
    while pos < used:
        if pos + 4 > used:
            raise DamagedFileError(f"entry header at {pos} runs past used-size {used}")
        encoded_len = _INT.unpack_from(data, pos)[0]
        if encoded_len <= 0:
            raise DamagedFileError(f"invalid key length {encoded_len} at {pos}")
        padded_len = encoded_len + (8 - (encoded_len + 4) % 8)
        if pos + 4 + padded_len + VALUE.size > used:
            raise DamagedFileError(f"entry at {pos} runs past used-size {used}")
        try:
            key = data[pos + 4 : pos + 4 + encoded_len].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DamagedFileError(f"key at {pos + 4} is not UTF-8") from e
        pos += 4 + padded_len
        value, timestamp = VALUE.unpack_from(data, pos)
        pos += VALUE.size
        out.append((key, value, timestamp))
    return out


def parse_key(key: str) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """Parse a key into (metric_name, sample_name, sorted label items, help), strictly."""
    try:
        metric_name, name, labels, help_text = json.loads(key)
    except (ValueError, TypeError) as e:
        raise DamagedFileError(f"unparseable key {key[:80]!r}") from e
    if not (
        isinstance(metric_name, str)
        and isinstance(name, str)
        and isinstance(help_text, str)
        and isinstance(labels, dict)
        and all(isinstance(v, str) for v in labels.values())
    ):
        raise DamagedFileError(f"malformed key {key[:80]!r}")
    return metric_name, name, tuple(sorted(labels.items())), help_text


def unlink(path: str) -> bool:
    """Delete a file; True when it is gone (also when it was already), False (logged) otherwise."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as e:
        log.warning("cannot delete metrics file %s: %s", path, e)
        return False
