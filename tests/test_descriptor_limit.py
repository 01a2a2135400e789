"""A tree of more entries than the server has descriptors: walked, listed and stat'ed.

The server runs under `prlimit --nofile=LIMIT` (so its descriptor cache holds
`capacity_for(LIMIT)`) and serves its figures (`--stats`); drvfs walks and lists
the tree, and the project's client holds a fid on every entry at once. Every
entry is reached, and the server's descriptors stay under its limit while its
fids outnumber them.
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

from ninep import stats
from ninep.client import Fid, connect
from ninep.constants import GetattrMask
from volfs.descriptors import DescriptorFigures, capacity_for

from .drvfs_harness import ServerProcess, drvfs_mount

LIMIT = 256
DIRS, FILES, SUB_FILES = 16, 40, 20  # 16 x (40 + 1 + 20) + 16 = 992 entries


class LimitedServer(ServerProcess):
    """The server under a descriptor limit of LIMIT, with its figures on a unix socket."""

    @property
    def stats_path(self) -> Path:
        return self.socket_path.with_name("stats.sock")

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={LIMIT}:{LIMIT}", *super().command(),
                "--stats", str(self.stats_path)]  # fmt: skip

    def figures(self) -> stats.Figures:
        return stats.read(str(self.stats_path))


def make_tree(top: Path) -> list[str]:
    """The tree on the host; every entry's path below `top`."""
    paths = []
    for d in range(DIRS):
        sub = top / f"d{d}" / "sub"
        sub.mkdir(parents=True)
        paths += [f"d{d}", f"d{d}/sub"]
        for i in range(FILES):
            (top / f"d{d}" / f"f{i}").write_bytes(b"%d" % i)
            paths.append(f"d{d}/f{i}")
        for i in range(SUB_FILES):
            (sub / f"g{i}").write_bytes(b"")
            paths.append(f"d{d}/sub/g{i}")
    return paths


def assert_bounded(figures: stats.Figures) -> DescriptorFigures:
    """The descriptors under the limit, the cache within its capacity; the cache's figures."""
    total = figures["total"]
    cache: DescriptorFigures = figures["exports"]["C"]["descriptor_cache"]
    print("server figures:", total["descriptors"], "descriptors,", total["fids"], "fids,", cache)
    assert total["descriptor_limit"] == LIMIT
    assert total["descriptors"] < LIMIT
    assert cache["capacity"] == capacity_for(LIMIT)
    assert cache["cached"] + cache["handles"] <= cache["capacity"]
    return cache


def test_a_tree_larger_than_the_descriptor_limit(tmp_path: Path) -> None:
    with drvfs_mount(tmp_path, server_class=LimitedServer) as (mnt, server, _):
        assert isinstance(server, LimitedServer)
        paths = make_tree(server.export)
        assert len(paths) > 3 * LIMIT

        seen = []  # through drvfs: every directory listed, every entry stat'ed
        for where, dirs, files in os.walk(mnt):
            for name in dirs + files:
                path = os.path.join(where, name)
                os.lstat(path)
                seen.append(os.path.relpath(path, mnt))
        assert sorted(seen) == sorted(paths)
        assert (mnt / "d3" / "f7").read_bytes() == b"7"
        after_drvfs = assert_bounded(server.figures())

        async def stat_everything() -> stats.Figures:
            """A fid on every entry at once, each stat'ed twice; the figures meanwhile."""
            async with connect(server.address) as client:
                root = await client.attach("C")
                fids: list[Fid] = [await root.walk(*p.split("/")) for p in paths]
                for _ in range(2):
                    for fid, path in zip(fids, paths, strict=True):
                        attr = await fid.getattr(GetattrMask.BASIC)
                        assert attr.qid.path == os.lstat(server.export / path).st_ino
                return await trio.to_thread.run_sync(server.figures)

        figures = trio.run(stat_everything)
        cache = assert_bounded(figures)
        assert figures["total"]["fids"] > len(paths)
        assert cache["evictions"] - after_drvfs["evictions"] >= len(paths) - LIMIT
        assert cache["resolutions"] - after_drvfs["resolutions"] >= len(paths)
