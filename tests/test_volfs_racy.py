"""What the export keeps of what it read (stored metadata, the case flag), and the racy rule.

A change made on the host behind the server's back is seen by the next request
that stats the object: through its ctime, and, where the change left the
ctime as it was (the same timestamp tick), because a value read within a tick
of its ctime is read again (`volfs.racy`). The host filesystem of the racy
tests keeps whole seconds (ext4 with 128-byte inodes, on a loop device), so
a change in the same second as the last one leaves the ctime unchanged.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from ninep.client import Client, connect
from ninep.constants import OpenFlag
from volfs import metadata
from volfs.caseflag import HOST_XATTR
from volfs.export import open_export
from volfs.racy import Memo

from .conftest import serving

ATTEMPTS = 5  # files tried until a rewrite lands in the second of the one before it


def _stat_with(ino: int, ctime_ns: int) -> os.stat_result:
    fields = [0] * 10 + [0.0] * 3 + [0] * 3  # the 10 ints, float times, ns times
    fields[stat.ST_INO], fields[15] = ino, ctime_ns
    return os.stat_result(fields)


def test_a_memo_recalls_only_what_was_read_under_a_settled_stamp() -> None:
    memo: Memo[int] = Memo()
    reads: list[int] = []

    def read() -> int:
        reads.append(len(reads))
        return len(reads)

    old = 10**18  # a ctime long past: settled
    assert memo.recall(_stat_with(7, old), read) == 1
    assert memo.recall(_stat_with(7, old), read) == 1  # kept
    assert memo.recall(_stat_with(7, old + 1), read) == 2  # a new ctime: read again
    assert memo.recall(_stat_with(8, old + 1), read) == 3  # another inode: read again
    recent = (time.time_ns() // 10**9 + 3600) * 10**9  # whole seconds, to come: racy
    assert memo.recall(_stat_with(8, recent), read) == 4
    assert memo.recall(_stat_with(8, recent), read) == 5  # racy: read again at every use
    assert len(reads) == 5


@pytest.fixture
def whole_seconds_fs(tmp_path: Path) -> Iterator[Path]:
    """A directory on an ext4 filesystem that stores whole seconds, mounted for the test."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("needs root and mkfs.ext4 to mount a loop filesystem")
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.decode()}")
    if subprocess.run(["mount", "-o", "loop", str(image), str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a loop device here")
    try:
        export = mnt / "export"
        export.mkdir()
        assert os.stat(export).st_ctime_ns % 10**9 == 0, "the filesystem keeps whole seconds"
        yield export
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
async def client(whole_seconds_fs: Path, tmp_path: Path) -> AsyncIterator[Client]:
    """A client of `whole_seconds_fs` exported with metadata by a server on a unix socket."""
    export = open_export(str(whole_seconds_fs), metadata=True)
    try:
        async with serving(export, "unix", tmp_path) as address, connect(address) as c:
            yield c
    finally:
        export.close()


def _same_ctime(path: Path, change: Callable[[], None]) -> bool:
    """Make `change` to `path` on the host; whether its ctime stayed the same."""
    before = os.stat(path).st_ctime_ns
    change()
    return os.stat(path).st_ctime_ns == before


def _rewrite_mode(path: Path, mode: int) -> bool:
    """Store `mode` on `path` from the host; whether its ctime stayed the same."""
    value = metadata.encode("mode", mode)
    return _same_ctime(path, partial(os.setxattr, path, metadata.XATTRS["mode"], value))


async def _in_the_same_tick(attempt: Callable[[int], Awaitable[bool]]) -> None:
    """Run `attempt(i)` (which checks what it must, and says whether its host change left
    the ctime unchanged) for i = 0, 1, ... until one did: the racy case, met."""
    for i in range(ATTEMPTS):
        if await attempt(i):
            return
    pytest.fail(f"each of {ATTEMPTS} host changes moved the ctime: the racy case was not met")


async def test_a_mode_rewritten_within_the_tick_is_seen_by_the_next_getattr(
    client: Client, whole_seconds_fs: Path
) -> None:
    """The mode attribute rewritten on the host right after a getattr, in the same second
    (the ctime unchanged): the next getattr shows the new mode, and again the one after."""
    root = await client.attach("C")

    async def attempt(i: int) -> bool:
        async with await root.walk() as fid:
            await fid.create(f"f{i}", int(OpenFlag.RDWR), 0o644)
            assert (await fid.getattr()).mode == stat.S_IFREG | 0o644
            unchanged = _rewrite_mode(whole_seconds_fs / f"f{i}", stat.S_IFREG | 0o600)
            assert (await fid.getattr()).mode == stat.S_IFREG | 0o600
            assert (await fid.getattr()).mode == stat.S_IFREG | 0o600
        return unchanged

    await _in_the_same_tick(attempt)


async def test_a_mode_rewritten_after_a_walk_is_seen_by_the_getattr(
    client: Client, whole_seconds_fs: Path
) -> None:
    """A walk reads the stored metadata (for the qid); the host rewrites it in the same
    second; the getattr that follows the walk shows the new mode, not the walk's."""
    root = await client.attach("C")

    async def attempt(i: int) -> bool:
        path = whole_seconds_fs / f"g{i}"
        path.write_bytes(b"")
        metadata.store(str(path), mode=stat.S_IFREG | 0o644, uid=1000, gid=1000)
        async with await root.walk(f"g{i}") as fid:
            unchanged = _rewrite_mode(path, stat.S_IFREG | 0o640)
            assert (await fid.getattr()).mode == stat.S_IFREG | 0o640
        return unchanged

    await _in_the_same_tick(attempt)


async def test_a_case_flag_set_within_the_tick_is_seen_by_the_next_walk(
    client: Client, whole_seconds_fs: Path
) -> None:
    """A directory's case flag, read by a walk to a case variant, set on the host in the
    same second: the next walk to a case variant fails, as in a case-sensitive directory."""
    root = await client.attach("C")

    async def attempt(i: int) -> bool:
        top = whole_seconds_fs / f"d{i}"
        top.mkdir()
        (top / "name").write_bytes(b"")
        async with await root.walk(f"d{i}") as directory:  # its entry, and its memo, live on
            await (await directory.walk("NAME")).clunk()
            unchanged = _same_ctime(top, partial(os.setxattr, top, HOST_XATTR, b"1"))
            with pytest.raises(FileNotFoundError):
                await directory.walk("NAME")
        return unchanged

    await _in_the_same_tick(attempt)
