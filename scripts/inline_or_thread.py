"""What a host call costs made inline beside handed to a worker thread (`hostio.in_thread`).

    .venv/bin/python scripts/inline_or_thread.py [--dir PATH] [--count 2000]

In a fresh directory under PATH (default: the working directory's filesystem),
runs each call `--count` times on the trio thread, then as many times through
`trio.to_thread.run_sync`, alternating the two three times, and prints the
median per call of the process's CPU (user + system, threads included) and of
the wall time. The hand-off alone is the `nothing` row. The rule in
`volfs/hostio.py` follows from these figures (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

MIB = 1 << 20


def calls(root: Path, count: int) -> dict[str, Callable[[int], object]]:
    """name -> call(i) of the call kinds measured, their files made under `root`."""
    dirfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    big = root / "big.bin"
    big.write_bytes(os.urandom(MIB))
    data_fd = os.open(big, os.O_RDWR)
    small_fd = os.open(root / "small.bin", os.O_RDWR | os.O_CREAT, 0o644)
    buf = {n: bytearray(n) for n in (4096, 65536, MIB)}
    listed = {}
    for n in (16, 256, 4096):
        d = root / f"dir{n}"
        d.mkdir()
        for i in range(n):
            (d / f"entry-{i:05d}.txt").touch()
        listed[n] = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(8 * count):  # unlinked: 6 rounds of `count`
        (root / f"u{i}").write_bytes(b"x" * 100)
    unlinked = iter(range(8 * count))

    def scan(fd: int) -> int:
        os.lseek(fd, 0, os.SEEK_SET)
        with os.scandir(fd) as entries:
            return sum(1 for _ in entries)

    def read(n: int) -> Callable[[int], object]:
        return lambda i: os.preadv(data_fd, [buf[n]], 0, os.RWF_NOWAIT)

    return {
        "nothing": lambda i: None,
        "fstatat": lambda i: os.stat("big.bin", dir_fd=dirfd, follow_symlinks=False),
        "openat O_PATH + close": lambda i: os.close(
            os.open("big.bin", os.O_PATH | os.O_NOFOLLOW, dir_fd=dirfd)
        ),
        "unlinkat (100 B file)": lambda i: os.unlink(f"u{next(unlinked)}", dir_fd=dirfd),
        "ftruncate (100 B <-> 0)": lambda i: os.truncate(small_fd, 100 * (i % 2)),
        "pread 4 KiB (cached)": read(4096),
        "pread 64 KiB (cached)": read(65536),
        "pread 1 MiB (cached)": read(MIB),
        "scandir 16 entries": lambda i: scan(listed[16]),
        "scandir 256 entries": lambda i: scan(listed[256]),
        "scandir 4096 entries": lambda i: scan(listed[4096]),
    }


def process_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def measure(fn: Callable[[int], object], count: int, threaded: bool) -> tuple[float, float]:
    """CPU and wall seconds per call of `count` calls of `fn`, inline or in a thread."""
    cpu, start = process_cpu(), time.perf_counter()
    for i in range(count):
        if threaded:
            await trio.to_thread.run_sync(fn, i)
        else:
            fn(i)
            await trio.lowlevel.checkpoint()  # as an inline call in a request does
    return (process_cpu() - cpu) / count, (time.perf_counter() - start) / count


async def run(root: Path, count: int) -> None:
    table = calls(root, count)
    figures: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for _ in range(3):
        for name, fn in table.items():
            n = count if "scandir 4096" not in name else count // 20
            for threaded in (False, True):
                figures.setdefault((name, threaded), []).append(await measure(fn, n, threaded))
    print(f"{'call':28} {'inline CPU us':>14} {'thread CPU us':>14} {'inline wall':>12} "
          f"{'thread wall':>12}")  # fmt: skip
    for name in table:
        row = []
        for i in (0, 1):
            for threaded in (False, True):
                row.append(statistics.median(f[i] for f in figures[name, threaded]) * 1e6)
        print(f"{name:28} {row[0]:14.1f} {row[1]:14.1f} {row[2]:12.1f} {row[3]:12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=".")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        trio.run(run, Path(tmp), args.count)


if __name__ == "__main__":
    main()
