"""Requests per operation through a drvfs mount, counted by the server (its --stats socket).

Mounts a fresh export with drvfs (the test harness), runs each operation on a
name the kernel has not cached, and prints the requests the server served for
it, by message name, and the Rnotify batches it sent meanwhile (each brings
the next Tnotify). Needs root and /dev/fuse. Usage (from the repository):

    .venv/bin/python -m scripts.drvfs_round_trips [-o DRVFS_OPTIONS]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ninep.messages import NOTIFIES
from tests.drvfs_harness import StatsServer, drvfs_mount


def measure(server: StatsServer, name: str, action: Callable[[], object], per: int = 1) -> None:
    """Print the requests `action` cost (per one of `per` operations), and the Rnotify
    batches the server sent meanwhile (each brings a new Tnotify)."""
    before, notified = server.requests(), _notifies(server)
    action()
    delta = server.requests() - before
    batches = _notifies(server) - notified
    listed = ", ".join(f"{k} {v / per:g}" for k, v in sorted(delta.items()))
    print(f"| {name} | {sum(delta.values()) / per:g} | {batches / per:g} | {listed} |")


def _notifies(server: StatsServer) -> int:
    served = server.total()["requests"]
    return sum(int(served.get(waiting.__name__, 0)) for waiting in NOTIFIES)


def _create(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))


def _storm(mnt: Path, count: int) -> None:
    for i in range(count):
        _create(mnt / f"storm{i}")
        os.unlink(mnt / f"storm{i}")


def _made_in(directory: Path) -> None:
    os.mkdir(directory)
    _create(directory / "f")


def _probe(directory: Path, names: list[str], found: str = "") -> None:
    for name in names:
        assert not os.path.lexists(directory / name)
    if found:
        os.stat(directory / found)


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
        (host / "listed").mkdir()
        (host / "unlisted").mkdir()
        for i in range(20):
            (host / "listed" / f"have{i}").write_bytes(b"x")
            (host / "unlisted" / f"have{i}").write_bytes(b"x")
        print("| operation | requests | Rnotify | by message |")
        print("|---|---|---|---|")
        measure(server, "stat of a fresh name", lambda: os.stat(mnt / "host0"))
        measure(server, "stat of a missing name", lambda: os.path.exists(mnt / "none"))
        measure(server, "open+read of a stat'ed file", lambda: (mnt / "host0").read_bytes())
        measure(server, "stat again (cached)", lambda: os.stat(mnt / "host0"))
        measure(server, "open+read of a fresh name", lambda: (mnt / "host1").read_bytes())
        measure(server, "create+close", lambda: _create(mnt / "new"))
        measure(server, "mkdir", lambda: os.mkdir(mnt / "dir"))
        measure(server, "symlink", lambda: os.symlink("new", mnt / "link"))
        if "metadata" in args.options:
            measure(server, "mkfifo", lambda: os.mkfifo(mnt / "fifo"))
        measure(server, "chmod", lambda: os.chmod(mnt / "new", 0o600))
        measure(server, "rename", lambda: os.rename(mnt / "new", mnt / "renamed"))
        measure(server, "unlink", lambda: os.unlink(mnt / "renamed"))
        measure(server, "rmdir", lambda: os.rmdir(mnt / "dir"))
        measure(server, "create+close, unlink: per file of 100", lambda: _storm(mnt, 100), 100)
        measure(server, "mkdir, then a file made in it", lambda: _made_in(mnt / "fresh"))
        misses = [f"{case}{i}" for i in range(10) for case in ("miss", "MISS")] + ["HAVE0"]
        os.listdir(mnt / "listed")
        measure(
            server,
            "20 misses and 1 case variant, listed dir",
            lambda: _probe(mnt / "listed", misses[:-1], found=misses[-1]),
        )
        measure(server, "the same, again", lambda: _probe(mnt / "listed", misses[:-1]), 1)
        measure(server, "20 misses, unlisted dir", lambda: _probe(mnt / "unlisted", misses[:-1]))
        measure(server, "the same, again", lambda: _probe(mnt / "unlisted", misses[:-1]))
        measure(server, "create+close in the listed dir", lambda: _create(mnt / "listed" / "n"))
        n = args.entries
        measure(
            server,
            f"ls -l of {n} entries",
            lambda: [os.lstat(e) for e in os.scandir(mnt / "big")],
        )
        print(f"\nserver fids after the listing: {server.total()['fids']}")


if __name__ == "__main__":
    main()
