"""What keeps the kernel's caches true: locks (`drvfs.locks`) and the caches they order,
and the case variants of a changed name (`CaseVariants`).

A lock is how another client's changes are ordered with ours: what the kernel
cached of a file before a lock was granted may be stale, so it is dropped;
with the writeback cache, dirty pages reach the server before an unlock lets
anyone else in.
"""

from __future__ import annotations

import fcntl

import trio

from .inodes import InodeTable
from .kernelcache import drop_entry, drop_inode
from .locks import Key, LockTable, flock_type
from .openfiles import OpenFile
from .resolver import FidResolver


class CoherentLocks:
    """getlk, setlk and flock of open files; the lock table keeps the lock fids."""

    def __init__(self, fids: FidResolver, writeback_cache: bool) -> None:
        self._fids = fids
        self._writeback_cache = writeback_cache
        self._table = LockTable(fids)

    async def getlk(
        self, file: OpenFile, owner: int, lock_type: int, span: tuple[int, int], pid: int
    ) -> tuple[int, int, int, int]:
        """The lock that conflicts with the one `owner` would set: (type, start, length, pid)."""
        opened = await self._fids.opened(file)
        key: Key = (file.node.ino, "posix", owner)
        return await self._table.get(opened, key, lock_type, span, pid)

    async def setlk(
        self,
        file: OpenFile,
        fh: int,
        owner: int,
        lock_type: int,
        span: tuple[int, int],
        pid: int,
        sleep: bool,
    ) -> None:
        """Set or clear a POSIX (or open file description) lock of `owner` on `span`."""
        key: Key = (file.node.ino, "posix", owner)
        await self._set(file, fh, key, lock_type, span, pid, sleep)

    async def flock(self, file: OpenFile, fh: int, owner: int, op: int) -> None:
        """flock(2) operation `op` of `owner`: a whole-file lock apart from POSIX ones."""
        lock_type, wait = flock_type(op)
        key: Key = (file.node.ino, "flock", owner)
        await self._set(file, fh, key, lock_type, (0, 0), 0, wait)

    async def release(self, fh: int) -> None:
        """File handle `fh` is released: unlock what owners hold only through it."""
        await self._table.release(fh)

    async def _set(
        self,
        file: OpenFile,
        fh: int,
        key: Key,
        lock_type: int,
        span: tuple[int, int],
        pid: int,
        wait: bool,
    ) -> None:
        """Set or clear a lock, dropping the kernel's cache of the file around it."""
        ino = file.node.ino
        unlock = lock_type == fcntl.F_UNLCK
        if unlock and self._writeback_cache and self._table.holds(key):
            await invalidate(ino)  # not at each close of a file never locked
        await self._table.set(file, fh, key, lock_type, span, pid, wait)
        if not unlock:
            await invalidate(ino)


async def invalidate(ino: int) -> None:
    """Drop the kernel's cached data and attributes of inode `ino`, writing dirty pages back.

    In a worker thread: with the writeback cache the call waits for the writes,
    which this event loop must serve meanwhile.
    """

    await trio.to_thread.run_sync(drop_inode, ino)


class CaseVariants:
    """Case variants of a name, dropped from the kernel's dentry cache when the name changes.

    The kernel's dentry cache is case-sensitive; in a case-insensitive directory
    it may hold "FOO" and "foo" for one entry (two dentries of one inode, for
    files), or hold "foo not found" (with `negative_timeout`). When this mount
    makes, removes or renames a name, every other case variant the kernel was
    given in that directory (`InodeTable.take_variants`) is invalidated. The
    invalidation cannot be waited for: the kernel holds the directory's lock
    until the operation is answered. Until it is done, the first getattr or open
    of an inode a variant led to is answered ESTALE (`stale_once`): the kernel
    then looks the name up again (LOOKUP_REVAL), so a stale variant is never
    seen, even in the moment after the operation returns. A getattr of an inode
    with open files is answered all the same: it may be an fstat, which no
    lookup can mend (a variant stat'ed in that moment shows the file, nlink 0). In a case-sensitive
    directory the variants are other files: they are looked up again, no more.
    """

    def __init__(self, inodes: InodeTable, nursery: trio.Nursery) -> None:
        self._inodes = inodes
        self._nursery = nursery
        self._stale: set[int] = set()  # inodes whose next getattr or open is answered ESTALE

    async def changed(self, parent: int, name: str) -> None:
        """`name` in directory `parent` was made, removed or renamed through this mount.

        The attributes of the inodes the variants led to are dropped before this
        returns (that needs no lock of the kernel's): a stat through a variant then
        asks for them, and gets ESTALE, however long they were to be cached."""
        stale: list[int] = []
        for variant, ino in self._inodes.take_variants(parent, name):
            if ino:
                self._stale.add(ino)
                stale.append(ino)
            self._nursery.start_soon(self._invalidate, parent, variant, ino)
        for ino in stale:
            await trio.to_thread.run_sync(drop_inode, ino, True)

    def stale_once(self, ino: int) -> bool:
        """Whether the kernel may have reached `ino` by a variant not yet invalidated
        (answered True once)."""
        if ino in self._stale:
            self._stale.discard(ino)
            return True
        return False

    async def _invalidate(self, parent: int, name: str, ino: int) -> None:
        try:
            await trio.to_thread.run_sync(drop_entry, parent, name, abandon_on_cancel=True)
        finally:
            self._stale.discard(ino)
