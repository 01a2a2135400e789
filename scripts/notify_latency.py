"""The delay from a change made on the host to its visibility through a drvfs mount that
caches for long in covered directories (change notification, issue 16).

Mounts a fresh export with drvfs (the test harness), caches a file's attributes
and names in a covered directory, then, round after round, changes them on the
host and polls the mount (a stat served by the kernel's cache, so the poll
costs no request) until the change shows: a write (new size: Rnotify DATA,
the attributes dropped) and an unlink (REMOVED, the name dropped). Prints
p50, p99 and the worst delay of each kind. Needs root and /dev/fuse. Usage
(from the repository):

    .venv/bin/python -m scripts.notify_latency [-n ROUNDS] [-o DRVFS_OPTIONS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.drvfs_harness import drvfs_mount

GIVE_UP = 10.0  # seconds: a change not seen by then is reported as lost


def wait_for(predicate: Callable[[], bool]) -> float:
    """Seconds until `predicate` holds (polled without pause), inf past GIVE_UP."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > GIVE_UP:
            return float("inf")
    return time.perf_counter() - start


def report(kind: str, delays: list[float]) -> None:
    ms = sorted(d * 1000 for d in delays)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"| {kind} | {len(ms)} | {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.2f} |"
        f" {sum(d == float('inf') for d in ms)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", dest="rounds", type=int, default=300)
    parser.add_argument("-o", dest="options", default="")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        drvfs_mount(Path(tmp), args.options) as (mnt, server, _),
    ):
        host, seen = server.export / "d", mnt / "d"
        host.mkdir()
        (host / "f").write_text("")
        time.sleep(0.5)  # the root's coverage learnt (drvfs.notified.ROOT_PROBES)
        os.stat(seen / "f")
        writes, unlinks = [], []
        for i in range(args.rounds):
            size = i % 4096 + 1
            with open(host / "f", "wb") as f:
                f.write(b"x" * size)
            writes.append(wait_for(lambda: os.stat(seen / "f").st_size == size))  # noqa: B023
            name = f"g{i}"
            (host / name).touch()
            os.stat(seen / name)  # the kernel caches the name
            os.unlink(host / name)
            unlinks.append(wait_for(lambda: not os.path.lexists(seen / name)))  # noqa: B023
        print("| change | rounds | p50 ms | p99 ms | max ms | lost |")
        print("|---|---|---|---|---|---|")
        report("write (size seen)", writes)
        report("unlink (name gone)", unlinks)


if __name__ == "__main__":
    main()
