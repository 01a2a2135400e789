"""Protocol-level figures: ninep-server with the project's client beside the host directory.

Starts `ninep-server` in a subprocess on a temporary export, runs each workload
over 9P and directly on the host directory in the same run, and prints a table
with the ratio (9P / host). Usage: python -m benchmarks.protocol [--size-mib N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import trio

from ninep.client import Client, Fid, connect
from ninep.constants import GetattrMask, OpenFlag

from .common import Row, host_timed, rate, start_server, stop_server, table, timed

MIB = 1 << 20


async def getattr_rate(root: Fid, n: int, in_flight: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await root.getattr(GetattrMask.BASIC)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(in_flight):
                nursery.start_soon(worker, n // in_flight)

    return rate(n, await timed(run))


def host_stat_rate(path: str, n: int) -> float:
    return rate(n, host_timed(lambda: [os.lstat(path) for _ in range(n)]))


async def create_unlink_rate(root: Fid, n: int) -> float:
    async def run() -> None:
        for i in range(n):
            f = await root.clone()
            await f.create(f"c{i}", OpenFlag.RDWR | OpenFlag.CREAT, 0o644)
            await f.clunk()
            await root.unlinkat(f"c{i}")

    return rate(n, await timed(run))


def host_create_unlink_rate(path: str, n: int) -> float:
    def run() -> None:
        for i in range(n):
            name = os.path.join(path, f"h{i}")
            os.close(os.open(name, os.O_RDWR | os.O_CREAT, 0o644))
            os.unlink(name)

    return rate(n, host_timed(run))


async def write_read_mbps(root: Fid, size: int) -> tuple[float, float]:
    block = os.urandom(MIB)
    f = await root.clone()
    await f.create("big", OpenFlag.RDWR | OpenFlag.CREAT | OpenFlag.TRUNC, 0o644)

    async def write() -> None:
        for off in range(0, size, MIB):
            await f.write(off, block)

    async def read() -> None:
        for off in range(0, size, MIB):
            assert len(await f.read(off, MIB)) == MIB

    w = await timed(write)
    r = await timed(read)
    await f.clunk()
    await root.unlinkat("big")
    return size / MIB / w, size / MIB / r


def host_write_read_mbps(path: str, size: int) -> tuple[float, float]:
    block = os.urandom(MIB)
    name = os.path.join(path, "hbig")
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        w = host_timed(lambda: [os.pwrite(fd, block, off) for off in range(0, size, MIB)])
        r = host_timed(lambda: [os.pread(fd, MIB, off) for off in range(0, size, MIB)])
    finally:
        os.close(fd)
        os.unlink(name)
    return size / MIB / w, size / MIB / r


async def measure(client: Client, export: str, n: int, size: int) -> list[Row]:
    root = await client.attach("C")
    rows = [
        Row("getattr, 1 in flight", "ops/s", await getattr_rate(root, n, 1), 0),
        Row("getattr, 16 in flight", "ops/s", await getattr_rate(root, n, 16), 0),
        Row("create+unlink", "pairs/s", await create_unlink_rate(root, n // 4), 0),
    ]
    rows[0].b = rows[1].b = host_stat_rate(export, n)
    rows[2].b = host_create_unlink_rate(export, n // 4)
    w, r = await write_read_mbps(root, size)
    hw, hr = host_write_read_mbps(export, size)
    rows += [
        Row(f"sequential write {size // MIB} MiB", "MB/s", w, hw),
        Row(f"sequential read {size // MIB} MiB", "MB/s", r, hr),
    ]
    await root.clunk()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ops", type=int, default=4000, help="getattr round trips per figure")
    p.add_argument("--size-mib", type=int, default=256, help="size of the sequential file")
    p.add_argument("--msize", type=int, default=MIB, help="msize asked by the client")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ninep-bench-") as export:
        proc, address = start_server(export)
        try:

            async def run() -> list[Row]:
                async with connect(address, msize=args.msize) as client:
                    return await measure(client, export, args.ops, args.size_mib * MIB)

            rows = trio.run(run)
        finally:
            stop_server(proc)
    print(table(rows, "9P", "host"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
