"""Server CPU per request of ninep-server beside diod's, under the same clients, same run.

    .venv/bin/python scripts/server_cost.py [--rounds 5] [--files 5000] [--mib 256]
                                            [--getattrs 20000] [--profile OUT]
                                            [--unlinks 5000] [--only ls|cat|getattr|unlink]...

Both servers export one fresh directory (a directory `flat` of N files and a
file `big.bin`) for the whole run. Each round runs, against each server in turn
(the order alternating from round to round): `diodls -l flat`, `diodcat` of
`big.bin` (1 MiB reads), and Tgetattr of the root from the project's client
(`--getattrs`, 8 in flight), and Twalk + Tremove of `--unlinks` small files
made on the host before (not counted; diod has no Tunlinkat) from the
project's client. A workload's figures are its wall time and the
server's CPU (user + system, /proc/PID/stat, its threads included) divided by
the requests ninep-server counted for it (`--stats`); diod serves the same
requests of the same clients. Prints per workload the median and range over
rounds. `--profile OUT` runs ninep-server under cProfile (written at its end).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import trio

from benchmarks.suite import procs
from ninep import stats
from ninep.client import connect
from ninep.constants import GetattrMask

TICK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def diodls(address: str, aname: str) -> None:
    subprocess.run([tool("diodls"), "-l", "-s", address, "-a", aname, "-t", "60", "flat"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def diodcat(address: str, aname: str) -> None:
    subprocess.run([tool("diodcat"), "-m", str(MIB), "-s", address, "-a", aname, "-t", "60",
                    "big.bin"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def getattrs(count: int) -> Callable[[str, str], None]:
    async def run(address: str, aname: str) -> None:
        async with connect(f"tcp:{address}") as client:
            root = await client.attach(aname)

            async def worker() -> None:
                for _ in range(count // 8):
                    await root.getattr(GetattrMask.BASIC)

            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(worker)

    return lambda address, aname: trio.run(run, address, aname)


def unlinks(count: int) -> Callable[[str, str], None]:
    """Twalk and Tremove of `count` small files of `gone` (made by `make_unlinked`)."""

    async def run(address: str, aname: str) -> None:
        async with connect(f"tcp:{address}") as client:
            gone = await (await client.attach(aname)).walk("gone")
            for i in range(count):
                await (await gone.walk(f"u{i}")).remove()

    return lambda address, aname: trio.run(run, address, aname)


def make_unlinked(backing: Path, count: int) -> None:
    (backing / "gone").mkdir(exist_ok=True)
    for i in range(count):
        (backing / "gone" / f"u{i}").write_bytes(b"x" * 100)


def populate(root: Path, files: int, mib: int) -> None:
    (root / "flat").mkdir()
    for i in range(files):
        (root / "flat" / f"entry-{i:05d}.txt").write_bytes(b"x" * (i % 100))
    with open(root / "big.bin", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--getattrs", type=int, default=20000)
    parser.add_argument("--unlinks", type=int, default=5000)
    parser.add_argument("--profile", help="cProfile ninep-server into this file")
    parser.add_argument("--only", choices=("ls", "cat", "getattr", "unlink"), action="append",
                        help="run only this workload (repeatable)")  # fmt: skip
    args = parser.parse_args()
    every: dict[str, tuple[str, Callable[[str, str], None]]] = {
        "ls": ("diodls -l", diodls),
        "cat": ("diodcat", diodcat),
        "getattr": ("Tgetattr", getattrs(args.getattrs)),
        "unlink": ("Tremove", unlinks(args.unlinks)),
    }
    workloads = dict(every[key] for key in args.only or every)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backing, sock = work / "backing", work / "stats.sock"
        backing.mkdir()
        populate(backing, args.files, args.mib)
        with (
            ninep_server(backing, work / "ninep.log", sock, args.profile) as ninep_address,
            procs.diod_server(backing, work / "diod.log") as diod_address,
        ):
            servers = {
                "ninep": (ninep_address, "C", server_pid(ninep_address)),
                "diod": (diod_address, str(backing), server_pid(diod_address)),
            }
            wall: dict[tuple[str, str], list[float]] = {}
            per_request: dict[tuple[str, str], list[tuple[float, float]]] = {}
            requests: dict[str, int] = {}
            for r in range(args.rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for name, run in workloads.items():
                    for server in order:
                        address, aname, pid = servers[server]
                        if name == "Tremove":
                            make_unlinked(backing, args.unlinks)
                        served = total_requests(sock) if server == "ninep" else 0
                        before, start = cpu(pid), time.perf_counter()
                        run(address, aname)
                        elapsed, after = time.perf_counter() - start, cpu(pid)
                        used = (after[0] - before[0], after[1] - before[1])
                        if server == "ninep":
                            requests[name] = total_requests(sock) - served - 1  # the stats read
                        wall.setdefault((name, server), []).append(elapsed)
                        per_request.setdefault((name, server), []).append(used)
            for name in workloads:
                n = requests[name]
                print(f"{name}: {n} requests")
                for server in servers:
                    w = sorted(wall[name, server])
                    c = sorted((u + s) / n * 1e6 for u, s in per_request[name, server])
                    system = statistics.median(s / n * 1e6 for _, s in per_request[name, server])
                    print(f"  {server:6} wall ms median {statistics.median(w) * 1e3:8.1f} "
                          f"({w[0] * 1e3:.0f}-{w[-1] * 1e3:.0f})   CPU us/request median "
                          f"{statistics.median(c):6.1f} ({c[0]:.1f}-{c[-1]:.1f}), "
                          f"system {system:.1f}")  # fmt: skip
                ratio = statistics.median(wall[name, "ninep"]) / statistics.median(
                    wall[name, "diod"]
                )
                print(f"  time ratio ninep/diod {ratio:.2f}")
    return 0


@contextlib.contextmanager
def ninep_server(export: Path, log: Path, sock: Path, profile: str | None) -> Iterator[str]:
    """ninep-server (under cProfile, written to `profile` at its end) with --stats `sock`."""
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    command = [sys.executable, *profiler, "-m", "ninep", "--allow-root", "--export",
               f"C={export}", "-v", "--listen", "tcp:127.0.0.1:0",
               "--stats", str(sock)]  # fmt: skip
    with procs.child(command, log, r"listening on tcp:(\S+)") as found:
        yield found.group(1)


def server_pid(address: str) -> int:
    """The pid of the process listening on loopback `address` (tcp:HOST:PORT or HOST:PORT)."""
    port = int(address.rsplit(":", 1)[1])
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return int(out.split("pid=", 1)[1].split(",", 1)[0])


def total_requests(sock: Path) -> int:
    return sum(stats.read(str(sock))["total"]["requests"].values())


if __name__ == "__main__":
    sys.exit(main())
