"""Admission under a flood, and the memory fids leave behind: the server as a whole.

Starts `ninep-server` (with `--stats`) and prints, for one run:
- flood: a process of a uid the server does not admit connects and closes as
  fast as it can for S seconds (optionally with N idle loopback sockets held
  open on the host, which a /proc/net/tcp scan must read through); meanwhile
  an admitted client measures its connect-to-Rversion time and getattr
  latency (p50, p99, max); the server's CPU seconds and log lines;
- fids: C connections each make F fids (clones of the root), then close; the
  server's resident memory before, with them, and after.
Needs root (the flooding process becomes another uid). The server is the
`ninep` package Python finds (PYTHONPATH=another checkout measures that one).
Usage: python -m benchmarks.admission [--seconds S] [--sockets N] [--fids F]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack

import trio

from ninep import stats
from ninep.client import connect

from .common import start_server

REFUSED_UID = 4242  # a uid the host does not know, not admitted
MIB = 1 << 20


def _flood(host: str, port: int, seconds: float) -> None:
    """In a forked child of REFUSED_UID: connect and close until `seconds` pass."""
    os.setgroups([])
    os.setresgid(REFUSED_UID, REFUSED_UID, REFUSED_UID)
    os.setresuid(REFUSED_UID, REFUSED_UID, REFUSED_UID)
    end, pairs = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=1):
                pairs += 1
        except OSError:
            pass
    print(f"  (refused uid made {pairs} connect/close pairs)", file=sys.stderr)


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM, and SIGKILL if it has not stopped 10 s later; how it stopped."""
    proc.terminate()
    try:
        proc.wait(10)
        return "at SIGTERM"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "not within 10 s of SIGTERM: killed"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quantiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return f"{q[49] * 1e3:.2f} / {q[98] * 1e3:.2f} / {max(values) * 1e3:.1f} ms"


async def _admitted(address: str, seconds: float) -> tuple[list[float], list[float], int]:
    """Connect-to-Rversion times (a new connection every 50 ms), getattr latencies, and the
    connections not answered within the run and 10 s more (each is given up then)."""
    connects: list[float] = []
    getattrs: list[float] = []
    unanswered = 0
    end = time.monotonic() + seconds

    async def connecting() -> None:
        nonlocal unanswered
        while time.monotonic() < end:
            start = time.perf_counter()
            unanswered += 1  # until answered
            async with connect(address):
                connects.append(time.perf_counter() - start)
                unanswered -= 1
            await trio.sleep(0.05)

    with trio.move_on_after(seconds + 10):
        async with connect(address) as client, trio.open_nursery() as nursery:
            root = await client.attach("C")
            nursery.start_soon(connecting)
            while time.monotonic() < end:
                start = time.perf_counter()
                await root.getattr()
                getattrs.append(time.perf_counter() - start)
                await trio.sleep(0.002)
    return connects, getattrs, unanswered


def flood(export: str, seconds: float, sockets: int) -> None:
    with ExitStack() as held:
        if sockets:  # idle loopback connections of our own: rows of /proc/net/tcp
            listener = held.enter_context(socket.create_server(("127.0.0.1", 0)))
            for _ in range(sockets // 2):
                held.enter_context(socket.create_connection(listener.getsockname()))
                held.enter_context(listener.accept()[0])
        proc, address = start_server(export, "--listen", "tcp:127.0.0.1:0")
        try:
            _, host, port = address.split(":")
            trio.run(_admitted, address, 0.5)  # warm up
            cpu = _cpu_seconds(proc.pid)
            child = os.fork()
            if child == 0:  # pragma: no cover - the flooding process
                code = 1
                try:
                    _flood(host, int(port), seconds)
                    code = 0
                finally:
                    os._exit(code)
            connects, getattrs, unanswered = trio.run(_admitted, address, seconds)
            os.waitpid(child, 0)
            cpu = _cpu_seconds(proc.pid) - cpu
        finally:
            stopped = _stop(proc)
            assert proc.stderr is not None
            lines = proc.stderr.read().decode(errors="replace").splitlines()
    refused = sum("refused" in line for line in lines)
    print(f"flood: a refused uid for {seconds:.0f} s, {sockets} idle loopback sockets held")
    print("| admitted connects | unanswered | connect p50 / p99 / max | getattr p50 / p99 / max "
          "| server CPU | log lines of refusals | stopped |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(f"| {len(connects)} | {unanswered} | {_quantiles(connects or [0.0])} "
          f"| {_quantiles(getattrs or [0.0])} | {cpu:.1f} s | {refused} | {stopped} |")  # fmt: skip


async def _hold_fids(address: str, stats_path: str, conns: int, fids: int) -> list[int]:
    figures = [stats.read(stats_path)["total"]["memory_resident"]]
    async with AsyncExitStack() as stack:
        for _ in range(conns):
            client = await stack.enter_async_context(connect(address))
            root = await client.attach("C")
            for _ in range(fids - 1):
                await root.clone()
        figures.append(stats.read(stats_path)["total"]["memory_resident"])
    await trio.sleep(0.5)
    figures.append(stats.read(stats_path)["total"]["memory_resident"])
    return figures


def fid_memory(export: str, tmp: str, conns: int, fids: int) -> None:
    stats_path = os.path.join(tmp, "stats.sock")
    usage = subprocess.run([sys.executable, "-m", "ninep", "--help"], capture_output=True).stdout
    budget = ["--max-fids", str(conns * fids)] if b"--max-fids" in usage else []  # older: none
    proc, address = start_server(export, "--stats", stats_path, *budget)
    try:
        before, held, after = trio.run(_hold_fids, address, stats_path, conns, fids)
    finally:
        _stop(proc)
    print(f"\nfids: {conns} connections x {fids} fids, then closed")
    print("| server memory before | with the fids | after they are released |")
    print("|---|---|---|")
    print(f"| {before / MIB:.0f} MiB | {held / MIB:.0f} MiB | {after / MIB:.0f} MiB |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--sockets", type=int, default=0, help="idle loopback sockets held open")
    p.add_argument("--connections", type=int, default=6)
    p.add_argument("--fids", type=int, default=65535)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("benchmarks.admission needs root (the flood runs as another uid)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        export = os.path.join(tmp, "c")
        os.mkdir(export)
        flood(export, args.seconds, args.sockets)
        fid_memory(export, tmp, args.connections, args.fids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
