"""Reliability figures: many connections under load, and a client that floods without reading.

Starts `ninep-server` (with `--stats`) on a temporary export and prints:
- load: N connections for S seconds, each creating, writing, reading back
  (every byte checked), stat'ing and removing its own files: operations,
  errors, latency p50/p99, and the server's memory and descriptors before and
  after (from its statistics);
- flood: one connection sends pipelined 1 MiB Treads and Tgetattrs and never
  reads a reply; the server's peak memory and its in-flight peak.
Usage: python -m benchmarks.load [--connections N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import trio

from ninep import messages as m
from ninep import stats
from ninep.client import Fid, connect
from ninep.constants import NOFID, GetattrMask, OpenFlag
from ninep.transport import connect as connect_stream
from ninep.transport import parse_address

from .common import start_server, stop_server

MIB = 1 << 20


class Tally:
    """Operations done, errors, and each operation's latency in seconds."""

    def __init__(self) -> None:
        self.ops = 0
        self.errors: list[str] = []
        self.latencies: list[float] = []

    async def op(self, call: Any) -> Any:
        start = time.perf_counter()
        try:
            return await call
        except OSError as e:
            self.errors.append(str(e))
            return None
        finally:
            self.latencies.append(time.perf_counter() - start)
            self.ops += 1


async def worker(address: str, n: int, deadline: float, tally: Tally) -> None:
    """Create, write, read back, stat and remove files of its own until `deadline`."""
    async with connect(address) as client:
        root = await client.attach("C")
        i = 0
        while time.monotonic() < deadline:
            name, data = f"w{n}-{i}", os.urandom(4096 + (i % 16) * 1024)
            f: Fid = await root.clone()
            await tally.op(f.create(name, OpenFlag.RDWR, 0o644))
            await tally.op(f.write(0, data))
            back = await tally.op(f.read(0, len(data)))
            if back != data:
                tally.errors.append(f"{name}: read back {len(back or b'')} bytes, not the data")
            await f.clunk()
            await tally.op(root.walk(name))
            await tally.op(root.unlinkat(name))
            i += 1


async def load(address: str, stats_path: str, connections: int, seconds: float) -> None:
    before = stats.read(stats_path)["total"]
    tally = Tally()
    deadline = time.monotonic() + seconds
    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(worker, address, n, deadline, tally)
    after = stats.read(stats_path)["total"]
    q = statistics.quantiles(tally.latencies, n=100)
    print(f"load: {connections} connections x {seconds:.0f} s")
    print("| operations | errors | p50 | p99 | server memory before -> after | descriptors |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {tally.ops} | {len(tally.errors)} | {q[49] * 1e3:.1f} ms | {q[98] * 1e3:.1f} ms "
        f"| {before['memory_resident'] / MIB:.0f} -> {after['memory_resident'] / MIB:.0f} MiB "
        f"| {before['descriptors']} -> {after['descriptors']} |"
    )
    for e in tally.errors[:5]:
        print("  error:", e)


async def flood(address: str, stats_path: str, reads: int, getattrs: int) -> None:
    """Pipelined requests that are never read, for up to 10 s; the server's figures."""
    before = stats.read(stats_path)["total"]
    stream = await connect_stream(parse_address(address))
    frames: list[m.Message] = [
        m.Tversion(0xFFFF, msize=MIB + 4096, version="9P2000.L"),
        m.Tattach(1, fid=0, afid=NOFID, uname="", aname="C", n_uname=0),
        m.Twalk(2, fid=0, newfid=1, wnames=["big"]),
        m.Tlopen(3, fid=1, flags=OpenFlag.RDONLY),
    ]
    frames += [m.Tread(10 + i, fid=1, offset=0, count=MIB) for i in range(reads)]
    frames += [
        m.Tgetattr(10 + reads + i, fid=0, request_mask=GetattrMask.BASIC) for i in range(getattrs)
    ]
    data = b"".join(f.encode() for f in frames)
    with trio.move_on_after(10):
        await stream.send_all(data)
    sent = stats.read(stats_path)["total"]
    await trio.aclose_forcefully(stream)
    print(
        f"\nflood: {reads} x 1 MiB Tread + {getattrs} Tgetattr ({len(data) / 1e6:.1f} MB), no reads"
    )
    print("| server memory before | peak during | in-flight peak | requests read |")
    print("|---|---|---|---|")
    read = sum(sent["requests"].values()) - sum(before["requests"].values())
    print(
        f"| {before['memory_resident'] / MIB:.0f} MiB | {sent['memory_peak'] / MIB:.0f} MiB "
        f"| {sent['peak_in_flight']} | {read} |"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export = os.path.join(tmp, "c")
        os.mkdir(export)
        with open(os.path.join(export, "big"), "wb") as f:
            f.write(os.urandom(MIB))
        stats_path = os.path.join(tmp, "stats.sock")
        proc, address = start_server(export, "--stats", stats_path)
        try:
            while not os.path.exists(stats_path):
                time.sleep(0.01)
            trio.run(flood, address, stats_path, 400, 60_000)
            trio.run(load, address, stats_path, args.connections, args.seconds)
        finally:
            stop_server(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
