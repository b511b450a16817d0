"""The metrics directory's lifecycle: one directory per live instance, cleaned at start, freed at death.

``claim_directory(root)`` (the Gunicorn master, before anything records) takes ``root`` when no
live instance holds it, else ``root/instance-<pid>``: ownership is an ``flock`` on
``.aura-metrics.owner`` held by the master and inherited by its workers, so it ends only when
every process of the instance has exited - whatever the bind, the command line or a USR2
re-exec (whose new master is a new process). Start-up deletes only the files of the directory
it now owns, and removes ``instance-*`` directories and control sockets of dead instances.
``prepare_directory`` creates, checks and marks one directory, deleting only names this package
or prometheus_client creates.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass

from .fileformat import (
    GATE_NAME,
    INSTANCE_PREFIX,
    LOCK_NAME,
    MARKER_NAME,
    OWNER_NAME,
    PROBE_PREFIX,
    TMP_SUFFIX,
    is_owned_name,
    unlink,
)
from .locking import MetricsDirectoryError, directory_lock
from .processes import pid_running

log = logging.getLogger("aura.metrics")

_MARKER_TEXT = (
    "This directory holds Aura's multi-process Prometheus metrics.\nAura deletes its metric files here at start-up.\n"
)
_KEPT = (LOCK_NAME, GATE_NAME, MARKER_NAME, OWNER_NAME)  # never deleted: their inode is the lock
_INSTANCE_RE = re.compile(rf"{INSTANCE_PREFIX}([0-9]+)")
_SOCKET_RE = re.compile(r"\.aura-ctl-([0-9]+)\.sock")
_HINT = "Set PROMETHEUS_MULTIPROC_DIR to a writable directory dedicated to Aura's metrics (e.g. /dev/shm/aura-metrics)."


@dataclass(frozen=True)
class Claim:
    """The directory an instance uses, and the open lock that makes it the instance's own."""

    root: str
    path: str
    pid: int
    owner_fd: int | None = None  # kept open for the process's life; None when degraded
    error: str | None = None  # why the directory cannot be used (metrics are then degraded)

    @property
    def control_socket(self) -> str:
        """A Gunicorn control-socket path no other live master uses (short: sun_path has 108 bytes)."""
        return os.path.join(self.root, f".aura-ctl-{self.pid}.sock")


_claims: dict[str, Claim] = {}


def claim_directory(root: str) -> Claim:
    """Take ``root``, or ``root/instance-<pid>`` if a live instance holds it; never raises.

    A second call in the same process (Gunicorn re-reads its configuration on HUP) returns the
    first claim.
    """
    root = os.path.abspath(root)
    held = _claims.get(root)
    if held is not None and held.pid == os.getpid():
        return held
    path = root
    try:
        _make_directory(root)
        fd = _try_own(root)
        if fd is None:
            path = os.path.join(root, f"{INSTANCE_PREFIX}{os.getpid()}")
            _make_directory(path)
            fd = _try_own(path)
            if fd is None:
                raise MetricsDirectoryError(f"metrics directory {path!r} is held by another live instance")
        try:
            prepare_directory(path)
        except BaseException:
            os.close(fd)
            raise
        _remove_dead_instances(root, keep=path)
    except (MetricsDirectoryError, OSError) as exc:
        claim = Claim(root, path, os.getpid(), error=str(exc))
    else:
        claim = Claim(root, path, os.getpid(), owner_fd=fd)
    _claims[root] = claim
    return claim


def _make_directory(directory: str) -> None:
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError as e:
        if not os.path.isdir(directory):
            raise MetricsDirectoryError(
                f"metrics directory {directory!r} exists but is not a directory. {_HINT}"
            ) from e
    except OSError as e:
        raise MetricsDirectoryError(f"cannot create metrics directory {directory!r}: {e.strerror}. {_HINT}") from e


def _try_own(directory: str) -> int | None:
    """The open, locked owner file of ``directory``, or None when a live instance holds it."""
    fd = os.open(os.path.join(directory, OWNER_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:  # for people looking at the directory; the lock is what counts
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # a full filesystem: the lock holds all the same
    return fd


def _is_held(directory: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, OWNER_NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _remove_dead_instances(root: str, keep: str) -> None:
    """Remove ``instance-<pid>`` directories and control sockets whose instance has ended."""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        instance, socket = _INSTANCE_RE.fullmatch(name), _SOCKET_RE.fullmatch(name)
        if socket and not pid_running(int(socket.group(1))):
            unlink(path)
        # The pid test keeps a directory whose master is still creating it (no owner file yet).
        if not instance or path == keep or pid_running(int(instance.group(1))) or _is_held(path):
            continue
        for entry in os.listdir(path):
            if is_owned_name(entry) and _is_plain_file(path, entry):
                unlink(os.path.join(path, entry))
        try:
            os.rmdir(path)
            log.info("removed the metrics directory of an ended instance: %s", path)
        except OSError as e:  # something else lives there: leave it
            log.warning("cannot remove the metrics directory of an ended instance %s: %s", path, e)


def prepare_directory(directory: str, *, uid: int | None = None, gid: int | None = None) -> None:
    """Create and mark the metrics directory, deleting only Aura-owned files of a previous run.

    An unmarked, non-empty directory is adopted only if every entry is a regular file with a
    name this package or prometheus_client creates; otherwise MetricsDirectoryError, and
    nothing is deleted. uid/gid chown the directory and lock files for workers running as
    another user than the master.
    """
    directory = os.path.abspath(directory)
    _make_directory(directory)

    # Probe by writing: os.access() is meaningless for root and ignores read-only mounts.
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, suffix=TMP_SUFFIX, dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise MetricsDirectoryError(
            f"metrics directory {directory!r} is not writable: {e.strerror}. "
            f"Fix its permissions or ownership, or {_HINT[0].lower()}{_HINT[1:]}"
        ) from e

    _check_adoptable(directory)
    removed = 0
    try:
        with directory_lock(directory, exclusive=True, timeout=10.0):
            for name in os.listdir(directory):
                if name in _KEPT or not is_owned_name(name):
                    continue  # lock files must keep their inode; foreign files are never touched
                if _is_plain_file(directory, name) and unlink(os.path.join(directory, name)):
                    removed += 1
            marker = os.path.join(directory, MARKER_NAME)
            if not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(_MARKER_TEXT)
        _share(directory, uid, gid)
    except OSError as e:  # e.g. ENOSPC writing the marker on a full filesystem
        raise MetricsDirectoryError(f"cannot prepare metrics directory {directory!r}: {e}. {_HINT}") from e
    if removed:
        log.info("removed %d metric files of a previous run from %s", removed, directory)


def _check_adoptable(directory: str) -> None:
    """Refuse an unmarked directory holding anything but files this package or prometheus_client make."""
    names = os.listdir(directory)
    if MARKER_NAME in names or not set(names) - {OWNER_NAME}:
        return
    foreign = sorted(n for n in names if not (is_owned_name(n) and _is_plain_file(directory, n)))
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise MetricsDirectoryError(
            f"refusing to clean metrics directory {directory!r}: it has no {MARKER_NAME} marker and "
            f"contains files Aura does not own ({shown}). Remove them or {_HINT[0].lower()}{_HINT[1:]}"
        )
    log.warning("adopting unmarked metrics directory %s holding only metric files", directory)


def _share(directory: str, uid: int | None, gid: int | None) -> None:
    """Let workers running as another user take the locks (and own the directory, if asked)."""
    owner = (-1 if uid is None else uid, -1 if gid is None else gid)
    for name in (LOCK_NAME, GATE_NAME, MARKER_NAME):
        path = os.path.join(directory, name)
        os.chmod(path, 0o644)
        if owner != (-1, -1):
            os.chown(path, *owner)
    if owner != (-1, -1):
        os.chown(directory, *owner)


def _is_plain_file(directory: str, name: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(os.path.join(directory, name)).st_mode)
    except FileNotFoundError:
        return False
