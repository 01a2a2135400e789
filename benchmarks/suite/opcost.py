"""What one operation costs on a target: its wall time (each timed alone), the CPU time of
every process involved, the 9P requests the server served for it and the FUSE requests
the kernel sent the mount (`benchmarks.suite.fusetrace`).

The processes involved are the suite's own (this one) and the target's: those whose
command line names the target's work directory, and their descendants (drvfs and its
ninep-server; sshfs, its ssh, the suite's sshd and its sftp-server; bindfs).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .fusetrace import FuseRequests

TICK = os.sysconf("SC_CLK_TCK")


def processes_of(directory: Path) -> dict[int, str]:
    """pid -> short name of the processes naming `directory` and their descendants."""
    mark = str(directory).encode()
    named, parents, involved = {}, {}, set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        named[pid] = process_name(cmdline, stat)
        if any(mark in arg for arg in cmdline):
            involved.add(pid)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in involved} - involved
        grew, involved = bool(more), involved | more
    return {pid: named[pid] for pid in involved if pid != os.getpid()}


def process_name(cmdline: list[bytes], stat: str) -> str:
    """The name of the project's `python -m` children (drvfs, ninep-server), else comm."""
    args = [a.decode(errors="replace") for a in cmdline]
    if "-m" in args[:-1]:
        module = args[args.index("-m") + 1]
        return {"ninep": "ninep-server"}.get(module, module)
    return stat[stat.index("(") + 1 : stat.rindex(")")]


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds (user + system, every thread's) of each of `pids` still running: its
    process CPU clock, in ns; /proc's 10 ms ticks where the clock cannot be read."""
    out = {}
    for pid in pids:
        try:
            out[pid] = time.clock_gettime(process_clock(pid))
            continue
        except OSError:
            pass
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def process_clock(pid: int) -> int:
    """The clock id of process `pid`'s CPU time (Linux's MAKE_PROCESS_CPUCLOCK(pid,
    CPUCLOCK_SCHED): what clock_getcpuclockid(3) gives)."""
    return (~pid << 3) | 2


def percentile(sorted_values: list[float], p: float) -> float:
    """The `p`-th percentile (nearest rank) of sorted values."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def measure_ops(
    ops: dict[str, Callable[[int], object]],
    count: int,
    watched: Path | None,
    requests: Callable[[], int] | None,
    fuse: FuseRequests | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each of `ops` `count` times (op(i)), in order; per operation: p50 and p99 wall
    us, CPU us per operation of each process (by name), 9P requests per operation, and
    FUSE requests per operation (in all and by opcode) where `fuse` counts them."""
    pids = processes_of(watched) if watched is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for name, op in ops.items():
        cpu_before, own_before = cpu_seconds(pids), time.process_time()
        served_before = requests() if requests else 0
        if fuse is not None:
            fuse.clear()
        walls = []
        for i in range(count):
            start = time.perf_counter()
            op(i)
            walls.append(time.perf_counter() - start)
        served = requests() - served_before if requests else None
        sent = fuse.counts() if fuse is not None else None
        cpu_after, own = cpu_seconds(pids), time.process_time() - own_before
        cpu: dict[str, float] = {"bench": own}
        for pid, seconds in cpu_after.items():
            label = pids[pid]
            cpu[label] = cpu.get(label, 0.0) + seconds - cpu_before.get(pid, seconds)
        walls.sort()
        out[name] = {
            "count": count,
            "p50_us": percentile(walls, 50) * 1e6,
            "p99_us": percentile(walls, 99) * 1e6,
            "mean_us": statistics.fmean(walls) * 1e6,
            "cpu_us": {p: round(s / count * 1e6, 1) for p, s in cpu.items()},
            "requests": served / count if served is not None else None,
            "fuse": sum(sent.values()) / count if sent is not None else None,
            "fuse_by_op": {op: n / count for op, n in sent.most_common()} if sent else {},
        }
    return out
