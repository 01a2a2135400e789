"""A FUSE filesystem that tells which pyfuse3 worker task answered each lookup, for the
tests of pyfuse3's dispatch (third_party/pyfuse3/fast-dispatch.patch).

    python -m tests.taskfs SOURCE MOUNTPOINT

mounts an empty-looking directory on MOUNTPOINT (SOURCE is not used) and serves until
SIGTERM or SIGINT. Every name is a file whose size is the number of the task that looked it
up or asked its attributes (1 for the first task seen, 2 for the next...), looked up again
at each stat (entry timeout 0); looking up `checkpoint` passes through trio's scheduler
once. A read of any file waits until `release` is looked up, then answers the number of its
task (in decimal); `waiting` says (size 1) whether a read is waiting. (A read, not a
lookup, waits: the kernel serializes the lookups in a directory.)
`mounted_taskfs()` runs it as a subprocess for a test.
"""

from __future__ import annotations

import functools
import os
import stat
import sys

import pyfuse3
import trio

from .passthrough_fs import main_of, mounted_fs


class TaskFs(pyfuse3.Operations):
    def __init__(self, source: str) -> None:
        super().__init__()
        self._tasks: dict[trio.lowlevel.Task, int] = {}
        self._released = trio.Event()
        self._waiting = False
        self._next_inode = pyfuse3.ROOT_INODE + 1

    def _entry(self, inode: int, mode: int, size: int) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino, e.st_mode, e.st_nlink, e.st_size = inode, mode, 1, size
        e.st_uid, e.st_gid, e.st_blksize = os.getuid(), os.getgid(), 4096
        e.entry_timeout = 0
        return e

    def _task(self) -> int:
        return self._tasks.setdefault(trio.lowlevel.current_task(), len(self._tasks) + 1)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if inode == pyfuse3.ROOT_INODE:
            return self._entry(inode, stat.S_IFDIR | 0o755, 0)
        return self._entry(inode, stat.S_IFREG | 0o644, self._task())

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        size = None  # else the number of the task
        if name == b"release":
            self._released.set()
        elif name == b"waiting":
            size = int(self._waiting)
        elif name == b"checkpoint":
            await trio.lowlevel.checkpoint()
        self._next_inode += 1
        size = self._task() if size is None else size
        return self._entry(self._next_inode, stat.S_IFREG | 0o644, size)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if off:
            return b""
        self._waiting = True
        await self._released.wait()
        self._waiting = False
        return str(self._task()).encode()


mounted_taskfs = functools.partial(mounted_fs, "tests.taskfs")

if __name__ == "__main__":
    sys.exit(main_of(TaskFs, "taskfs")(sys.argv[1:]))
