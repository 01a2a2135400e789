"""drvfs operations called directly (no kernel), against a real server in this process.

What a FUSE mount cannot show deterministically: how many fids the client
holds after lookups and forgets, the paths nodes keep for reconnection, and the
keep_cache decision. The server runs in the test's trio loop, over a real socket.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pyfuse3
import pytest
import trio

from drvfs.fs import DrvFs
from drvfs.inodes import ROOT
from drvfs.options import MountOptions
from drvfs.remote import Attachment, Remote
from ninep.server import Server
from ninep.transport import Address
from volfs.export import open_export

CTX = pyfuse3.RequestContext()


class LocalServer:
    """A server for `export` on a unix socket that a test can stop and start again."""

    def __init__(self, export: Path, socket_path: Path) -> None:
        self.export = export
        self.address = Address("unix", path=str(socket_path))
        self._scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        self._scope = await nursery.start(self._run)

    async def _run(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            server = Server({"C": open_export(str(self.export))})
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, [self.address])
                task_status.started(scope)

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        assert self._scope is not None
        self._scope.cancel()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    return path


@asynccontextmanager
async def connected(address: str) -> AsyncIterator[tuple[Remote, Attachment]]:
    async with trio.open_nursery() as nursery:
        remote = Remote(nursery, address, "C", os.getuid(), MountOptions().msize)
        attachment = await remote.attachment()
        yield remote, attachment
        remote.close()


def fuse_errno(e: pytest.ExceptionInfo[pyfuse3.FUSEError]) -> int:
    return e.value.errno


async def test_lookups_and_forgets_hold_and_release_fids(
    server_address: str, export_dir: Path
) -> None:
    for i in range(10):
        (export_dir / f"f{i}").write_text(str(i))
    async with connected(server_address) as (remote, attachment):
        base = attachment.client.fids_in_use
        async with trio.open_nursery() as background:
            fs = DrvFs(remote, attachment, MountOptions(), background)
            inos = [(await fs.lookup(ROOT, f"f{i}".encode(), CTX)).st_ino for i in range(10)]
            for i in range(10):  # the kernel counts every lookup; drvfs keeps one fid per inode
                assert (await fs.lookup(ROOT, f"f{i}".encode(), CTX)).st_ino == inos[i]
        assert attachment.client.fids_in_use == base + 10
        assert inos == [os.stat(export_dir / f"f{i}").st_ino for i in range(10)]
        async with trio.open_nursery() as background:
            fs.fids.nursery = background
            await fs.forget([(ino, 1) for ino in inos])  # one lookup left each
        assert attachment.client.fids_in_use == base + 10
        async with trio.open_nursery() as background:
            fs.fids.nursery = background
            await fs.forget([(ino, 1) for ino in inos[:6]])
        assert attachment.client.fids_in_use == base + 4
        assert len(fs.inodes) == 1 + 4


async def test_create_write_read_release_forget(server_address: str, export_dir: Path) -> None:
    async with connected(server_address) as (remote, attachment):
        base = attachment.client.fids_in_use
        async with trio.open_nursery() as background:
            fs = DrvFs(remote, attachment, MountOptions(), background)
            info, attrs = await fs.create(ROOT, b"new", 0o100640, os.O_RDWR | os.O_CREAT, CTX)
            assert await fs.write(info.fh, 0, b"hello") == 5
            assert await fs.read(info.fh, 1, 100) == b"ello"
            await fs.release(info.fh)
            assert attrs.st_ino == os.stat(export_dir / "new").st_ino
            await fs.forget([(attrs.st_ino, 1)])
        assert (export_dir / "new").read_bytes() == b"hello"
        assert attachment.client.fids_in_use == base


async def test_server_errors_keep_their_errno(server_address: str, export_dir: Path) -> None:
    (export_dir / "dir").mkdir()
    (export_dir / "dir" / "f").write_text("")
    async with connected(server_address) as (remote, attachment), trio.open_nursery() as bg:
        fs = DrvFs(remote, attachment, MountOptions(), bg)
        with pytest.raises(pyfuse3.FUSEError) as e:
            await fs.lookup(ROOT, b"missing", CTX)
        assert fuse_errno(e) == errno.ENOENT
        with pytest.raises(pyfuse3.FUSEError) as e:
            await fs.mkdir(ROOT, b"dir", 0o755, CTX)
        assert fuse_errno(e) == errno.EEXIST
        with pytest.raises(pyfuse3.FUSEError) as e:
            await fs.rmdir(ROOT, b"dir", CTX)
        assert fuse_errno(e) == errno.ENOTEMPTY


async def test_renames_are_checked_and_followed(server_address: str, export_dir: Path) -> None:
    (export_dir / "a").write_text("A")
    (export_dir / "b").write_text("B")
    async with connected(server_address) as (remote, attachment):
        async with trio.open_nursery() as bg:
            fs = DrvFs(remote, attachment, MountOptions(), bg)
            with pytest.raises(pyfuse3.FUSEError) as e:
                await fs.rename(ROOT, b"a", ROOT, b"b", pyfuse3.RENAME_EXCHANGE, CTX)
            assert fuse_errno(e) == errno.EINVAL
            with pytest.raises(pyfuse3.FUSEError) as e:
                await fs.rename(ROOT, b"a", ROOT, b"b", pyfuse3.RENAME_NOREPLACE, CTX)
            assert fuse_errno(e) == errno.EEXIST
            node = fs.inodes.get((await fs.lookup(ROOT, b"a", CTX)).st_ino)
            await fs.rename(ROOT, b"a", ROOT, b"c", pyfuse3.RENAME_NOREPLACE, CTX)
        # the new path is recorded in the background: done once the nursery is
        assert node is not None and node.path() == ["c"]
        assert (export_dir / "c").read_text() == "A" and (export_dir / "b").read_text() == "B"


async def test_keep_cache_only_while_mtime_and_size_are_unchanged(
    server_address: str, export_dir: Path
) -> None:
    path = export_dir / "cached"
    path.write_text("one")
    async with connected(server_address) as (remote, attachment), trio.open_nursery() as bg:
        fs = DrvFs(remote, attachment, MountOptions(), bg)
        ino = (await fs.lookup(ROOT, b"cached", CTX)).st_ino

        async def opened() -> bool:
            info = await fs.open(ino, os.O_RDONLY, CTX)
            await fs.release(info.fh)
            return bool(info.keep_cache)

        assert not await opened()  # nothing known yet
        assert await opened()
        path.write_text("two")
        os.utime(path, ns=(0, 123))
        assert not await opened()
        assert await opened()
        info = await fs.open(ino, os.O_WRONLY, CTX)
        await fs.write(info.fh, 0, b"TWO")
        await fs.release(info.fh)  # what this mount wrote is what its cache holds
        assert await opened()
        info = await fs.open(ino, os.O_WRONLY | os.O_TRUNC, CTX)
        assert not info.keep_cache
        await fs.release(info.fh)


async def test_reconnection_walks_to_nodes_again_by_their_paths(
    tmp_path: Path, export: Path
) -> None:
    (export / "dir" / "sub").mkdir(parents=True)
    (export / "dir" / "sub" / "f").write_bytes(b"0123456789")
    (export / "other").write_text("x")
    server = LocalServer(export, tmp_path / "9p.sock")
    async with trio.open_nursery() as nursery:
        await server.start(nursery)
        async with connected(str(server.address)) as (remote, attachment):
            async with trio.open_nursery() as bg:
                fs = DrvFs(remote, attachment, MountOptions(), bg)
                d = (await fs.lookup(ROOT, b"dir", CTX)).st_ino
                sub = (await fs.lookup(d, b"sub", CTX)).st_ino
                f = (await fs.lookup(sub, b"f", CTX)).st_ino
                other = (await fs.lookup(ROOT, b"other", CTX)).st_ino
                info = await fs.open(f, os.O_RDWR, CTX)
                assert await fs.read(info.fh, 0, 4) == b"0123"
            async with trio.open_nursery() as bg:
                fs.fids.nursery = bg
                await fs.rename(ROOT, b"dir", ROOT, b"moved", 0, CTX)  # path followed in bg
            async with trio.open_nursery() as bg:
                fs.fids.nursery = bg
                server.stop()  # every request now fails at once, with ENOTCONN
                for attempt in (fs.getattr(f, CTX), fs.read(info.fh, 4, 2), fs.statfs(CTX)):
                    with pytest.raises(pyfuse3.FUSEError) as e:
                        await attempt
                    assert fuse_errno(e) == errno.ENOTCONN
                await server.start(nursery)

                assert (await fs.getattr(f, CTX)).st_size == 10  # walked as moved/sub/f
                assert await fs.read(info.fh, 4, 2) == b"45"  # the open file, reopened
                assert await fs.write(info.fh, 0, b"ab") == 2
                await fs.release(info.fh)
                assert (export / "moved" / "sub" / "f").read_bytes() == b"ab23456789"

                os.rename(export / "other", export / "old")  # kept: its number is not reused
                (export / "other").write_text("another file, behind drvfs's back")
                remote.close()
                with pytest.raises(pyfuse3.FUSEError) as e:
                    await fs.getattr(other, CTX)
                assert fuse_errno(e) == errno.ESTALE
                assert remote.connections == 3
        server.stop()
