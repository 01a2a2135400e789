"""What an evicted descriptor costs: Tgetattr on a cached entry vs one resolved again.

Called on volfs directly (no protocol), in a temporary directory:

    .venv/bin/python scripts/descriptor_cost.py [DIR]

- hit: the entry's descriptor is cached;
- resolved, depth d: the entry and its d-1 ancestors below the root were
  evicted (a cache of one descriptor, two fids used in turn), so each call
  opens d names again (openat O_PATH|O_NOFOLLOW, fstat, file handle).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import trio

from ninep.backend import File, User
from ninep.constants import GetattrMask
from volfs.descriptors import Descriptors
from volfs.export import VolExport

ROUNDS = 20_000


async def _walk(root: File, names: list[str]) -> File:
    node = await root.clone()
    for name in names:
        nxt = await node.walk(name)
        await node.close()
        node = nxt
    return node


async def _per_call(nodes: list[File], rounds: int) -> float:
    """Microseconds per getattr, using `nodes` in turn."""
    start = time.perf_counter()
    for i in range(rounds):
        await nodes[i % len(nodes)].getattr(GetattrMask.BASIC)
    return (time.perf_counter() - start) / rounds * 1e6


async def measure(top: Path) -> list[tuple[str, float, int]]:
    """(case, µs per getattr, resolutions per call) for each case."""
    rows = []
    for depth in (0, 1, 5):
        cache = Descriptors(capacity=1 if depth else 16)
        ex = VolExport(str(top), descriptors=cache)
        root = await ex.attach("", User("root", 0))
        nodes = [await _walk(root, [*["d"] * max(depth - 1, 0), name]) for name in ("a", "b")]
        before = cache.resolutions
        us = await _per_call(nodes, ROUNDS)
        name = "hit" if depth == 0 else f"resolved, depth {depth}"
        rows.append((name, us, round((cache.resolutions - before) / ROUNDS)))
        for node in [*nodes, root]:
            await node.close()
        ex.close()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        top = Path(tmp)
        deep = top.joinpath(*["d"] * 4)
        deep.mkdir(parents=True)
        for where in (top, deep):
            (where / "a").write_bytes(b"")
            (where / "b").write_bytes(b"")
        rows = trio.run(measure, top)
    print(f"{'getattr':<20} {'µs/call':>8} {'resolutions/call':>17}")
    for name, us, resolutions in rows:
        print(f"{name:<20} {us:8.1f} {resolutions:17d}")


if __name__ == "__main__":
    main()
