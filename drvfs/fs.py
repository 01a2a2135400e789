"""The FUSE filesystem: each pyfuse3 operation done with 9P2000.L requests.

Every operation runs as its own trio task (pyfuse3 runs many at once), and
they all share one connection, on which the client keeps many requests in
flight. Errors reach the application with the server's errno; a lost
connection gives ENOTCONN (see `drvfs.remote`), and after a reconnection
nodes and open files are walked to again by path, and reopened
(`drvfs.resolver`). Opening is in `drvfs.opening`, listing in
`drvfs.readahead`, locks in `drvfs.coherence`.

POSIX locks and flock are held on the server, where the installed pyfuse3 has
lock handlers (`third_party/pyfuse3`); with a pyfuse3 without them the kernel
keeps locks itself, for this one mount.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

import pyfuse3
import trio

from ninep.client import Fid
from ninep.constants import AT_REMOVEDIR, OpenFlag

from . import convert
from .coherence import CoherentLocks
from .entries import Entries
from .inodes import Inode, InodeTable
from .openfiles import OpenDir, OpenFileTable
from .opening import Opener
from .operation import name_bytes, name_str, operation
from .options import MountOptions
from .readahead import DirReader
from .remote import Attachment, Remote
from .resolver import FidResolver

log = logging.getLogger("drvfs")

_DIR_FLAGS = int(OpenFlag.RDONLY | OpenFlag.DIRECTORY)


class DrvFs(pyfuse3.Operations):
    """A 9P2000.L export as a FUSE filesystem."""

    supports_dot_lookup = False  # no NFS export: the kernel resolves `.` and `..` itself

    def __init__(
        self,
        remote: Remote,
        attachment: Attachment,
        options: MountOptions,
        nursery: trio.Nursery,
        on_init: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self._on_init = on_init
        self._options = options
        self.enable_writeback_cache = options.writeback_cache
        self.inodes = InodeTable(attachment.root.qid.path)
        self._files = OpenFileTable()
        self.fids = FidResolver(remote, self.inodes, nursery)
        self._entries = Entries(self.fids, options)
        self._opener = Opener(self.fids, self._entries, options.writeback_cache)
        self._dirs = DirReader(self.fids, self._entries)
        self._locks = CoherentLocks(self.fids, options.writeback_cache)

    def init(self) -> None:
        """The kernel's INIT is answered: the mount is usable."""
        try:
            self._on_init()
        except Exception:
            log.exception("init callback failed")

    async def _fid_of(self, ino: int) -> Fid:
        """The fid of inode `ino` on the current connection."""
        return await self.fids.fid(self.fids.node(ino))

    # ---- lookups and attributes ----

    @operation
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self.fids.node(parent_inode)
        text = name_str(name)
        dir_fid = await self.fids.fid(parent)
        try:
            fid = await dir_fid.walk(text)
        except FileNotFoundError:
            if not self._options.negative_timeout:
                raise
            negative = pyfuse3.EntryAttributes()
            negative.st_ino = 0
            negative.entry_timeout = self._options.negative_timeout
            return negative
        return await self._entries.found(parent, text, fid)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        try:
            for ino, count in inode_list:
                self.fids.drop(self.inodes.forget(ino, count))
        except Exception:  # forget has nobody to report to
            log.exception("forget failed")

    @operation
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entries.entry(inode, await (await self._fid_of(inode)).getattr())

    @operation
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self.fids.node(inode)
        if fh is None:
            fid = await self.fids.fid(node)
        else:  # ftruncate, fchmod...: the open file's fid
            fid = await self.fids.opened(self._files.get(fh))
        await fid.setattr(
            mode=attr.st_mode & 0o7777 if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime=attr.st_atime_ns if fields.update_atime else None,
            mtime=attr.st_mtime_ns if fields.update_mtime else None,
            ctime=fields.update_ctime,
        )
        return self._entries.entry(node.ino, await fid.getattr())

    @operation
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return convert.statvfs(await (await self.fids.fid(self.inodes.root)).statfs())

    # ---- making and removing names ----

    @operation
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return await self._make(parent_inode, name, ctx, lambda d, n: d.mkdir(n, mode, ctx.gid))

    @operation
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        major, minor = os.major(rdev), os.minor(rdev)
        return await self._make(
            parent_inode, name, ctx, lambda d, n: d.mknod(n, mode, major, minor, ctx.gid)
        )

    @operation
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        to = name_str(target)
        return await self._make(parent_inode, name, ctx, lambda d, n: d.symlink(n, to, ctx.gid))

    async def _make(
        self,
        parent_inode: int,
        name: bytes,
        ctx: pyfuse3.RequestContext,
        make: Callable[[Fid, str], Awaitable[object]],
    ) -> pyfuse3.EntryAttributes:
        """Make `name` with `make(dir_fid, name)`; its entry, the caller's (`Entries.made`)."""
        parent, text = self.fids.node(parent_inode), name_str(name)
        dir_fid = await self.fids.fid(parent)
        await make(dir_fid, text)
        return await self._entries.made(parent, dir_fid, text, ctx)

    @operation
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node, parent = self.fids.node(inode), self.fids.node(new_parent_inode)
        text = name_str(new_name)
        fid = await self.fids.fid(node)
        await (await self.fids.fid(parent)).link(fid, text)
        attr = await fid.getattr()
        self.fids.count_lookup(parent, text, attr.qid.path, None)
        return self._entries.entry(node.ino, attr)

    @operation
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return name_bytes(await (await self._fid_of(inode)).readlink())

    @operation
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid_of(parent_inode)).unlinkat(name_str(name))

    @operation
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid_of(parent_inode)).unlinkat(name_str(name), AT_REMOVEDIR)

    @operation
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        if flags & ~pyfuse3.RENAME_NOREPLACE:  # RENAME_EXCHANGE: 9P cannot do it atomically
            raise pyfuse3.FUSEError(errno.EINVAL)
        old_parent, new_parent = self.fids.node(parent_inode_old), self.fids.node(parent_inode_new)
        old, new = name_str(name_old), name_str(name_new)
        old_dir, new_dir = await self.fids.fid(old_parent), await self.fids.fid(new_parent)
        if flags & pyfuse3.RENAME_NOREPLACE:
            # Checked by a walk first: another client may create `new` before the rename.
            there = await self.fids.qid_of(new_dir, new)
            if there is not None:
                source = await self.fids.qid_of(old_dir, old)
                if source is None or source.path != there.path:  # the same file: a case change
                    raise pyfuse3.FUSEError(errno.EEXIST)
        await old_dir.renameat(old, new_dir, new)
        self.fids.nursery.start_soon(self._follow_rename, new_dir, new_parent, new)

    async def _follow_rename(self, dir_fid: Fid, parent: Inode, name: str) -> None:
        """Record the new path of the file renamed to `name` (for walks after a reconnection)."""
        try:
            moved = await self.fids.qid_of(dir_fid, name)
        except OSError as e:
            log.debug("after renaming to %r: %s", name, e)
            return
        node = self.inodes.find(self.inodes.ino(moved.path)) if moved is not None else None
        if node is not None:
            self.inodes.moved(node, parent, name)

    # ---- files ----

    @operation
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        file, keep = await self._opener.open(self.fids.node(inode), flags)
        return pyfuse3.FileInfo(fh=self._files.add(file), keep_cache=keep)

    @operation
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self.fids.node(parent_inode)
        file, attr = await self._opener.create(parent, name_str(name), mode, flags, ctx)
        return pyfuse3.FileInfo(fh=self._files.add(file)), self._entries.entry(file.node.ino, attr)

    @operation
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await (await self.fids.opened(self._files.get(fh))).read(off, size)

    @operation
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        file = self._files.get(fh)
        file.wrote = True
        return await (await self.fids.opened(file)).write(off, buf)

    @operation
    async def flush(self, fh: int) -> None:
        self._files.get(fh)  # writes are already on the server: nothing to push

    @operation
    async def fsync(self, fh: int, datasync: bool) -> None:
        await (await self.fids.opened(self._files.get(fh))).fsync(datasync)

    @operation
    async def release(self, fh: int) -> None:
        file = self._files.pop(fh)
        await self._locks.release(fh)
        try:
            if file.wrote:  # the kernel's pages hold what was written: they stay valid
                file.node.stamp = convert.stamp(await file.fid.getattr())
        except OSError:
            file.node.stamp = None
        finally:
            self.fids.drop(file.fid)

    # ---- locks (called only by a pyfuse3 with lock handlers) ----

    @operation
    async def getlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int
    ) -> tuple[int, int, int, int]:
        return await self._locks.getlk(self._files.get(fh), owner, lock_type, (start, length), pid)

    @operation
    async def setlk(
        self, fh: int, owner: int, lock_type: int, start: int, length: int, pid: int, sleep: bool
    ) -> None:
        file = self._files.get(fh)
        await self._locks.setlk(file, fh, owner, lock_type, (start, length), pid, sleep)

    @operation
    async def flock(self, fh: int, owner: int, op: int) -> None:
        await self._locks.flock(self._files.get(fh), fh, owner, op)

    # ---- directories ----

    @operation
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.fids.node(inode)
        fid = await self.fids.open(node, _DIR_FLAGS)
        return self._files.add(OpenDir(node, _DIR_FLAGS, fid))

    @operation
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        await self._dirs.readdir(self._files.get_dir(fh), start_id, token)

    @operation
    async def releasedir(self, fh: int) -> None:
        directory = self._files.get_dir(fh)
        self._files.pop(fh)
        self._dirs.discard(directory)
        self.fids.drop(directory.fid)

    @operation
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        await (await self.fids.opened(self._files.get(fh))).fsync(datasync)

    # ---- extended attributes ----

    @operation
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await (await self._fid_of(inode)).getxattr(name_str(name))

    @operation
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        # An empty value removes the attribute: 9P2000.L has no other meaning for size 0.
        await (await self._fid_of(inode)).setxattr(name_str(name), value)

    @operation
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [name_bytes(n) for n in await (await self._fid_of(inode)).listxattr()]

    @operation
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await (await self._fid_of(inode)).removexattr(name_str(name))
