"""Figures through a drvfs mount beside the same work on the host directory.

Starts `ninep-server` on a temporary export and mounts it with drvfs (a FUSE
mount: needs root and /dev/fuse), runs each workload with plain system calls
on the mount and on the host directory in the same run, and prints a table
with the ratio (drvfs / host). Usage: python -m benchmarks.drvfs [--files N]
[--size-mib N] [-o MOUNT_OPTIONS]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .common import Row, host_timed, rate, start_server, stop_server, table
from .suite.procs import drvfs_mount

MIB = 1 << 20


def stat_files(root: Path, n: int) -> Callable[[], None]:
    names = [str(root / f"f{i}") for i in range(n)]

    def run() -> None:
        for name in names:
            os.stat(name)

    return run


def open_read_close(root: Path, n: int) -> Callable[[], None]:
    names = [str(root / f"f{i}") for i in range(n)]

    def run() -> None:
        for name in names:
            fd = os.open(name, os.O_RDONLY)
            os.read(fd, 4096)
            os.close(fd)

    return run


def create_unlink(root: Path, n: int) -> Callable[[], None]:
    def run() -> None:
        for i in range(n):
            name = str(root / f"new{i}")
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)
            os.unlink(name)

    return run


def lock_unlock(root: Path, n: int) -> Callable[[], None]:
    def run() -> None:
        with open(root / "f0", "r+b") as f:
            for i in range(n):
                fcntl.lockf(f, fcntl.LOCK_EX, 1, i)
                fcntl.lockf(f, fcntl.LOCK_UN, 1, i)

    return run


def write_file(root: Path, size: int) -> Callable[[], None]:
    block = os.urandom(MIB)

    def run() -> None:
        with open(root / "big", "wb") as f:
            for _ in range(size // MIB):
                f.write(block)
            os.fsync(f.fileno())

    return run


def read_file(root: Path) -> Callable[[], None]:
    def run() -> None:
        with open(root / "big", "rb", buffering=0) as f:
            while f.read(MIB):
                pass

    return run


def measure(root: Path, files: int, size: int) -> dict[str, tuple[str, float]]:
    """Each workload on `root`: name -> (unit, rate)."""
    for i in range(files):
        (root / f"f{i}").write_bytes(b"y" * 1000)
    out = {
        "stat": ("ops/s", rate(files, host_timed(stat_files(root, files)))),
        "open+read+close": ("ops/s", rate(files, host_timed(open_read_close(root, files)))),
        "create+write+unlink": ("ops/s", rate(files, host_timed(create_unlink(root, files)))),
        "fcntl lock+unlock": ("pairs/s", rate(files, host_timed(lock_unlock(root, files)))),
        f"write {size // MIB} MiB": ("MB/s", rate(size / 1e6, host_timed(write_file(root, size)))),
    }
    subprocess.run(["sync"], check=True)
    out[f"read {size // MIB} MiB"] = ("MB/s", rate(size / 1e6, host_timed(read_file(root))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("-o", dest="options", default="", help="drvfs mount options")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        sys.exit("benchmarks.drvfs needs root and /dev/fuse (it mounts a FUSE filesystem)")
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        export, host, mnt = Path(tmp, "export"), Path(tmp, "host"), Path(tmp, "mnt")
        for d in (export, host, mnt):
            d.mkdir()
        proc, address = start_server(str(export))
        try:
            with drvfs_mount(address, mnt, args.options, Path(tmp, "drvfs.log")):
                through = measure(mnt, args.files, size)
        finally:
            stop_server(proc)
        native = measure(host, args.files, size)
    rows = [Row(name, unit, value, native[name][1]) for name, (unit, value) in through.items()]
    print(table(rows, "drvfs", "host", digits=0))


if __name__ == "__main__":
    main()
