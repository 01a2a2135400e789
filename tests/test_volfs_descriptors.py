"""The bounded cache of host descriptors (volfs/descriptors.py): fids outlive their descriptors.

Each test exports a directory with a cache of a few descriptors and evicts an
entry for real, by holding as many other entries as the cache holds; the
evicted entry is then resolved again from its parent and name, or refused.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from ninep.backend import File, User
from ninep.client import connect
from ninep.constants import GetattrMask, OpenFlag
from ninep.server import Server
from ninep.transport import Address
from volfs.descriptors import Descriptors, capacity_for
from volfs.export import VolExport

from .test_volfs import Outside, fails

ROOT = User("root", 0)
CAPACITY = 4
RDONLY = int(OpenFlag.RDONLY)


@pytest.fixture
def cache() -> Descriptors:
    return Descriptors(CAPACITY)


@pytest.fixture
async def root(export_dir: Path, cache: Descriptors) -> AsyncIterator[File]:
    """The root of `export_dir` exported with a cache of CAPACITY descriptors."""
    ex = VolExport(str(export_dir), descriptors=cache)
    node = await ex.attach("", ROOT)
    yield node
    await node.close()
    ex.close()


async def evict(root: File, export_dir: Path, cache: Descriptors) -> None:
    """Fill the cache with other entries, held and used, and let them go."""
    fillers = export_dir / "fillers"
    fillers.mkdir(exist_ok=True)
    held = []
    for i in range(CAPACITY):
        (fillers / str(i)).touch()
        held.append(await root.walk("fillers"))
        held.append(await held[-1].walk(str(i)))
        await held[-1].getattr(GetattrMask.BASIC)
    for node in held:
        await node.close()
    assert cache.stats()["cached"] == 0  # what was held is closed; the rest was evicted


async def read_all(f: File) -> bytes:
    h = await f.open(RDONLY)
    try:
        return await h.read(0, 1 << 16)
    finally:
        await h.close()


async def test_an_evicted_fid_follows_renames_through_the_server(
    root: File, export_dir: Path, cache: Descriptors
) -> None:
    (export_dir / "d" / "sub").mkdir(parents=True)
    (export_dir / "d" / "sub" / "f").write_bytes(b"data")
    d = await root.walk("d")
    sub = await d.walk("sub")
    f = await sub.walk("f")
    other = await sub.walk("f")  # a second fid on the same name shares the entry
    qid = f.qid
    await evict(root, export_dir, cache)
    await sub.rename(root, "moved")  # Trename: by fid
    await evict(root, export_dir, cache)
    await root.renameat("moved", d, "back")  # Trenameat: by name, the fid is not named
    await evict(root, export_dir, cache)
    await other.rename(d, "g")
    await evict(root, export_dir, cache)
    resolved = cache.resolutions
    assert (await f.getattr(GetattrMask.BASIC)).qid == qid
    assert await read_all(f) == b"data"
    assert cache.resolutions > resolved
    assert (export_dir / "d" / "g").read_bytes() == b"data"
    await f.remove()  # its parent and name are known: d/g
    assert os.listdir(export_dir / "d" / "back") == []
    for x in (d, sub, f, other):
        await x.close()


async def test_a_deep_chain_is_resolved_again(
    root: File, export_dir: Path, cache: Descriptors
) -> None:
    depth = 300  # far deeper than the cache, and than Python's recursion would like
    path = export_dir.joinpath(*["d"] * depth)
    path.mkdir(parents=True)
    node = await root.clone()
    for _ in range(depth):
        nxt = await node.walk("d")
        await node.close()
        node = nxt
    await evict(root, export_dir, cache)
    resolved = cache.resolutions
    assert stat.S_ISDIR((await node.getattr(GetattrMask.BASIC)).mode)
    assert cache.resolutions - resolved == depth
    assert cache.stats()["cached"] <= CAPACITY
    await node.close()


@pytest.mark.parametrize("how", ["recreated", "replaced"])
async def test_a_file_replaced_on_the_host_while_evicted_is_stale(
    root: File, export_dir: Path, cache: Descriptors, how: str
) -> None:
    (export_dir / "f").write_bytes(b"mine")
    f = await root.walk("f")
    ino = os.stat(export_dir / "f").st_ino
    await evict(root, export_dir, cache)
    if how == "recreated":  # ext4 gives the freed inode number to the next file at once
        os.unlink(export_dir / "f")
        (export_dir / "f").write_bytes(b"another")
    else:
        (export_dir / "new").write_bytes(b"another")
        os.replace(export_dir / "new", export_dir / "f")
    print("same inode number:", os.stat(export_dir / "f").st_ino == ino)
    for call in (f.getattr(GetattrMask.BASIC), read_all(f), f.remove()):
        with pytest.raises(OSError) as info:
            await call
        assert info.value.errno in (errno.ESTALE, errno.ENOENT)
    assert (export_dir / "f").read_bytes() == b"another"
    await f.close()


async def test_a_symlink_swapped_in_for_an_evicted_directory_is_not_followed(
    root: File, export_dir: Path, cache: Descriptors, tmp_path: Path
) -> None:
    outside = Outside(tmp_path / "outside")
    (export_dir / "d" / "sub").mkdir(parents=True)
    (export_dir / "d" / "secret").write_bytes(b"mine")
    d = await root.walk("d")
    inner = await d.walk("secret")  # outside has a "secret" and a "sub" too
    await evict(root, export_dir, cache)
    os.rename(export_dir / "d", export_dir / "d.old")
    (export_dir / "d").symlink_to(outside.path)
    for call in (
        inner.getattr(GetattrMask.BASIC),
        read_all(inner),
        d.walk("sub"),
        d.open(RDONLY),
        d.create("planted", int(OpenFlag.RDWR), 0o644, 0),
        d.mkdir("planted", 0o755, 0),
        d.unlinkat("secret", 0),
        root.renameat("d", d, "x"),
    ):
        with fails(errno.ESTALE):
            await call
    outside.assert_untouched()
    await d.close()
    await inner.close()


async def test_a_fid_cached_follows_its_object_moved_on_the_host(
    root: File, export_dir: Path
) -> None:
    (export_dir / "f").write_bytes(b"mine")
    f = await root.walk("f")
    os.rename(export_dir / "f", export_dir / "g")
    assert await read_all(f) == b"mine"
    await f.close()


async def test_open_handles_share_the_capacity(
    root: File, export_dir: Path, cache: Descriptors
) -> None:
    for i in range(CAPACITY + 1):
        (export_dir / str(i)).write_bytes(b"x")
    files = [await root.walk(str(i)) for i in range(CAPACITY + 1)]
    handles = [await f.open(RDONLY) for f in files[:CAPACITY]]
    assert cache.stats()["handles"] == CAPACITY
    assert cache.stats()["cached"] == 0  # the handles took the room of every cached entry
    with fails(errno.ENFILE):
        await files[CAPACITY].open(RDONLY)
    await handles.pop().close()
    handles.append(await files[CAPACITY].open(RDONLY))
    assert [await h.read(0, 1) for h in handles] == [b"x"] * CAPACITY
    for h in handles:
        await h.close()
    for f in files:
        await f.close()
    assert cache.stats()["handles"] == 0


def test_the_capacity_leaves_a_reserve() -> None:
    assert capacity_for(20_000) == 15_000
    assert capacity_for(256) == 192
    assert capacity_for(100) == 36
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert Descriptors().capacity == capacity_for(limit)


async def test_the_cache_figures_are_in_the_server_statistics(
    export_dir: Path, cache: Descriptors
) -> None:
    n = 3 * CAPACITY
    for i in range(n):
        (export_dir / str(i)).write_bytes(b"x")
    server = Server({"C": VolExport(str(export_dir), descriptors=cache)})
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve, [Address("tcp", host="127.0.0.1", port=0)])
        async with connect(str(bound[0])) as client:
            root = await client.attach("C")
            fids = [await root.walk(str(i)) for i in range(n)]  # held: more fids than descriptors
            for fid in fids * 2:
                await fid.getattr()
            figures = server.stats()["exports"]["C"]["descriptor_cache"]
        nursery.cancel_scope.cancel()
    assert figures["capacity"] == CAPACITY and figures["cached"] <= CAPACITY
    assert figures["evictions"] >= n - CAPACITY and figures["resolutions"] >= n
