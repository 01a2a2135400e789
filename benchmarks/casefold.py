"""Lookups in a big case-insensitive directory beside a case-sensitive one, over 9P.

Starts `ninep-server` on a temporary export holding two directories of N
entries (10,000 by default): `insensitive` (the default) and `sensitive` (its
case flag set through the client). Stats names through the project's client
(Twalk + Tgetattr + Tclunk; a miss is one failed Twalk) and prints a table
with the ratio insensitive / sensitive. A hit in the exact case opens the name
directly; another case or a miss goes through the directory's folded index,
which one fstat validates; a change on the host makes the next miss relist.
Usage: python -m benchmarks.casefold [--entries N] [--ops N]
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable

import trio

from ninep.client import Fid, connect
from ninep.constants import GetattrMask

from .common import Row, rate, start_server, stop_server, table, timed

KINDS = ("insensitive", "sensitive")


def entry(i: int) -> str:
    return f"Entry-{i:05d}.dat"


async def stat_rate(d: Fid, names: list[str], hit: bool) -> float:
    """Stats per second of `names` in `d` (all found if `hit`, else all missing)."""

    async def run() -> None:
        for name in names:
            try:
                f = await d.walk(name)
            except OSError as e:
                assert not hit and e.errno == errno.ENOENT, (name, e)
                continue
            assert hit, f"{name} found"
            await f.getattr(GetattrMask.BASIC)
            await f.clunk()

    return rate(len(names), await timed(run))


async def relist_rate(d: Fid, host_dir: str, n: int) -> float:
    """Misses per second, each right after a file is made in the directory on the host."""

    async def run() -> None:
        for i in range(n):
            os.close(os.open(os.path.join(host_dir, f"host-made-{i}"), os.O_CREAT | os.O_WRONLY))
            try:
                await (await d.walk(f"still-missing-{i}")).clunk()
            except FileNotFoundError:
                continue
            raise AssertionError("found a missing name")

    return rate(n, await timed(run))


async def measure(address: str, export: str, entries: int, ops: int) -> list[Row]:
    async with connect(address) as client:
        root = await client.attach("C")
        dirs: dict[str, Fid] = {}
        for kind in KINDS:
            await root.mkdir(kind, 0o755)
            dirs[kind] = await root.walk(kind)
        await dirs["sensitive"].setxattr("user.wsl_case_sensitive", b"1")
        for kind in KINDS:
            for i in range(entries):
                os.close(os.open(os.path.join(export, kind, entry(i)), os.O_CREAT | os.O_WRONLY))
        step = max(1, entries // ops)
        exact = [entry(i) for i in range(0, entries, step)][:ops]
        upper = [name.upper() for name in exact]
        missing = [f"missing-{i}.dat" for i in range(len(exact))]
        for kind in KINDS:  # warm up: the first misses build the index
            await stat_rate(dirs[kind], missing[:200], hit=False)

        def row(name: str, figures: dict[str, float]) -> Row:
            return Row(name, "ops/s", figures["insensitive"], figures["sensitive"])

        async def both(fn: Callable[[Fid, str], Awaitable[float]]) -> dict[str, float]:
            return {kind: await fn(dirs[kind], kind) for kind in KINDS}

        rows = [
            row("stat, existing name", await both(lambda d, k: stat_rate(d, exact, True))),
            row("stat, missing name", await both(lambda d, k: stat_rate(d, missing, False))),
        ]
        other_case = await stat_rate(dirs["insensitive"], upper, True)
        rows.append(Row("stat, existing, other case *", "ops/s", other_case, rows[0].b))
        relist = await both(
            lambda d, k: relist_rate(d, os.path.join(export, k), max(10, ops // 100))
        )
        rows.append(row("miss after a host change", relist))
        for d in dirs.values():
            await d.clunk()
        await root.clunk()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=10_000, help="entries in each directory")
    p.add_argument("--ops", type=int, default=2000, help="stats per figure")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ninep-casefold-") as export:
        proc, address = start_server(export)
        try:
            rows = trio.run(measure, address, export, args.entries, args.ops)
        finally:
            stop_server(proc)
    print(f"{args.entries} entries per directory, {args.ops} stats per figure, 1 in flight\n")
    print(table(rows, "insensitive", "sensitive"))
    print("\n* beside the sensitive directory's stat of the exact name")
    return 0


if __name__ == "__main__":
    sys.exit(main())
