"""The per-instance process readings (/proc) behind the worker memory gauges."""

from __future__ import annotations

import io
import mmap
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from aura.metrics import instance
from aura.metrics.instance import _memory

MAPPED = 64 * 1024 * 1024
# Maps a file privately, reads every page, then waits: its pages are clean (never written) and
# private (mapped by this process only) - unique memory all the same.
_READER = """
import mmap, sys
with open(sys.argv[1], "rb") as f:
    pages = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
print(sum(pages[i] for i in range(0, len(pages), mmap.PAGESIZE)), flush=True)
sys.stdin.read()
"""


def _private_clean(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Private_Clean:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="reads /proc/<pid>/smaps_rollup")
def test_unique_memory_counts_clean_private_pages(tmp_path):
    mapped = tmp_path / "mapped"
    with open(mapped, "wb") as f:
        f.write(b"\x01" * MAPPED)
        f.flush()
        os.fsync(f.fileno())  # written back: the page cache holds it clean
    with subprocess.Popen(  # on leaving: stdin closed (the reader ends), then waited for
        [sys.executable, "-c", _READER, str(mapped)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as reader:
        assert reader.stdout is not None
        assert int(reader.stdout.readline()) == MAPPED // mmap.PAGESIZE  # every page read
        clean = _private_clean(reader.pid)
        reading = _memory(reader.pid)
    assert clean >= MAPPED  # the setup holds: 64 MiB of clean private pages
    assert reading is not None
    pss, uss = reading
    assert uss >= clean, (pss, uss, clean)


# ------------------------------------------------------------------ the readers, on known /proc text

FAKE_PID = 4_000_000  # above any pid_max: no such process
BIG = 1 << 40


def _stat_line(pid: int, comm: str, *, utime=0, stime=0, cutime=0, cstime=0, starttime=0, ppid=1) -> str:
    # fields from the 3rd on: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    # majflt, cmajflt, utime (14), stime, cutime, cstime, priority, nice, threads, itrealvalue,
    # starttime (22), vsize, rss, ...
    rest = ["S", ppid, 7, 7, 0, -1, 4194304, 11, 12, 13, 14, utime, stime, cutime, cstime, 20, 0, 1, 0, starttime]
    rest += [3133440, 414, 18446744073709551615]
    return f"{pid} ({comm}) " + " ".join(str(v) for v in rest) + "\n"


@pytest.fixture
def proc(monkeypatch):
    """Stand-in /proc files for the module's readers: path -> text; any other path is missing."""
    files: dict[str, str] = {}

    def fake_open(path, mode="r", *args, **kwargs):
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return io.BytesIO(files[path].encode()) if "b" in mode else io.StringIO(files[path])

    monkeypatch.setattr(instance, "open", fake_open, raising=False)
    return files


def test_stat_fields_start_at_the_state_whatever_the_command_name(proc):
    proc["/proc/42/stat"] = _stat_line(42, "a) b (c) d", utime=5, starttime=99)
    fields = instance._stat(42)
    assert fields is not None
    assert fields[:3] == ["S", "1", "7"]
    assert fields[11] == "5" and fields[19] == "99"
    assert instance._stat(43) is None


def test_cpu_ticks_add_own_and_optionally_reaped_childrens_time():
    fields = _stat_line(1, "x", utime=1, stime=20, cutime=300, cstime=4000).split(") ", 1)[1].split()
    assert instance._cpu_ticks(fields, False) == 21
    assert instance._cpu_ticks(fields, True) == 4321


def test_children_are_read_from_the_main_thread(proc):
    proc["/proc/42/task/42/children"] = "101 102 7\n"
    assert instance._children(42) == [101, 102, 7]
    proc["/proc/43/task/43/children"] = ""
    assert instance._children(43) == []
    assert instance._children(44) == []


SMAPS = """\
56328fa02000-7fff5a307000 ---p 00000000 00:00 0                          [rollup]
Rss:                1676 kB
Pss:                 197 kB
Pss_Dirty:           116 kB
Pss_Anon:            100 kB
Pss_File:             81 kB
Shared_Clean:       1520 kB
Shared_Dirty:          3 kB
Private_Clean:        40 kB
Private_Dirty:       116 kB
Referenced:         1676 kB
"""


def test_memory_is_pss_and_private_clean_plus_dirty_in_bytes(proc):
    proc["/proc/42/smaps_rollup"] = SMAPS
    assert instance._memory(42) == (197 * 1024, (40 + 116) * 1024)
    proc["/proc/43/smaps_rollup"] = SMAPS.replace("Private_Dirty:       116", "Private_Dirty:         0")
    assert instance._memory(43) == (197 * 1024, 40 * 1024)  # clean private pages alone are unique memory
    proc["/proc/44/smaps_rollup"] = "Rss: 5 kB\n"
    assert instance._memory(44) == (0, 0)
    assert instance._memory(45) is None


@pytest.mark.parametrize("line", ["Pss: many kB\n", "Private_Clean:\n"])
def test_unreadable_memory_is_left_out(proc, line):
    proc["/proc/42/smaps_rollup"] = SMAPS + line
    assert instance._memory(42) is None


LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             96367                96367                processes
Max open files            {soft:<20} 20000                files
Max locked memory         8388608              8388608              bytes
"""


def test_max_fds_is_the_soft_limit_on_open_files(proc):
    proc["/proc/42/limits"] = LIMITS.format(soft=1024)
    assert instance._max_fds(42) == 1024
    proc["/proc/43/limits"] = LIMITS.format(soft="unlimited")
    assert instance._max_fds(43) is None
    proc["/proc/46/limits"] = "Max open files 1024 4096 files\n"  # however it is padded
    assert instance._max_fds(46) == 1024
    proc["/proc/44/limits"] = LIMITS.replace("Max open files", "Max open filez").format(soft=1024)
    assert instance._max_fds(44) is None
    assert instance._max_fds(45) is None


def test_boot_time_is_procs_btime(proc):
    proc["/proc/stat"] = "cpu  1 2 3\nintr 5 6\nbtime 1796571979\nprocesses 9\n"
    assert instance._boot_time() == 1796571979.0
    proc["/proc/stat"] = "cpu  1 2 3\nbtimes 5\n"
    assert instance._boot_time() is None
    del proc["/proc/stat"]
    assert instance._boot_time() is None


NETSTAT = """\
TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 {overflows} 9
IpExt: InNoRoutes ListenOverflows
IpExt: 0 77
"""


def test_listen_overflows_read_the_namespaces_tcpext_counter(tmp_path):
    netstat = tmp_path / "netstat"
    netstat.write_text(NETSTAT.format(overflows=12))
    assert instance._listen_overflows(str(netstat)) == 12
    netstat.write_text(NETSTAT.format(overflows="-"))
    assert instance._listen_overflows(str(netstat)) is None
    netstat.write_text(NETSTAT.format(overflows=12).replace("ListenOverflows ListenDrops", "ListenDrops Other"))
    assert instance._listen_overflows(str(netstat)) is None
    netstat.write_text("TcpExt: A ListenOverflows B C\nTcpExt: 1 5\n")  # fewer values than names
    assert instance._listen_overflows(str(netstat)) == 5
    netstat.write_text("TcpExt: SyncookiesSent ListenOverflows\n")  # header without values
    assert instance._listen_overflows(str(netstat)) is None
    assert instance._listen_overflows(str(tmp_path / "missing")) is None


# ------------------------------------------------------------------ the readers, on this machine's /proc

needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="reads Linux's /proc")


@needs_proc
def test_stat_reads_a_live_process_whose_name_holds_a_parenthesis(tmp_path):
    odd = tmp_path / "x) 1 (y"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", odd)
    with subprocess.Popen([str(odd), "30"]) as child:
        try:
            fields = instance._stat(child.pid)
            assert fields is not None and fields[1] == str(os.getpid())  # ppid: this process
            assert instance._children(os.getpid()).count(child.pid) == 1
        finally:
            child.kill()
    assert instance._stat(FAKE_PID) is None and instance._children(FAKE_PID) == []


@needs_proc
def test_this_processs_own_readings(tmp_path):
    fields = instance._stat(os.getpid())
    assert fields is not None and fields[0] == "R" and fields[1] == str(os.getppid())
    before = instance._open_fds(os.getpid())
    with open(tmp_path / "a", "w"), open(tmp_path / "b", "w"):
        assert instance._open_fds(os.getpid()) == before + 2  # type: ignore[operator]
    assert instance._max_fds(os.getpid()) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    pss, uss = instance._memory(os.getpid())  # type: ignore[misc]
    assert 0 < uss <= pss
    for reader in (instance._memory, instance._open_fds, instance._max_fds):
        assert reader(FAKE_PID) is None


@needs_proc
def test_boot_time_agrees_with_the_uptime():
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    boot = instance._boot_time()
    assert boot is not None and abs(boot - (time.time() - uptime)) < 2
    overflows = instance._listen_overflows()
    assert overflows is not None and overflows >= 0


def _pending(listener: socket.socket, n: int) -> list[socket.socket]:
    clients = []
    for _ in range(n):
        client = socket.create_connection(listener.getsockname()[:2])
        clients.append(client)
    return clients


@needs_proc
def test_tcp_queue_reads_a_listeners_waiting_connections_and_backlog():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(7)
        assert instance._tcp_queue(listener.fileno()) == (0, 7)
        clients = _pending(listener, 2)
        try:
            assert instance._tcp_queue(listener.fileno()) == (2, 7)
        finally:
            for client in clients:
                client.close()
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen(3)
        assert instance._tcp_queue(listener.fileno()) == (0, 3)


def test_tcp_queue_ignores_what_is_not_a_tcp_stream(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(tmp_path / "s"))
        unix.listen(4)
        assert instance._tcp_queue(udp.fileno()) is None
        assert instance._tcp_queue(unix.fileno()) is None
    with open(tmp_path / "f", "w") as plain:
        assert instance._tcp_queue(plain.fileno()) is None
    assert instance._tcp_queue(999_999) is None  # not an open descriptor


def test_tcp_queue_leaves_the_listener_open():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        before = instance._open_fds(os.getpid())
        instance._tcp_queue(listener.fileno())
        assert instance._open_fds(os.getpid()) == before  # its duplicate closed
        listener.getsockname()  # the listener itself still open


# ------------------------------------------------------------------ the collector


def _families(collector) -> dict[str, tuple[str, str, float]]:
    out = {}
    for family in collector.collect():
        [sample] = family.samples
        assert family.name not in out
        out[family.name] = (family.type, family.documentation, sample.value)
    return out


HELP = {
    "gunicorn_workers": ("gauge", "Workers alive in this instance."),
    "process_cpu_seconds": ("counter", "CPU time of the instance: master and every worker, dead ones included."),
    "process_resident_memory_bytes": (
        "gauge",
        "The instance's memory: the sum of its processes' proportional set sizes (PSS).",
    ),
    "aura_worker_unique_memory_bytes_max": ("gauge", "The largest live worker's unique memory (USS: private pages)."),
    "process_open_fds": ("gauge", "Open file descriptors of the instance's processes."),
    "process_max_fds": (
        "gauge",
        "The lowest soft limit on open file descriptors (RLIMIT_NOFILE) of the instance's processes.",
    ),
    "process_start_time_seconds": ("gauge", "Start time of the Gunicorn master, since the epoch."),
    "gunicorn_listen_backlog": ("gauge", "Connections accepted by the kernel, waiting for a worker."),
    "gunicorn_listen_backlog_limit": ("gauge", "Configured size of the listen backlog."),
    "gunicorn_listen_overflows": (
        "counter",
        "Connections the kernel dropped because a listen queue was full (TcpExt ListenOverflows), "
        "counted for the whole network namespace, not only this instance's sockets.",
    ),
}


class FakeInstance:
    """A master (pid 1000) and its workers as the readers would see them: per-pid readings."""

    def __init__(self, monkeypatch, workers=(1001, 1002, 1003)):
        self.workers = list(workers)
        ticks = instance._TICKS
        self.stats = {
            1000: _stat_line(
                1000,
                "gunicorn",
                utime=1 * ticks,
                stime=2 * ticks,
                cutime=40 * ticks,
                cstime=80 * ticks,
                starttime=5 * ticks,
            ),
            1001: _stat_line(1001, "w", utime=100 * ticks, stime=200 * ticks, cutime=9999 * ticks),
            1002: _stat_line(1002, "w", utime=1000 * ticks, stime=2000 * ticks, cstime=9999 * ticks),
            1003: _stat_line(1003, "w", utime=10000 * ticks, stime=20000 * ticks),
        }
        self.memory = {1000: (1, 10**9), 1001: (10, 500), 1002: (100, 900), 1003: (1000, 700)}
        self.fds = {1000: 7, 1001: 20, 1002: 300, 1003: 4000}
        self.limits = {1000: 5000, 1001: 1024, 1002: 4096, 1003: 2048}
        monkeypatch.setattr(instance, "_stat", self.stat)
        monkeypatch.setattr(instance, "_children", lambda pid: list(self.workers) if pid == 1000 else [])
        monkeypatch.setattr(instance, "_memory", self.memory.get)
        monkeypatch.setattr(instance, "_open_fds", self.fds.get)
        monkeypatch.setattr(instance, "_max_fds", self.limits.get)
        monkeypatch.setattr(instance, "_boot_time", lambda: 1_700_000_000.0)
        monkeypatch.setattr(instance, "_listen_overflows", lambda: 31)

    def stat(self, pid):
        line = self.stats.get(pid)
        return None if line is None else line.split(") ", 1)[1].split()


def test_the_instance_families_sum_the_master_and_its_live_workers(monkeypatch):
    FakeInstance(monkeypatch)
    families = _families(instance.InstanceCollector(1000, []))
    assert {name: (typ, doc) for name, (typ, doc, _) in families.items()} == {
        name: HELP[name] for name in HELP if not name.startswith("gunicorn_listen_backlog")
    }
    values = {name: value for name, (_, _, value) in families.items()}
    assert values == {
        "gunicorn_workers": 3,
        # the master's own and reaped children's time, and each live worker's own (not its children's)
        "process_cpu_seconds": 1 + 2 + 40 + 80 + 100 + 200 + 1000 + 2000 + 10000 + 20000,
        "process_resident_memory_bytes": 1 + 10 + 100 + 1000,  # PSS of every process
        "aura_worker_unique_memory_bytes_max": 900,  # the largest worker, not the master
        "process_open_fds": 7 + 20 + 300 + 4000,
        "process_max_fds": 1024,  # the lowest limit
        "process_start_time_seconds": 1_700_000_000.0 + 5,
        "gunicorn_listen_overflows": 31,
    }


def test_what_cannot_be_read_is_left_out(monkeypatch):
    fake = FakeInstance(monkeypatch, workers=(1001, 1002, 1004))  # 1004: gone before it was read
    fake.memory.update({1000: None, 1001: None})
    fake.fds.update({1000: None, 1002: None})
    fake.limits.update({1001: None})
    values = {name: value for name, (_, _, value) in _families(instance.InstanceCollector(1000, [])).items()}
    assert values["gunicorn_workers"] == 3
    assert values["process_cpu_seconds"] == 1 + 2 + 40 + 80 + 100 + 200 + 1000 + 2000
    assert values["process_resident_memory_bytes"] == 100
    assert values["aura_worker_unique_memory_bytes_max"] == 900
    assert values["process_open_fds"] == 20
    assert values["process_max_fds"] == 4096


def test_without_workers_there_is_no_unique_memory_and_the_master_still_counts(monkeypatch):
    FakeInstance(monkeypatch, workers=())
    values = {name: value for name, (_, _, value) in _families(instance.InstanceCollector(1000, [])).items()}
    assert values["gunicorn_workers"] == 0
    assert "aura_worker_unique_memory_bytes_max" not in values
    assert values["process_resident_memory_bytes"] == 1
    assert values["process_cpu_seconds"] == 1 + 2 + 40 + 80
    assert values["process_open_fds"] == 7 and values["process_max_fds"] == 5000


def test_a_master_that_cannot_be_read_leaves_only_the_worker_count_and_the_namespace(monkeypatch):
    fake = FakeInstance(monkeypatch, workers=())
    fake.stats.clear()
    fake.memory.clear()
    fake.fds.clear()
    fake.limits.clear()
    reads = []
    monkeypatch.setattr(instance, "_stat", lambda pid: reads.append(pid))
    values = {name: value for name, (_, _, value) in _families(instance.InstanceCollector(1000, [])).items()}
    assert values == {"gunicorn_workers": 0, "gunicorn_listen_overflows": 31}
    assert reads == [1000, 1000]  # read once before and after the children; no retry
    monkeypatch.setattr(instance, "_listen_overflows", lambda: None)
    assert set(_families(instance.InstanceCollector(1000, []))) == {"gunicorn_workers"}


def test_a_master_that_exits_while_it_is_read_gives_no_cpu_and_no_start_time(monkeypatch):
    fake = FakeInstance(monkeypatch, workers=(1001, 1002))
    reads = []

    def stat(pid):
        if pid == 1000:
            reads.append(pid)
            return fake.stat(pid) if len(reads) == 1 else None
        return fake.stat(pid)

    monkeypatch.setattr(instance, "_stat", stat)
    families = _families(instance.InstanceCollector(1000, []))
    assert reads == [1000, 1000]
    assert families["gunicorn_workers"][2] == 2
    assert "process_cpu_seconds" not in families and "process_start_time_seconds" not in families


def test_no_boot_time_no_start_time(monkeypatch):
    FakeInstance(monkeypatch)
    monkeypatch.setattr(instance, "_boot_time", lambda: None)
    assert "process_start_time_seconds" not in _families(instance.InstanceCollector(1000, []))


def _master_cutime_changes(fake: FakeInstance, consistent_on_try: int):
    """The master's stat as read before and after its children, try after try: a worker is
    reaped (its time moves into the master's cutime) during every try before ``consistent_on_try``."""
    ticks = instance._TICKS
    reads = []

    def stat(pid):
        if pid != 1000:
            return fake.stat(pid)
        reads.append(pid)
        attempt, after = divmod(len(reads) - 1, 2)
        cutime = 40 + attempt + (after if attempt + 1 < consistent_on_try else 0)
        return (
            _stat_line(
                1000, "m", utime=ticks, stime=2 * ticks, cutime=cutime * ticks, cstime=80 * ticks, starttime=5 * ticks
            )
            .split(") ", 1)[1]
            .split()
        )

    return stat, reads


@pytest.mark.parametrize("slot", [0, 1])
def test_a_worker_reaped_during_the_read_makes_it_read_again(monkeypatch, slot):
    fake = FakeInstance(monkeypatch)
    ticks = instance._TICKS
    stat, reads = _master_cutime_changes(fake, consistent_on_try=2)
    if slot == 1:  # the time moves into cstime instead
        base = stat

        def stat(pid):  # noqa: F811 - the variant
            fields = base(pid)
            if pid == 1000 and fields is not None:
                fields[13], fields[14] = str(80 * ticks), fields[13]
            return fields

    monkeypatch.setattr(instance, "_stat", stat)
    values = {name: value for name, (_, _, value) in _families(instance.InstanceCollector(1000, [])).items()}
    assert len(reads) == 4  # two tries
    assert values["process_cpu_seconds"] == 1 + 2 + 41 + 80 + 100 + 200 + 1000 + 2000 + 10000 + 20000


@pytest.mark.parametrize(("consistent_on_try", "counted"), [(5, True), (6, False)])
def test_it_tries_five_times_then_leaves_cpu_out(monkeypatch, consistent_on_try, counted):
    fake = FakeInstance(monkeypatch)
    stat, reads = _master_cutime_changes(fake, consistent_on_try=consistent_on_try)
    monkeypatch.setattr(instance, "_stat", stat)
    values = {name: value for name, (_, _, value) in _families(instance.InstanceCollector(1000, [])).items()}
    assert len(reads) == 10
    assert ("process_cpu_seconds" in values) is counted
    assert values["gunicorn_workers"] == 3
    assert values["process_start_time_seconds"] == 1_700_000_000.0 + 5  # from the last read


def test_listen_backlog_sums_the_tcp_listeners_and_skips_the_rest(monkeypatch, tmp_path):
    FakeInstance(monkeypatch)
    with (
        socket.socket() as first,
        socket.socket() as second,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        for listener, backlog in ((first, 3), (second, 5)):
            listener.bind(("127.0.0.1", 0))
            listener.listen(backlog)
        udp.bind(("127.0.0.1", 0))
        clients = _pending(first, 1) + _pending(second, 2)
        try:
            families = _families(instance.InstanceCollector(1000, [first.fileno(), udp.fileno(), second.fileno()]))
        finally:
            for client in clients:
                client.close()
    for name in ("gunicorn_listen_backlog", "gunicorn_listen_backlog_limit"):
        assert families[name][:2] == HELP[name]
    assert families["gunicorn_listen_backlog"][2] == 3
    assert families["gunicorn_listen_backlog_limit"][2] == 8
    no_tcp = _families(instance.InstanceCollector(1000, [udp.fileno()]))
    assert "gunicorn_listen_backlog" not in no_tcp and "gunicorn_listen_backlog_limit" not in no_tcp


_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"


@needs_proc
def test_a_real_instance_of_a_master_and_two_workers(tmp_path):
    """sh stands in for the master: it runs one child to its end (reaped: its CPU time is the
    master's cutime), then keeps two workers, one of which has used CPU."""
    worker = _BURN.format(seconds=0.2) + "print('ready', flush=True)\ntime.sleep(60)\n"  # sh gives it no stdin
    script = (
        f'"{sys.executable}" -c "$1"\n'  # reaped before the workers start
        f'sleep 60 &\n"{sys.executable}" -c "$2" &\nwait\n'
    )
    started = time.time()
    with subprocess.Popen(
        ["sh", "-c", script, "sh", _BURN.format(seconds=0.3), worker],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as master:
        spawned = time.time()  # the master started between `started` and now
        try:
            assert master.stdout is not None and master.stdout.readline() == "ready\n"
            deadline = time.monotonic() + 10
            while len(instance._children(master.pid)) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            values = {k: v for k, (_, _, v) in _families(instance.InstanceCollector(master.pid, [])).items()}
        finally:
            for pid in instance._children(master.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            master.kill()
    assert values["gunicorn_workers"] == 2
    assert 0.45 <= values["process_cpu_seconds"] < 3  # the two burns (0.5 s), counted in clock ticks
    # /proc/stat's btime is whole seconds (rounded down), a start time whole clock ticks
    assert started - 1.01 <= values["process_start_time_seconds"] <= spawned + 0.01
    assert values["process_resident_memory_bytes"] > values["aura_worker_unique_memory_bytes_max"] > 0
    assert values["process_open_fds"] > 0
    assert values["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
