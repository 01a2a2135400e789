"""Requests per operation through a drvfs mount, counted by the server (its --stats socket).

Mounts a fresh export with drvfs (the test harness), runs each operation on a
name the kernel has not cached, and prints the requests the server served for
it, by message name. Needs root and /dev/fuse. Usage (from the repository):

    .venv/bin/python -m scripts.drvfs_round_trips [-o DRVFS_OPTIONS]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.drvfs_harness import StatsServer, drvfs_mount


def measure(server: StatsServer, name: str, action: Callable[[], object]) -> None:
    before = server.requests()
    action()
    delta = server.requests() - before
    listed = ", ".join(f"{k} {v}" for k, v in sorted(delta.items()))
    print(f"| {name} | {sum(delta.values())} | {listed} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", dest="options", default="")
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        drvfs_mount(Path(tmp), args.options, StatsServer) as (mnt, server, _),
    ):
        assert isinstance(server, StatsServer)
        host = server.export
        (host / "big").mkdir()
        for i in range(args.entries):
            (host / "big" / f"f{i:05}").write_bytes(b"x")
        os.listdir(mnt)  # the root is known; the names below are not
        for i in range(4):
            (host / f"host{i}").write_bytes(b"data")
        print("| operation | requests | by message |")
        print("|---|---|---|")
        measure(server, "stat of a fresh name", lambda: os.stat(mnt / "host0"))
        measure(server, "stat of a missing name", lambda: os.path.exists(mnt / "none"))
        measure(server, "open+read of a stat'ed file", lambda: (mnt / "host0").read_bytes())
        measure(server, "stat again (cached)", lambda: os.stat(mnt / "host0"))
        measure(server, "open+read of a fresh name", lambda: (mnt / "host1").read_bytes())
        measure(
            server,
            "create+close",
            lambda: os.close(os.open(mnt / "new", os.O_CREAT | os.O_WRONLY, 0o644)),
        )
        measure(server, "mkdir", lambda: os.mkdir(mnt / "dir"))
        measure(server, "symlink", lambda: os.symlink("new", mnt / "link"))
        if "metadata" in args.options:
            measure(server, "mkfifo", lambda: os.mkfifo(mnt / "fifo"))
        measure(server, "chmod", lambda: os.chmod(mnt / "new", 0o600))
        measure(server, "rename", lambda: os.rename(mnt / "new", mnt / "renamed"))
        measure(server, "unlink", lambda: os.unlink(mnt / "renamed"))
        measure(server, "rmdir", lambda: os.rmdir(mnt / "dir"))
        n = args.entries
        measure(
            server,
            f"ls -l of {n} entries",
            lambda: [os.lstat(e) for e in os.scandir(mnt / "big")],
        )
        print(f"\nserver fids after the listing: {server.total()['fids']}")


if __name__ == "__main__":
    main()
