"""Where volfs makes its host calls (volfs.hostio): inline or in a worker thread, by rule."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ninep.backend import File, SetAttr
from ninep.constants import OpenFlag, SetattrMask
from ninep.watch import UNCOVERED_FILESYSTEMS, filesystem_type
from volfs.hostio import INLINE_FREE_MAX, INLINE_LIST_MAX, HostCalls, cached

MIB = 1 << 20
HAS_CACHESTAT = tuple(map(int, os.uname().release.split(".")[:2])) >= (6, 5)


def dropped(path: Path) -> int:
    """A descriptor of file `path`, its pages written and dropped from the page cache, that
    reads no more than asked (no readahead)."""
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    return fd


@pytest.mark.skipif(not HAS_CACHESTAT, reason="cachestat needs Linux 6.5")
def test_cached_is_what_the_page_cache_holds(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(MIB + 100))
    fd = dropped(path)
    try:
        if cached(fd, 0, MIB):
            pytest.skip("this filesystem keeps its pages (tmpfs)")
        os.pread(fd, MIB // 2, 0)
        assert cached(fd, 0, MIB // 2)
        assert cached(fd, 4096, 10)
        assert not cached(fd, 0, MIB)  # the second half is not read yet
        os.pread(fd, MIB, MIB // 2)
        assert cached(fd, 0, 2 * MIB)  # the range past the end counts for nothing
        assert cached(fd, 5 * MIB, MIB)  # all of it past the end
    finally:
        os.close(fd)


async def test_calls_run_inline_only_when_cheap_on_a_local_filesystem(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_PATH)
    try:
        calls = HostCalls.of(fd)
        assert calls.local == (filesystem_type(fd) not in UNCOVERED_FILESYSTEMS)
    finally:
        os.close(fd)
    here = threading.get_ident()
    local, remote = HostCalls(local=True), HostCalls(local=False)
    assert await local.run(True, threading.get_ident) == here
    assert await local.run(False, threading.get_ident) != here
    assert await remote.run(True, threading.get_ident) != here


async def read_through(root: File, name: str, count: int) -> bytes:
    f = await root.walk(name)
    h = await f.open(int(OpenFlag.RDONLY))
    try:
        return await h.read(0, count)
    finally:
        await h.close()
        await f.close()


async def test_a_read_is_the_file_cached_or_not(root: File, export_dir: Path) -> None:
    data = os.urandom(2 * MIB)
    (export_dir / "data.bin").write_bytes(data)
    os.close(dropped(export_dir / "data.bin"))
    assert await read_through(root, "data.bin", MIB) == data[:MIB]  # from the disk
    assert await read_through(root, "data.bin", MIB) == data[:MIB]  # from the page cache
    assert await read_through(root, "data.bin", 3 * MIB) == data  # short at the end


@pytest.mark.parametrize("size", [10, INLINE_FREE_MAX + 1])
async def test_truncate_and_unlink_either_side_of_the_inline_bound(
    root: File, export_dir: Path, size: int
) -> None:
    host = export_dir / "f"
    for shrink in ("setattr", "open"):
        host.write_bytes(b"x" * size)
        f = await root.walk("f")
        if shrink == "setattr":
            await f.setattr(SetAttr(valid=SetattrMask.SIZE, size=1))
        else:
            await (await f.open(int(OpenFlag.RDWR | OpenFlag.TRUNC))).close()
        await f.close()
        assert host.stat().st_size == (1 if shrink == "setattr" else 0)
    host.write_bytes(b"x" * size)
    await root.unlinkat("f", 0)
    assert not host.exists()


@pytest.mark.parametrize("count", [3, 2000])
async def test_a_listing_either_side_of_the_inline_bound(
    root: File, export_dir: Path, count: int
) -> None:
    d = export_dir / "d"
    d.mkdir()
    for i in range(count):
        (d / f"entry-{i:05d}.txt").touch()
    assert (d.stat().st_size <= INLINE_LIST_MAX) == (count == 3)
    f = await root.walk("d")
    h = await f.open(int(OpenFlag.RDONLY | OpenFlag.DIRECTORY))
    try:
        names = {e.name for e in await h.readdir(0)}
    finally:
        await h.close()
        await f.close()
    assert names == {".", "..", *(f"entry-{i:05d}.txt" for i in range(count))}
