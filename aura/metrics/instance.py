"""The whole Gunicorn instance, read from /proc and the listening sockets at scrape time (Linux).

Process metrics under their standard names, aggregated over the master and its live workers,
with no per-worker label: memory is the sum of each process's proportional set size (PSS;
summing RSS would count the pages shared after preload once per worker), file descriptors are
summed, CPU is a counter that keeps dead workers' time (the master's ``cutime``/``cstime``
hold every reaped worker's) and the start time is the master's. Also the number of workers,
the largest worker's unique memory (USS) and the listen backlog (``TCP_INFO``: for a listening
socket ``tcpi_unacked`` is the accept queue's length and ``tcpi_sacked`` its limit). Whatever
cannot be read (another OS, a socket that is not TCP) is left out, not reported as zero.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()  # fields from the 3rd (state) on; comm may hold spaces


def _cpu_ticks(fields: list[str], children: bool) -> int:
    # utime, stime, cutime, cstime are fields 14-17 (1-based); fields[] starts at field 3
    own = int(fields[11]) + int(fields[12])
    return own + (int(fields[13]) + int(fields[14]) if children else 0)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _memory(pid: int) -> tuple[int, int] | None:
    """(PSS, USS) in bytes from smaps_rollup."""
    pss = uss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name == "Pss":
                    pss = int(rest.split()[0]) * 1024
                elif name in ("Private_Clean", "Private_Dirty"):
                    uss += int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return pss, uss


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _max_fds(pid: int) -> int | None:
    """The process's soft limit on open files (RLIMIT_NOFILE); None when unlimited or unreadable."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files") :].split()[0]
                    return int(soft) if soft.isdigit() else None
    except OSError:
        pass
    return None


def _listen_overflows(path: str = "/proc/net/netstat") -> int | None:
    """The network namespace's TcpExt ListenOverflows: connections dropped with the accept queue full."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
    except OSError:
        return None
    if len(lines) < 2:
        return None
    values = dict(zip(lines[0][1:], lines[1][1:], strict=False))
    overflows = values.get("ListenOverflows", "")
    return int(overflows) if overflows.isdigit() else None


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _tcp_queue(fd: int) -> tuple[int, int] | None:
    """(connections waiting to be accepted, backlog limit) of a listening TCP socket, if Linux tells."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    finally:
        sock.close()
    # struct tcp_info: eight u8 fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked, ...
    unacked, sacked = struct.unpack_from("=II", info, 8 + 4 * 4)
    return unacked, sacked


class InstanceCollector:
    """Scrape-time metrics of one Gunicorn instance: its master, live workers and listening sockets."""

    def __init__(self, master_pid: int, listen_fds: Sequence[int]):
        self.master_pid = master_pid
        self.listen_fds = list(listen_fds)

    def collect(self) -> Iterator[Metric]:
        """Yield the families; each only when it could be read."""
        workers, cpu, master_stat = _processes(self.master_pid)
        yield GaugeMetricFamily("gunicorn_workers", "Workers alive in this instance.", value=len(workers))
        if cpu is not None:
            yield CounterMetricFamily(
                "process_cpu_seconds",
                "CPU time of the instance: master and every worker, dead ones included.",
                value=cpu,
            )
        yield from _memory_families(self.master_pid, workers)
        yield from _fd_families([self.master_pid, *workers])
        boot = _boot_time()
        if boot is not None and master_stat is not None:
            yield GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the Gunicorn master, since the epoch.",
                value=boot + int(master_stat[19]) / _TICKS,
            )
        yield from _queue_families(self.listen_fds)


def _processes(master: int) -> tuple[list[int], float | None, list[str] | None]:
    """(live workers, CPU seconds of the instance, the master's stat fields)."""
    workers: list[int] = []
    after = None
    for _ in range(5):  # a worker reaped while we read would count twice or not at all: retry
        before = _stat(master)
        workers = _children(master)
        worker_stats = [s for s in (_stat(pid) for pid in workers) if s is not None]
        after = _stat(master)
        if before is None or after is None:
            break
        if before[13:15] == after[13:15]:
            return workers, (_cpu_ticks(after, True) + sum(_cpu_ticks(s, False) for s in worker_stats)) / _TICKS, after
    return workers, None, after


def _memory_families(master: int, workers: list[int]) -> Iterator[Metric]:
    worker_memory = [m for m in (_memory(pid) for pid in workers) if m is not None]
    memory = [m for m in (_memory(master),) if m is not None] + worker_memory
    if memory:
        yield GaugeMetricFamily(
            "process_resident_memory_bytes",
            "The instance's memory: the sum of its processes' proportional set sizes (PSS).",
            value=sum(p for p, _ in memory),
        )
    if worker_memory:
        yield GaugeMetricFamily(
            "aura_worker_unique_memory_bytes_max",
            "The largest live worker's unique memory (USS: private pages).",
            value=max(u for _, u in worker_memory),
        )


def _fd_families(pids: list[int]) -> Iterator[Metric]:
    fds = [n for n in (_open_fds(pid) for pid in pids) if n is not None]
    if fds:
        yield GaugeMetricFamily(
            "process_open_fds", "Open file descriptors of the instance's processes.", value=sum(fds)
        )
    # The lowest soft limit of the same processes (each inherits the master's): the instance's
    # sum against one process's limit overstates the risk, on purpose (docs/metrics.md).
    limits = [n for n in (_max_fds(pid) for pid in pids) if n is not None]
    if limits:
        yield GaugeMetricFamily(
            "process_max_fds",
            "The lowest soft limit on open file descriptors (RLIMIT_NOFILE) of the instance's processes.",
            value=min(limits),
        )


def _queue_families(listen_fds: list[int]) -> Iterator[Metric]:
    queues = [q for q in (_tcp_queue(fd) for fd in listen_fds) if q is not None]
    if queues:
        yield GaugeMetricFamily(
            "gunicorn_listen_backlog",
            "Connections accepted by the kernel, waiting for a worker.",
            value=sum(q for q, _ in queues),
        )
        yield GaugeMetricFamily(
            "gunicorn_listen_backlog_limit",
            "Configured size of the listen backlog.",
            value=sum(limit for _, limit in queues),
        )
    overflows = _listen_overflows()
    if overflows is not None:
        yield CounterMetricFamily(
            "gunicorn_listen_overflows",
            "Connections the kernel dropped because a listen queue was full (TcpExt ListenOverflows), "
            "counted for the whole network namespace, not only this instance's sockets.",
            value=overflows,
        )
