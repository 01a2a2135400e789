"""The floor of a pyfuse3 design: a FUSE filesystem that does nothing but answer from a dict.

`python -m benchmarks.floorfs BACKING MOUNTPOINT [--ready-fd N]` copies the tree
`BACKING` into memory, mounts it on `MOUNTPOINT` and serves it until SIGTERM.
Every operation is a dict lookup or update in the event loop: what one FUSE
request costs pyfuse3 and trio, with no network, no server and no host call
(ninep-bench's `floor` target, the `ops` workload only).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import time
from collections.abc import Sequence

import pyfuse3
import trio

ROOT = pyfuse3.ROOT_INODE


class _Node:
    __slots__ = ("children", "data", "mode", "mtime_ns", "nlink")

    def __init__(self, mode: int, data: bytes = b"") -> None:
        self.mode = mode
        self.data = bytearray(data)
        self.children: dict[bytes, int] = {}
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.mtime_ns = time.time_ns()


class FloorFs(pyfuse3.Operations):
    """A tree held in dicts: inode -> node, and each directory's name -> inode."""

    def __init__(self, backing: str) -> None:
        super().__init__()
        self._nodes = {ROOT: _Node(stat.S_IFDIR | 0o755)}
        self._next = ROOT + 1
        self._load(backing, ROOT)

    def _add(self, parent: int, name: bytes, node: _Node) -> int:
        ino, self._next = self._next, self._next + 1
        self._nodes[ino] = node
        self._nodes[parent].children[name] = ino
        return ino

    def _load(self, path: str, parent: int) -> None:
        with os.scandir(path) as entries:
            for e in entries:
                st = e.stat(follow_symlinks=False)
                if e.is_dir(follow_symlinks=False):
                    self._load(e.path, self._add(parent, os.fsencode(e.name), _Node(st.st_mode)))
                elif e.is_file(follow_symlinks=False):
                    with open(e.path, "rb") as f:
                        self._add(parent, os.fsencode(e.name), _Node(st.st_mode, f.read()))

    def _entry(self, ino: int) -> pyfuse3.EntryAttributes:
        node = self._nodes[ino]
        e = pyfuse3.EntryAttributes()
        e.st_ino, e.st_mode, e.st_nlink, e.st_size = ino, node.mode, node.nlink, len(node.data)
        e.st_uid, e.st_gid, e.st_blksize = os.getuid(), os.getgid(), 4096
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = node.mtime_ns
        e.attr_timeout = e.entry_timeout = 1.0
        return e

    def _child(self, parent: int, name: bytes) -> int:
        ino = self._nodes[parent].children.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return ino

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._entry(self._child(parent_inode, name))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(inode)

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self._nodes[inode]
        if fields.update_size:
            del node.data[attr.st_size :]
            node.data.extend(bytes(attr.st_size - len(node.data)))
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | attr.st_mode & 0o7777
        return self._entry(inode)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode)

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        ino = self._add(parent_inode, name, _Node(stat.S_IFREG | mode & 0o7777))
        return pyfuse3.FileInfo(fh=ino), self._entry(ino)

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self._entry(self._add(parent_inode, name, _Node(stat.S_IFDIR | mode & 0o7777)))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return bytes(self._nodes[fh].data[off : off + size])

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self._nodes[fh].data[off : off + len(buf)] = buf
        return len(buf)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._child(parent_inode, name)
        del self._nodes[parent_inode].children[name]

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        if self._nodes[self._child(parent_inode, name)].children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del self._nodes[parent_inode].children[name]

    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        ino = self._child(parent_inode_old, name_old)
        del self._nodes[parent_inode_old].children[name_old]
        self._nodes[parent_inode_new].children[name_new] = ino

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        names = sorted(self._nodes[fh].children.items())
        for i, (name, ino) in enumerate(names[start_id:], start_id + 1):
            if not pyfuse3.readdir_reply(token, name, self._entry(ino), i):
                return

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        pass  # nodes stay: a name removed leaves its node, which costs nothing here


async def _serve(fs: FloorFs, mountpoint: str, ready_fd: int | None) -> None:
    pyfuse3.init(fs, mountpoint, {"fsname=floor", "subtype=floor", "default_permissions"})
    if ready_fd is not None:
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_terminate_on_signal)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)


async def _terminate_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            pyfuse3.terminate()
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing")
    parser.add_argument("mountpoint")
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args()
    trio.run(_serve, FloorFs(args.backing), args.mountpoint, args.ready_fd)


if __name__ == "__main__":
    main()
